"""An interactive serial console that also answers prompts (`run --serial-reply`).

QEMU's serial console goes through the FIFOs of a `SerialPipe` (QEMU still writes the serial
log); this loop copies the guest's output to the terminal, the keyboard to the guest, and types
each serial reply once its pattern appears (`ReplyTracker`, disk-image.md §10) — e.g. Enter at
the Redox bootloader's video-mode menu of a VM with a display nobody looks at.

On a terminal, keys go through one by one without local echo (the guest echoes), Enter is CR
as on a serial line, and Ctrl-C still stops the VM (ISIG is kept).
"""
from __future__ import annotations

import os
import select
import sys
import termios
from typing import BinaryIO, Callable, List, Optional, Sequence

from redox_tools.vm.process import VmProcess
from redox_tools.vm.serial import AnsiStripper, ReplyTracker, SerialPipe, SerialReply, show_bytes

POLL_SECONDS = 0.1


class _KeyboardMode:
    """Character-at-a-time input without echo on a tty; restored on exit."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: Optional[List] = None

    def __enter__(self) -> "_KeyboardMode":
        if self.fd >= 0 and os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            mode = termios.tcgetattr(self.fd)
            mode[0] &= ~(termios.ICRNL | termios.IXON | termios.INLCR | termios.IGNCR)  # iflag
            mode[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)  # lflag; ISIG kept
            mode[6][termios.VMIN] = 1
            mode[6][termios.VTIME] = 0
            termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def run_console(
    vm: VmProcess,
    pipe: SerialPipe,
    replies: Sequence[SerialReply],
    stdin_fd: Optional[int] = None,
    stdout: Optional[BinaryIO] = None,
    note: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> int:
    """Bridge terminal and serial console until the VM exits; its exit status."""
    in_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    out = stdout if stdout is not None else sys.stdout.buffer
    tracker = ReplyTracker(replies)
    stripper = AnsiStripper()
    text = ""
    keyboard = in_fd >= 0
    with _KeyboardMode(in_fd):
        while True:
            code = vm.poll()
            fds = [pipe.output_fd()] + ([in_fd] if keyboard else [])
            ready, _, _ = select.select(fds, [], [], POLL_SECONDS)
            data = pipe.read()
            if data:
                out.write(data)
                out.flush()
                if not tracker.done:
                    text += stripper.feed(data)
                    for r in tracker.due(text):
                        pipe.send(r.reply)
                        note(f"\r\n[redox-vm: replied '{show_bytes(r.reply)}' to /{r.pattern.pattern}/]\r")
                    if tracker.done:
                        text = ""
            if keyboard and in_fd in ready:
                try:
                    keys = os.read(in_fd, 1024)
                except OSError:
                    keys = b""
                if keys:
                    pipe.send(keys)
                else:
                    keyboard = False  # stdin closed: keep running, answer prompts only
            pipe.flush()
            if code is not None:
                rest = pipe.read()
                if rest:
                    out.write(rest)
                    out.flush()
                return code

