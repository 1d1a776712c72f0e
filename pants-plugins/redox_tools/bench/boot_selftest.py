"""Boot an image N times headless and print boot-to-marker times.

    python -m redox_tools.bench.boot_selftest IMAGE [-n 5] [--marker REGEX] [--expect-exit 51]
        [--accel tcg|kvm] [--cpus 1] [--memory 512]
        [--graphical [--screen-check CHECK ...]]

Each run: fresh work dir (VARS copy + qcow2 overlay), QEMU started, time from process start
to the first serial match of `--marker` (default `REDOX-PANTS SELFTEST`), and to the VM's
exit when `--expect-exit` is given. Prints one line per run, then min/median/max.

`--graphical` gives the VM a display device (`-vga std -display none`, a UEFI GOP); each
`--screen-check` (`not-blank`, `region X,Y,W,H #RRGGBB`) is run on a QMP screendump taken at the
marker, so the time includes the screendump. The graphical self-test:

    python -m redox_tools.bench.boot_selftest IMG --expect-exit 51 --graphical \
        --marker 'SELFTEST: gop' --screen-check 'region 400,300,200,150 #ff00ff'
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
from redox_tools.vm.cli import detect_image_format
from redox_tools.vm.config import VmSpec
from redox_tools.vm.qemu import prepare_qemu_files, qemu_argv
from redox_tools.vm.screen import parse_check
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
    p.add_argument("--graphical", action="store_true", help="display device (-vga std -display none)")
    p.add_argument("--screen-check", action="append", default=[], metavar="CHECK",
                   help="screendump at the marker and check it (needs --graphical)")
    a = p.parse_args(argv)
    checks = [parse_check(f"marker: {c}") for c in a.screen_check]
    if checks and not a.graphical:
        p.error("--screen-check needs --graphical")
    marker: List[float] = []
    total: List[float] = []
    failed = 0
    for i in range(a.n):
        d = tempfile.mkdtemp(prefix="bootbench-", dir="/tmp")
        try:
            spec = VmSpec(image=a.image, image_format=detect_image_format(a.image), work_dir=d, cpus=a.cpus, memory_mib=a.memory,
                          debug_exit=a.expect_exit is not None, headless_display=a.graphical)
            prepare_qemu_files(spec)
            t0 = time.monotonic()
            res = run_boottest(qemu_argv(spec, a.accel), spec.serial_log_path,
                               [Milestone("marker", re.compile(a.marker))],
                               expect_exit=a.expect_exit, timeout=a.timeout,
                               qmp_socket=spec.control_socket_path, progress=None,
                               stderr_path=os.path.join(d, "qemu.stderr"),
                               screen_checks=checks)
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
        kind = f"{a.accel}, graphical" if a.graphical else a.accel
        print(f"boot-to-marker ({len(marker)} runs, {kind}): {_fmt(marker)}")
        print(f"start-to-end incl. exit/kill:     {_fmt(total)}")
    if failed:
        print(f"{failed} of {a.n} runs failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
