"""The two RedoxFS writers against each other on random trees (see `redox_tools.fuzz.writers`).

    python -m redox_tools.bench.redoxfs_writers_diff [--cases 200] [--seed 1] [--tool PATH] [--dir DIR]

Prints how many cases gave identical images, how many both writers refused with the same
message, and every case where they differ (exit status 1 then). The tool is found as
`redox_tools.redoxfs.native.find_writer` says (`./pants package packages/host/redoxfs-write`).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from typing import Optional, Sequence

from redox_tools.errors import run_main
from redox_tools.fuzz.writers import OUTCOMES, fuzz
from redox_tools.redoxfs.native import find_writer


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.bench.redoxfs_writers_diff", description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tool", help="path of redoxfs-write (default: $REDOXFS_WRITE or dist/)")
    ap.add_argument("--dir", help="where the trees and images go (default: a temp dir)")
    args = ap.parse_args(argv)
    tool = find_writer(args.tool)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        out = fuzz(tool, args.cases, args.seed, work)
    print(f"{args.cases} cases (seed {args.seed}) in {time.monotonic() - t0:.1f} s: "
          + ", ".join(f"{o}: {len(out[o])}" for o in OUTCOMES))
    for line in out[OUTCOMES[2]]:
        print("  " + line)
    return 1 if out[OUTCOMES[2]] else 0


if __name__ == "__main__":
    run_main(main)
