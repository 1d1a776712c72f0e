"""inspect on hostile disks: the fixed-seed fuzz target (issue 11 #1, #6)."""
from __future__ import annotations

from redox_tools.fuzz.harness import ACCEPTED, MEMORY, OTHER
from redox_tools.fuzz.targets import bounded, fuzz_inspect


def test_fuzz_inspect_fixed_seed() -> None:
    """300 mutated disks (GPT, ESP or RedoxFS with its initfs, checksums recomputed): inspect
    prints what it can and names the problem, raises nothing but its one-line error, and never
    grows the process by more than twice the image."""
    tally = bounded(fuzz_inspect, 300, 2)
    assert [tally.counts[c] for c in (OTHER, MEMORY)] == [0, 0], tally.examples[:5]
    assert tally.counts[ACCEPTED] > 100
