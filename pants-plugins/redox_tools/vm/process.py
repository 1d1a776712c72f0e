"""A hypervisor process that is always cleaned up.

Headless VMs run in their own session/process group, get SIGKILL if this Python process
dies (Linux `PR_SET_PDEATHSIG`), and `kill()` signals the whole group (TERM, then KILL).
Interactive VMs stay in the terminal's foreground process group so they can read the
keyboard; Ctrl-C then reaches both, and `kill()` still ends the VM by pid.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import IO, Optional, Sequence

from redox_tools.errors import ToolError
from redox_tools.safeio import replace_new

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except Exception:  # noqa: BLE001 - best effort only
            pass


class VmProcess:
    def __init__(
        self,
        argv: Sequence[str],
        interactive: bool = False,
        stderr_path: Optional[str] = None,
    ) -> None:
        self.argv = list(argv)
        self.interactive = interactive
        self.stderr_path = stderr_path
        self.proc: Optional[subprocess.Popen] = None
        self._stderr: Optional[IO[bytes]] = None

    def start(self) -> "VmProcess":
        if self.stderr_path and not self.interactive:
            self._stderr = replace_new(self.stderr_path)  # a planted link is replaced, not followed
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=None if self.interactive else subprocess.DEVNULL,
                stdout=None if self.interactive else subprocess.DEVNULL,
                stderr=self._stderr,
                start_new_session=not self.interactive,
                preexec_fn=_die_with_parent,
                close_fds=True,
            )
        except FileNotFoundError:
            self._close_stderr()
            raise ToolError(f"{self.argv[0]} not found (is the hypervisor installed?)") from None
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def poll(self) -> Optional[int]:
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout: Optional[float] = None) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self, grace: float = 2.0) -> Optional[int]:
        """End the VM (group): SIGTERM, then SIGKILL after `grace` seconds. Idempotent."""
        p = self.proc
        if p is None:
            return None
        try:
            if p.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    p.wait(grace)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    p.wait(10)
            elif not self.interactive:
                # The leader is gone; anything it left in its group goes too.
                self._signal(signal.SIGKILL)
        finally:
            self._close_stderr()
        return p.returncode

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        try:
            if self.interactive:
                self.proc.send_signal(sig)
            else:
                os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self, max_chars: int = 2000) -> str:
        if not self.stderr_path:
            return ""
        try:
            with open(self.stderr_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip()[-max_chars:]

    def __enter__(self) -> "VmProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
