"""Boot test: run a VM, follow its serial log, match ordered milestones.

* Each milestone has its own timeout, counted from the previous milestone (or the start);
  `timeout` bounds the whole run.
* Fails early when the VM process exits, when a failure pattern appears, or when QMP
  reports `internal-error` / `guest-panicked` (e.g. OVMF under the broken KVM here).
* With `expect_exit`, the result is the VM's exit status after the milestones
  (isa-debug-exit: guest writes 0x19 → QEMU exits 51 = success; 0x1a → 53 = failure).
* Progress lines `[  3.2s] reached: <name>` go to `progress` (stderr from the CLI).
* The VM (its process group) is always killed at the end, on timeout and on Ctrl-C.
"""
from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Pattern, Sequence, Tuple

from redox_tools.vm.control import ControlError, NoVmError, QmpControl
from redox_tools.vm.process import VmProcess
from redox_tools.vm.qemu import DEBUG_EXIT_FAILURE, DEBUG_EXIT_SUCCESS
from redox_tools.vm.serial import LogFollower, Milestone, MilestoneTracker

BAD_QMP_STATUSES = ("internal-error", "guest-panicked")
POLL_INTERVAL = 0.05
QMP_POLL_INTERVAL = 0.5


@dataclass
class BootResult:
    passed: bool
    message: str
    elapsed: float
    reached: List[Tuple[str, float]] = field(default_factory=list)  # (name, seconds from start)
    exit_code: Optional[int] = None
    serial_tail: str = ""


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
) -> BootResult:
    """Start `argv` (a VM writing its serial console to `serial_log`) and judge the boot."""
    say = progress or (lambda _line: None)
    tracker = MilestoneTracker(milestones, failures)
    follower = LogFollower(serial_log)
    vm = VmProcess(argv, stderr_path=stderr_path)
    qmp: Optional[QmpControl] = None
    reached: List[Tuple[str, float]] = []
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
            msg = f"{why} [elapsed {elapsed:.1f}s; reached: {got}]"
            err = vm.stderr_tail()
            if err:
                msg += f"\n--- hypervisor stderr ---\n{err}"
            msg += f"\n--- serial log tail ({serial_log}) ---\n{tail or '(empty)'}"
        return BootResult(passed, msg, elapsed, list(reached), exit_code, tail)

    vm.start()
    try:
        while True:
            now = time.monotonic()
            exit_code = vm.poll()
            follower.read_new()  # after poll(): an exited VM's last output is read
            for m in tracker.advance(follower.text):
                t = time.monotonic() - start
                reached.append((m.name, t))
                last_mark = time.monotonic()
                say(f"[{t:6.1f}s] reached: {m.name}")
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
                    return result(True, f"passed: VM {describe_exit(exit_code)}")
                return result(
                    False,
                    f"VM {describe_exit(exit_code)}, expected status {expect_exit}",
                )
            if tracker.done and expect_exit is None:
                return result(True, "passed: all milestones reached")
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
