"""Boot an image N times headless and print boot-to-marker times.

    python -m redox_tools.bench.boot_selftest IMAGE [-n 5] [--marker REGEX] [--expect-exit 51]
        [--accel tcg|kvm] [--cpus 1] [--memory 512]
        [--graphical [--screen-check CHECK ...]]
        [--serial-reply PATTERN=>REPLY|PRESET ... | --no-serial-reply]

Each run: fresh work dir (VARS copy + qcow2 overlay), QEMU started, time from the VM's start
to the first serial match of `--marker` (default `REDOX-PANTS SELFTEST`), and to the VM's
exit when `--expect-exit` is given. Prints one line per run, then min/median/max.

`--graphical` gives the VM a display device (`-vga std -display none`, a UEFI GOP); each
`--screen-check` (`not-blank`, `region X,Y,W,H #RRGGBB`) is run on a QMP screendump taken at the
marker. The marker time is taken before the screendump; the total includes it.

Serial replies (the boot test harness's, `redox_tools.vm.boottest`): `--serial-reply` types
REPLY on the serial console once PATTERN appears, in order, each once (the syntax and presets
of `python -m redox_tools.vm boottest --serial-reply`). With a display the self-test app waits
for Enter twice (`Press e to edit boot environment`, as the Redox bootloader's mode menu does,
and `Press Enter to go on` while its block is up), so `--graphical` types both unless
`--serial-reply` or `--no-serial-reply` says otherwise. A reply is typed in the same poll of the
serial log (every 0.05 s) that sees its prompt, after any marker in that output. So the
boot-to-marker time includes the guest's waits for the replies typed before the marker (one
per run line; the harness's poll plus the guest's key polling, tens of ms each) and nothing
typed after it; the total includes them all. The graphical self-test:

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
from typing import List, Optional, Sequence, Set, Tuple

from redox_tools.errors import run_main
from redox_tools.vm.boottest import BootResult, run_boottest
from redox_tools.vm.cli import detect_image_format
from redox_tools.vm.config import VmSpec
from redox_tools.vm.qemu import prepare_qemu_files, qemu_argv
from redox_tools.vm.screen import ScreenCheck, parse_check
from redox_tools.vm.serial import REPLY_PRESETS, Milestone, SerialReply, parse_replies

# What the self-test app (packages/fixtures/uefi-selftest) waits for when it has a GOP: Enter at
# its menu-shaped prompt, then Enter once its block was screendumped (as images:selftest-graphical-boot).
SELFTEST_GRAPHICAL_REPLIES = ("redox-bootloader-menu", r"Press Enter to go on=>\r")


def _fmt(xs: List[float]) -> str:
    return f"min {min(xs):.2f}s  median {statistics.median(xs):.2f}s  max {max(xs):.2f}s"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m redox_tools.bench.boot_selftest",
        description="Boot an image N times (QEMU) and print boot-to-marker times. The marker time "
                    "runs from the VM's start to the marker's first appearance on the serial "
                    "console and includes the guest's waits for serial replies typed before it.",
    )
    p.add_argument("image")
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--marker", default="REDOX-PANTS SELFTEST")
    p.add_argument("--expect-exit", type=int, default=None)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--accel", choices=("tcg", "kvm"), default="tcg")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--memory", type=int, default=512, help="MiB")
    p.add_argument("--graphical", action="store_true",
                   help="display device (-vga std -display none); types the self-test app's "
                        "replies unless --serial-reply/--no-serial-reply: "
                        + ", ".join(SELFTEST_GRAPHICAL_REPLIES).replace("%", "%%"))
    p.add_argument("--screen-check", action="append", default=[], metavar="CHECK",
                   help="screendump at the marker and check it (needs --graphical)")
    p.add_argument("--serial-reply", action="append", default=[], metavar="PATTERN=>REPLY | PRESET",
                   help="as for `python -m redox_tools.vm boottest`: type REPLY (escapes \\r \\n \\t \\e "
                        "\\xHH) on the serial console once PATTERN appears, in order, each once; "
                        f"presets: {', '.join(sorted(REPLY_PRESETS))}. Replaces --graphical's. A reply typed before "
                        "the marker counts in its time")
    p.add_argument("--no-serial-reply", action="store_true",
                   help="type nothing (not even --graphical's replies)")
    return p


def serial_replies(a: argparse.Namespace, p: argparse.ArgumentParser) -> List[SerialReply]:
    """The replies to type: --serial-reply's, else --graphical's defaults, else none."""
    if a.no_serial_reply:
        if a.serial_reply:
            p.error("--no-serial-reply and --serial-reply exclude each other")
        return []
    specs = a.serial_reply or (list(SELFTEST_GRAPHICAL_REPLIES) if a.graphical else [])
    return parse_replies(specs)


def run_once(a: argparse.Namespace, checks: Sequence[ScreenCheck], replies: Sequence[SerialReply]) -> Tuple[BootResult, float]:
    """One boot in a fresh work dir: the harness's result and the wall time around it."""
    d = tempfile.mkdtemp(prefix="bootbench-", dir="/tmp")
    try:
        spec = VmSpec(image=a.image, image_format=detect_image_format(a.image), work_dir=d, cpus=a.cpus,
                      memory_mib=a.memory, debug_exit=a.expect_exit is not None, headless_display=a.graphical,
                      serial_pipe=os.path.join(d, "serial") if replies else None)
        prepare_qemu_files(spec)
        t0 = time.monotonic()
        res = run_boottest(qemu_argv(spec, a.accel), spec.serial_log_path,
                           [Milestone("marker", re.compile(a.marker))],
                           expect_exit=a.expect_exit, timeout=a.timeout,
                           qmp_socket=spec.control_socket_path, progress=None,
                           stderr_path=os.path.join(d, "qemu.stderr"),
                           screen_checks=checks, serial_replies=replies, serial_pipe=spec.serial_pipe)
        return res, time.monotonic() - t0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    checks = [parse_check(f"marker: {c}") for c in a.screen_check]
    if checks and not a.graphical:
        p.error("--screen-check needs --graphical")
    if a.n < 1:
        p.error("-n must be at least 1")
    replies = serial_replies(a, p)
    marker: List[float] = []
    total: List[float] = []
    before: Set[int] = set()  # how many replies were typed before the marker, per run
    failed = 0
    for i in range(a.n):
        res, wall = run_once(a, checks, replies)
        if not res.passed:
            failed += 1
            print(f"run {i + 1}: FAILED {res.message.splitlines()[0]}", flush=True)
            continue
        t = res.reached[0][1]
        marker.append(t)
        total.append(wall)
        typed = ", ".join(f"{rt:.2f}s" for _label, rt in res.replied)
        before.add(sum(1 for _label, rt in res.replied if rt <= t))
        print(f"run {i + 1}: marker {t:.2f}s  total {wall:.2f}s"
              + (f"  (replies typed at {typed})" if typed else ""), flush=True)
    if marker:
        kind = f"{a.accel}, graphical" if a.graphical else a.accel
        waits = "/".join(str(n) for n in sorted(before))
        print(f"boot-to-marker ({len(marker)} runs, {kind}): {_fmt(marker)}"
              + (f"  (incl. waiting for {waits} serial repl{'y' if waits == '1' else 'ies'} typed before it)"
                 if replies else ""))
        print(f"start-to-end incl. exit/kill:     {_fmt(total)}")
    if failed:
        print(f"{failed} of {a.n} runs failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
