"""Boot an image N times headless and print boot-to-marker times.

    python -m redox_tools.bench.boot_selftest IMAGE [-n 5] [--marker REGEX] [--expect-exit 51]
        [--accel tcg|kvm] [--cpus 1] [--memory 512]

Each run: fresh work dir (VARS copy + qcow2 overlay), QEMU started, time from process start
to the first serial match of `--marker` (default `REDOX-PANTS SELFTEST`), and to the VM's
exit when `--expect-exit` is given. Prints one line per run, then min/median/max.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from typing import List, Optional, Sequence

from redox_tools.errors import run_main
from redox_tools.vm.boottest import run_boottest
from redox_tools.vm.config import VmSpec
from redox_tools.vm.qemu import prepare_qemu_files, qemu_argv
from redox_tools.vm.serial import Milestone


def _fmt(xs: List[float]) -> str:
    return f"min {min(xs):.2f}s  median {statistics.median(xs):.2f}s  max {max(xs):.2f}s"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m redox_tools.bench.boot_selftest")
    p.add_argument("image")
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--marker", default="REDOX-PANTS SELFTEST")
    p.add_argument("--expect-exit", type=int, default=None)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--accel", choices=("tcg", "kvm"), default="tcg")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--memory", type=int, default=512, help="MiB")
    a = p.parse_args(argv)
    marker: List[float] = []
    total: List[float] = []
    failed = 0
    for i in range(a.n):
        d = tempfile.mkdtemp(prefix="bootbench-", dir="/tmp")
        try:
            spec = VmSpec(image=a.image, work_dir=d, cpus=a.cpus, memory_mib=a.memory,
                          debug_exit=a.expect_exit is not None)
            prepare_qemu_files(spec)
            t0 = time.monotonic()
            res = run_boottest(qemu_argv(spec, a.accel), spec.serial_log_path,
                               [Milestone("marker", re.compile(a.marker))],
                               expect_exit=a.expect_exit, timeout=a.timeout,
                               qmp_socket=spec.control_socket_path, progress=None,
                               stderr_path=os.path.join(d, "qemu.stderr"))
            wall = time.monotonic() - t0
        finally:
            shutil.rmtree(d, ignore_errors=True)
        if not res.passed:
            failed += 1
            print(f"run {i + 1}: FAILED {res.message.splitlines()[0]}", flush=True)
            continue
        marker.append(res.reached[0][1])
        total.append(wall)
        print(f"run {i + 1}: marker {res.reached[0][1]:.2f}s  total {wall:.2f}s", flush=True)
    if marker:
        print(f"boot-to-marker ({len(marker)} runs, {a.accel}): {_fmt(marker)}")
        print(f"start-to-end incl. exit/kill:     {_fmt(total)}")
    if failed:
        print(f"{failed} of {a.n} runs failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
