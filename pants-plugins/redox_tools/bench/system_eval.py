"""Time the module system: evaluate the development profile + the custom-system example and
generate their files (argon2 hashing included), in this process.

    python -m redox_tools.bench.system_eval [--root REPO] [-n 10]

Prints min/median/max of evaluation alone and of evaluation + generation (goal: < 0.3 s).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import List, Optional, Sequence

from redox_tools.system import load_system
from redox_tools.system.buildfiles import system_description
from redox_tools.system.generate import generate


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redox_tools.bench.system_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[3]))
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    data = system_description(args.root, "images/examples:custom-system")
    read = time.perf_counter() - t0
    evals: List[float] = []
    totals: List[float] = []
    for _ in range(args.n):
        t0 = time.perf_counter()
        _, config = load_system(data)
        t1 = time.perf_counter()
        files = generate(config, data["system"])
        t2 = time.perf_counter()
        evals.append(t1 - t0)
        totals.append(t2 - t0)
    print(f"read BUILD files: {read * 1000:.1f} ms; {len(data['modules'])} modules, {len(files)} generated entries")
    for name, xs in (("evaluate", evals), ("evaluate + generate", totals)):
        print(f"{name}: min {min(xs) * 1000:.1f} ms, median {statistics.median(xs) * 1000:.1f} ms, max {max(xs) * 1000:.1f} ms")
    print("goal < 300 ms:", "met" if statistics.median(totals) + read < 0.3 else "NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
