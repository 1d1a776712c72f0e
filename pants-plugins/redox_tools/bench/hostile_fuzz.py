"""Hostile-input fuzzing of every image reader, with outcome classes (issue 11).

    python -m redox_tools.bench.hostile_fuzz [--cases 10000] [--seed 1] [--only fat gpt ...]

Runs the fuzz targets of `redox_tools.fuzz.targets` (initfs, redoxfs, fat, gpt, inspect): each
case is a structure-aware mutation of a valid image (checksums recomputed), read the way a
consumer reads it. One line per reader counts the outcome classes:

  accepted                   the mutation left an image the reader reads
  clean error                the reader's own one-line error
  accepted although corrupt  read fine, but the judge rejects it: fsck.fat -n (fat), sgdisk -v
                             (gpt), the format's invariants (initfs), the reader's own check()
                             (redoxfs: served files from a filesystem check() finds errors in)
  other exception            a reader bug (a traceback for a user)
  memory                     the reader grew the address space past 4x the image + 128 MiB
  slow                       a case over 5 s (stopped at 60 s)

Each reader runs in its own forked child under that address-space bound. Exit status 1 when
any reader has other exceptions, memory or slow cases, or (fat, gpt, initfs) accepted corrupt
images; the first examples of each are printed.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

from redox_tools.fuzz.harness import CORRUPT, MEMORY, OTHER, SLOW
from redox_tools.fuzz.targets import TARGETS, bounded


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.bench.hostile_fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10000, help="cases per reader (default 10000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", nargs="*", choices=sorted(TARGETS), help="readers to run (default: all)")
    a = ap.parse_args(argv)
    bad = 0
    t0 = time.perf_counter()
    for name in a.only or list(TARGETS):
        tally = bounded(TARGETS[name], a.cases, a.seed, hang_s=60)
        if tally.report([OTHER, MEMORY, SLOW] + ([CORRUPT] if name != "redoxfs" else [])):
            bad += 1
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
