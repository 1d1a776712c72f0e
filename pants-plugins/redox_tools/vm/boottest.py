"""Boot test: run a VM, follow its serial log, match ordered milestones.

* Each milestone has its own timeout, counted from the previous milestone (or the start);
  `timeout` bounds the whole run.
* Fails early when the VM process exits, when a failure pattern appears, or when QMP
  reports `internal-error` / `guest-panicked` (e.g. OVMF under the broken KVM here).
* With `expect_exit`, the result is the VM's exit status after the milestones
  (isa-debug-exit: guest writes 0x19 → QEMU exits 51 = success; 0x1a → 53 = failure).
* Screen checks (`screen.py`): right after milestone M is reached, the VM is paused over
  QMP, `screendump` writes `<screendump_dir>/screen-M.ppm` (+ a PNG copy), the VM resumes and
  every check named for M runs; a failing check fails the test with what was seen and the
  screendump's path. The VM needs a display device (`VmSpec.headless_display`).
* Serial replies (`serial.py`, disk-image.md §10): with `serial_pipe`, the harness creates
  the FIFOs `<serial_pipe>.in`/`.out` before the VM starts and QEMU's serial console uses them
  (still logging to `serial_log`); each reply is typed once its pattern appears in the log,
  in order, once. Milestones (and their screendumps) are taken before replies to the same
  output: a guest that holds a picture until a key arrives is answered after the picture was
  taken, so no guest-side wait has to outlast a slow host. `BootResult.replied` says when
  each reply was typed.
* Progress lines `[  3.2s] reached: <name>` go to `progress` (stderr from the CLI).
* The VM (its process group) is always killed at the end, on timeout and on Ctrl-C.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Pattern, Sequence, Tuple

from redox_tools.vm.control import ControlError, NoVmError, QmpControl
from redox_tools.vm.process import VmProcess
from redox_tools.vm.qemu import DEBUG_EXIT_FAILURE, DEBUG_EXIT_SUCCESS
from redox_tools.vm.screen import CheckResult, ScreenCheck, ScreenError, read_ppm, run_checks, save_png
from redox_tools.vm.serial import (
    LogFollower,
    Milestone,
    MilestoneTracker,
    ReplyTracker,
    SerialReply,
    SerialPipe,
    show_bytes,
)

BAD_QMP_STATUSES = ("internal-error", "guest-panicked")
POLL_INTERVAL = 0.05
QMP_POLL_INTERVAL = 0.5
QMP_CONNECT_WAIT = 10.0  # a screendump right after start may have to wait for QMP to listen


@dataclass
class BootResult:
    passed: bool
    message: str
    elapsed: float
    reached: List[Tuple[str, float]] = field(default_factory=list)  # (name, seconds from start)
    exit_code: Optional[int] = None
    serial_tail: str = ""
    screens: List[str] = field(default_factory=list)  # saved screendumps (PPM paths)
    checks: List[CheckResult] = field(default_factory=list)
    replied: List[Tuple[str, float]] = field(default_factory=list)  # (reply's label, seconds from start)


def screen_file_stem(milestone: str) -> str:
    """`screen-<milestone>`, the name made safe for a file."""
    return "screen-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", milestone).strip("._") or "milestone")


def validate_screen_checks(checks: Sequence[ScreenCheck], milestones: Sequence[Milestone]) -> None:
    names = [m.name for m in milestones]
    for c in checks:
        if c.after not in names:
            raise ScreenError(
                f"screen check {c.label!r}: no milestone named {c.after!r} "
                f"(milestones: {', '.join(names) or 'none'})"
            )


def describe_exit(code: Optional[int]) -> str:
    """'exited with status 51 (guest wrote 0x19 ...)', 'was killed by SIGABRT', ..."""
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    if code == DEBUG_EXIT_SUCCESS:
        return f"exited with status {code} (guest wrote 0x19 to isa-debug-exit: success)"
    if code == DEBUG_EXIT_FAILURE:
        return f"exited with status {code} (guest wrote 0x1a to isa-debug-exit: failure)"
    if code & 1 and code > 1:
        return f"exited with status {code} (guest wrote {code >> 1:#x} to isa-debug-exit?)"
    return f"exited with status {code}"


def _stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_boottest(
    argv: Sequence[str],
    serial_log: str,
    milestones: Sequence[Milestone],
    failures: Sequence[Tuple[str, Pattern[str]]] = (),
    expect_exit: Optional[int] = None,
    timeout: float = 300.0,
    qmp_socket: Optional[str] = None,
    stderr_path: Optional[str] = None,
    progress: Optional[Callable[[str], None]] = _stderr_progress,
    tail_lines: int = 30,
    screen_checks: Sequence[ScreenCheck] = (),
    screendump_dir: Optional[str] = None,
    display_dir: Optional[str] = None,
    serial_replies: Sequence[SerialReply] = (),
    serial_pipe: Optional[str] = None,
) -> BootResult:
    """Start `argv` (a VM writing its serial console to `serial_log`) and judge the boot.

    Screendumps go to `screendump_dir` (default: the serial log's directory); messages name
    them under `display_dir` instead when given (where the caller will copy them).
    """
    say = progress or (lambda _line: None)
    validate_screen_checks(screen_checks, milestones)
    if screen_checks and not qmp_socket:
        raise ScreenError("screen checks need QEMU's QMP socket (screendump)")
    if serial_replies and not serial_pipe:
        raise ValueError("serial replies need the VM's serial console on a pipe (serial_pipe)")
    dump_dir = screendump_dir or os.path.dirname(os.path.abspath(serial_log))
    screens: List[str] = []
    check_results: List[CheckResult] = []
    tracker = MilestoneTracker(milestones, failures)
    replier = ReplyTracker(serial_replies)
    follower = LogFollower(serial_log)
    console = SerialPipe(serial_pipe) if serial_pipe else None
    vm = VmProcess(argv, stderr_path=stderr_path)
    qmp: Optional[QmpControl] = None
    reached: List[Tuple[str, float]] = []
    replied: List[Tuple[str, float]] = []
    start = time.monotonic()
    last_mark = start
    next_qmp = start
    exit_code: Optional[int] = None

    def result(passed: bool, why: str) -> BootResult:
        elapsed = time.monotonic() - start
        follower.read_new()
        tail = follower.tail(tail_lines)
        msg = why
        if not passed:
            got = ", ".join(f"{n} ({t:.1f}s)" for n, t in reached) or "none"
            sep = "\n" if "\n" in why else " "  # multi-line reasons (screen checks): own line
            msg = f"{why}{sep}[elapsed {elapsed:.1f}s; reached: {got}]"
            err = vm.stderr_tail()
            if err:
                msg += f"\n--- hypervisor stderr ---\n{err}"
            msg += f"\n--- serial log tail ({shown(serial_log)}) ---\n{tail or '(empty)'}"
        return BootResult(passed, msg, elapsed, list(reached), exit_code, tail, list(screens), list(check_results),
                          list(replied))

    def shown(path: str) -> str:
        return os.path.join(display_dir, os.path.basename(path)) if display_dir else path

    def get_qmp() -> QmpControl:
        nonlocal qmp
        deadline = time.monotonic() + QMP_CONNECT_WAIT
        while qmp is None:
            try:
                qmp = QmpControl(qmp_socket or "", timeout=5.0).connect()
            except NoVmError:
                if time.monotonic() > deadline or vm.poll() is not None:
                    raise
                time.sleep(0.1)
        return qmp

    def check_screen(name: str, t: float) -> Optional[str]:
        """Screendump + the checks for milestone `name`; the failure text, or None."""
        nonlocal qmp
        checks = [c for c in screen_checks if c.after == name]
        if not checks:
            return None
        os.makedirs(dump_dir, exist_ok=True)
        ppm = os.path.join(os.path.abspath(dump_dir), screen_file_stem(name) + ".ppm")
        try:
            control = get_qmp()
            control.cmd("stop")  # hold the picture still while QEMU renders it
            try:
                control.cmd("screendump", filename=ppm)
            finally:
                control.cmd("cont")
            pixels = read_ppm(ppm)
        except (ControlError, ScreenError) as e:
            if qmp is not None:
                qmp.close()
                qmp = None
            return f"could not take a screendump after milestone {name!r}: {e}"
        screens.append(ppm)
        png = ppm[: -len(".ppm")] + ".png"
        save_png(pixels, png)
        results = run_checks(checks, pixels)
        check_results.extend(results)
        h, w = pixels.shape[:2]
        say(f"[{t:6.1f}s] screendump after {name}: {w}x{h}, {shown(png)}")
        for r in results:
            say(f"         screen check {'ok' if r.passed else 'FAILED'}: {r.check.label}: {r.detail}")
        bad = [r for r in results if not r.passed]
        if not bad:
            return None
        lines = [f"screen check failed after milestone {name!r}:"]
        lines += [f"  {r.check.label}\n    -> {r.detail}" for r in bad]
        lines.append(f"  screendump: {shown(ppm)} (PNG copy: {shown(png)})")
        return "\n".join(lines)

    def passed(why: str) -> BootResult:
        if check_results:
            why += f"; {len(check_results)} screen check(s) passed ({', '.join(shown(s) for s in screens)})"
        return result(True, why)

    vm.start()
    try:
        while True:
            now = time.monotonic()
            exit_code = vm.poll()
            if console is not None:
                console.poll()  # drain the guest's output (the log file has it all)
            follower.read_new()  # after poll(): an exited VM's last output is read
            for m in tracker.advance(follower.text):
                t = time.monotonic() - start
                reached.append((m.name, t))
                last_mark = time.monotonic()
                say(f"[{t:6.1f}s] reached: {m.name}")
                screen_failure = check_screen(m.name, t)
                if screen_failure:
                    return result(False, screen_failure)
                last_mark = time.monotonic()  # the screendump's time is not the next milestone's
            for r in replier.due(follower.text):
                t = time.monotonic() - start
                assert console is not None
                console.send(r.reply)
                replied.append((r.label, t))
                say(f"[{t:6.1f}s] replied '{show_bytes(r.reply)}' to /{r.pattern.pattern}/")
            bad = tracker.failure(follower.text)
            if bad is not None:
                return result(False, f"failure pattern {bad[0]!r} seen: {bad[1]!r}")
            if exit_code is not None:
                if not tracker.done:
                    cur = tracker.current
                    assert cur is not None
                    return result(
                        False,
                        f"VM {describe_exit(exit_code)} before milestone "
                        f"{cur.name!r} (/{cur.pattern.pattern}/)",
                    )
                if expect_exit is None or exit_code == expect_exit:
                    return passed(f"passed: VM {describe_exit(exit_code)}")
                return result(
                    False,
                    f"VM {describe_exit(exit_code)}, expected status {expect_exit}",
                )
            if tracker.done and expect_exit is None:
                return passed("passed: all milestones reached")
            cur = tracker.current
            if cur is not None and cur.timeout is not None and now - last_mark > cur.timeout:
                return result(
                    False,
                    f"milestone {cur.name!r} (/{cur.pattern.pattern}/) not reached within "
                    f"{cur.timeout:g}s",
                )
            if now - start > timeout:
                what = (
                    f"milestone {cur.name!r} (/{cur.pattern.pattern}/) not reached"
                    if cur is not None
                    else f"VM did not exit (expected status {expect_exit})"
                )
                return result(False, f"{what} within the overall timeout of {timeout:g}s")
            if qmp_socket and now >= next_qmp:
                next_qmp = now + QMP_POLL_INTERVAL
                status = None
                try:
                    if qmp is None:
                        qmp = QmpControl(qmp_socket, timeout=2.0).connect()
                    status = qmp.status()
                except NoVmError:
                    pass  # not listening yet
                except ControlError:
                    if qmp is not None:
                        qmp.close()
                    qmp = None  # the VM is probably exiting; poll() will tell
                if status in BAD_QMP_STATUSES:
                    return result(False, f"VM stopped: QMP status {status!r}")
            time.sleep(POLL_INTERVAL)
    finally:
        if qmp is not None:
            qmp.close()
        code = vm.kill()
        if exit_code is None:
            exit_code = code
        follower.close()
        if console is not None:
            console.close()
