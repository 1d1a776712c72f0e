"""The Python and native RedoxFS writers on random trees (fixed seed): identical images, or the
same refusal (see `redox_tools.fuzz.writers`; the bench runs thousands of cases)."""
from __future__ import annotations

from redox_tools.fuzz.writers import OUTCOMES, fuzz
from redox_tools.redoxfs.native import find_writer


def test_the_two_writers_agree_on_random_trees(tmp_path) -> None:
    out = fuzz(find_writer(), 60, seed=11, work=str(tmp_path), big_every=12)
    assert not out[OUTCOMES[2]], "\n".join(out[OUTCOMES[2]])
    assert len(out[OUTCOMES[0]]) >= 40  # most cases are writable trees
    assert out[OUTCOMES[1]]  # and some are refused on purpose
