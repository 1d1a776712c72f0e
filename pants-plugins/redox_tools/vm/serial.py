"""Following a serial log and matching ordered boot milestones.

Firmware and Redox write terminal control sequences (`ESC[2J`, `ESC[01;01H`, `ESC[=3h`,
`ESC[1m`...) and CR LF line ends (disk-image.md §9). Matching and display use the text with
escape sequences removed and CR LF / lone CR turned into LF.
"""
from __future__ import annotations

import codecs
import io
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Pattern, Sequence, Tuple

from redox_tools.errors import ToolError

# CSI (incl. private `ESC[=3h`, `ESC[?25l`), OSC (to BEL or ST), two-byte escapes.
_ESC_RE = re.compile(
    r"\x1b\[[0-9;:<=>?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[@-Z\\-_]"
    r"|\x1b[ -/][0-~]"
)
_CTRL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# An escape sequence that might still be incomplete at the end of a chunk.
_PARTIAL_RE = re.compile(r"\x1b(?:\[[0-9;:<=>?]*[ -/]*|\][^\x07\x1b]*\x1b?|[ -/])?\Z")


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences and control bytes; CR LF and lone CR become LF."""
    text = _ESC_RE.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CTRL_RE.sub("", text)


class AnsiStripper:
    """Incremental `strip_ansi` for a byte stream cut at arbitrary points."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes, final: bool = False) -> str:
        text = self._pending + self._decoder.decode(data, final)
        self._pending = ""
        if not final:
            m = _PARTIAL_RE.search(text)
            if m and m.start() < len(text):
                self._pending = text[m.start():]
                text = text[: m.start()]
            if text.endswith("\r"):  # maybe the first half of CR LF
                self._pending = "\r" + self._pending
                text = text[:-1]
        return strip_ansi(text)


class LogFollower:
    """Reads what a process appended to its serial log since the last call.

    The file may not exist yet (the VM has not opened it); that reads as nothing.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._f: Optional[io.BufferedReader] = None
        self._stripper = AnsiStripper()
        self.text = ""  # everything read so far, cleaned

    def read_new(self) -> str:
        if self._f is None:
            try:
                self._f = open(self.path, "rb")
            except FileNotFoundError:
                return ""
        data = self._f.read()
        if not data:
            return ""
        new = self._stripper.feed(data)
        self.text += new
        return new

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def tail(self, lines: int = 30, max_chars: int = 4000) -> str:
        return tail_text(self.text, lines, max_chars)


def tail_text(text: str, lines: int = 30, max_chars: int = 4000) -> str:
    kept = [ln.rstrip() for ln in text.splitlines()]
    while kept and not kept[-1]:
        kept.pop()
    out = "\n".join(kept[-lines:])
    if len(out) > max_chars:
        out = "..." + out[-max_chars:]
    return out


@dataclass(frozen=True)
class Milestone:
    name: str
    pattern: Pattern[str]
    timeout: Optional[float] = None  # seconds since the previous milestone (or the start)


class MilestoneError(ToolError):
    """A milestone/failure-pattern spec that cannot be parsed."""


_TIMEOUT_SUFFIX = re.compile(r"@(\d+(?:\.\d+)?)s?$")


def parse_milestone(text: str) -> Milestone:
    """`name=regex[@timeout_s]`, e.g. `kernel=Redox OS starting@60`.

    The timeout suffix is the last `@<number>[s]`; a regex that must end in such text can
    be followed by an explicit `@` timeout.
    """
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest:
        raise MilestoneError(f"milestone {text!r}: expected name=regex[@timeout_s]")
    timeout: Optional[float] = None
    m = _TIMEOUT_SUFFIX.search(rest)
    if m:
        timeout = float(m.group(1))
        rest = rest[: m.start()]
        if timeout <= 0:
            raise MilestoneError(f"milestone {text!r}: timeout must be positive")
    if not rest:
        raise MilestoneError(f"milestone {text!r}: empty regex")
    return Milestone(name.strip(), compile_pattern(text, rest), timeout)


def compile_pattern(label: str, regex: str) -> Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as e:
        raise MilestoneError(f"{label!r}: bad regex {regex!r}: {e}") from None


class MilestoneTracker:
    """Matches ordered milestones (each after the previous one's match) and failure
    patterns (anywhere) against the growing cleaned text."""

    def __init__(self, milestones: Sequence[Milestone], failures: Sequence[Tuple[str, Pattern[str]]] = ()) -> None:
        self.milestones = list(milestones)
        self.failures = list(failures)
        self.index = 0  # next milestone to reach
        self._pos = 0  # where the next milestone's search starts
        self._fail_pos = 0

    @property
    def done(self) -> bool:
        return self.index >= len(self.milestones)

    @property
    def current(self) -> Optional[Milestone]:
        return None if self.done else self.milestones[self.index]

    def advance(self, text: str) -> List[Milestone]:
        """Milestones newly reached in `text` (the whole cleaned log so far)."""
        reached = []
        while not self.done:
            m = self.milestones[self.index].pattern.search(text, self._pos)
            if not m:
                break
            reached.append(self.milestones[self.index])
            self._pos = m.end()
            self.index += 1
        return reached

    def failure(self, text: str) -> Optional[Tuple[str, str]]:
        """(name, matched line) of the first failure pattern seen, if any."""
        # Re-scan a little before the previous end so a pattern split across reads matches.
        start = max(0, self._fail_pos - 512)
        for name, pat in self.failures:
            m = pat.search(text, start)
            if m:
                line_start = text.rfind("\n", 0, m.start()) + 1
                line_end = text.find("\n", m.end())
                return name, text[line_start: line_end if line_end >= 0 else len(text)].strip()
        self._fail_pos = len(text)
        return None


# --- Redox presets (disk-image.md §9) -------------------------------------------------
# A userspace `UNHANDLED EXCEPTION` is not in the failure list: it kills one process, which
# need not stop the boot; the next milestone's timeout catches a boot it does stop.

REDOX_BOOTLOADER = r"Redox OS Bootloader "
REDOX_KERNEL = r"Redox OS starting"
REDOX_LOGIN = r"redox login:"

REDOX_MILESTONES = (
    ("bootloader", REDOX_BOOTLOADER),
    ("kernel", REDOX_KERNEL),
    ("login", REDOX_LOGIN),
)

REDOX_FAILURES = (
    ("no-redoxfs", r"No RedoxFS partitions found"),
    ("redoxfs-open", r"Failed to open RedoxFS"),
    ("missing-component", r"Failed to find \S+:"),
    ("bad-magic", r"has invalid magic number"),
    ("redoxfs-transaction", r"RedoxFS transaction failed while loading"),
    ("setup-panic", r"SETUP PANIC"),
    ("kernel-panic", r"KERNEL PANIC"),
    ("redoxfs-password", r"RedoxFS password \(|redoxfs: password:"),
)


def redox_failures() -> List[Tuple[str, Pattern[str]]]:
    return [(n, re.compile(p)) for n, p in REDOX_FAILURES]


def redox_milestones(timeouts: Optional[Sequence[Optional[float]]] = None) -> List[Milestone]:
    ts = list(timeouts) if timeouts else [None] * len(REDOX_MILESTONES)
    return [Milestone(n, re.compile(p), t) for (n, p), t in zip(REDOX_MILESTONES, ts)]



# --- Replies typed on the serial console (disk-image.md §10) -----------------------------
# `PATTERN=>REPLY`: once PATTERN (a regex on the cleaned text) appears, REPLY is sent to the
# guest's serial console. Replies are ordered: each one's pattern is searched after the
# previous reply's match, and each is sent once. REPLY takes escapes (`\r`, `\n`, `\t`, `\e`,
# `\\`, `\xHH`); the entry is split at the LAST `=>` (a reply never needs one).

REDOX_BOOTLOADER_MENU_PROMPT = r"Press e to edit boot environment"
# The Redox UEFI bootloader's video-mode menu waits, with no timeout, whenever a GOP display
# exists; Enter (CR) picks the preselected mode. Sent only after the prompt (§10).
REPLY_PRESETS = {
    "redox-bootloader-menu": (REDOX_BOOTLOADER_MENU_PROMPT + r"=>\r",),
}


class SerialReplyError(ToolError):
    """A serial reply spec that cannot be parsed."""


@dataclass(frozen=True)
class SerialReply:
    label: str  # the spec as written (preset entries: the expanded one)
    pattern: Pattern[str]
    reply: bytes


_REPLY_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "e": b"\x1b", "\\": b"\\", "0": b"\x00"}
_REPLY_ESCAPE_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)


def decode_reply(text: str, label: str = "") -> bytes:
    """The bytes of a REPLY: UTF-8 text with `\\r`, `\\n`, `\\t`, `\\e`, `\\0`, `\\\\`, `\\xHH`."""
    out = bytearray()
    pos = 0
    for m in _REPLY_ESCAPE_RE.finditer(text):
        out += text[pos: m.start()].encode("utf-8")
        esc = m.group(1)
        if esc.startswith("x") and len(esc) == 3:
            out.append(int(esc[1:], 16))
        elif esc in _REPLY_ESCAPES:
            out += _REPLY_ESCAPES[esc]
        else:
            raise SerialReplyError(
                f"serial reply {label or text!r}: unknown escape \\{esc} "
                "(use \\r \\n \\t \\e \\0 \\\\ \\xHH)"
            )
        pos = m.end()
    if text.endswith("\\") and pos < len(text):
        raise SerialReplyError(f"serial reply {label or text!r}: dangling backslash")
    out += text[pos:].encode("utf-8")
    return bytes(out)


def parse_reply(text: str) -> SerialReply:
    """`PATTERN=>REPLY`, e.g. `Press e to edit boot environment=>\\r`."""
    pattern, sep, reply = text.rpartition("=>")
    if not sep or not pattern:
        presets = ", ".join(sorted(REPLY_PRESETS))
        raise SerialReplyError(f"serial reply {text!r}: expected PATTERN=>REPLY or a preset ({presets})")
    data = decode_reply(reply, text)
    if not data:
        raise SerialReplyError(f"serial reply {text!r}: empty reply")
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise SerialReplyError(f"serial reply {text!r}: bad regex {pattern!r}: {e}") from None
    return SerialReply(text, compiled, data)


def parse_replies(specs: Sequence[str]) -> List[SerialReply]:
    """Entries in order; a preset name expands in place to its entries."""
    out: List[SerialReply] = []
    for spec in specs:
        if spec.strip() in REPLY_PRESETS:
            out += [parse_reply(s) for s in REPLY_PRESETS[spec.strip()]]
        else:
            out.append(parse_reply(spec))
    return out


def show_bytes(data: bytes) -> str:
    """`b'\\r'` -> `\\r`: how a reply is shown in progress lines."""
    return repr(data)[2:-1]


class ReplyTracker:
    """Which replies are due: the next one in order whose pattern appeared after the
    previous reply's match. Each is returned once."""

    def __init__(self, replies: Sequence[SerialReply]) -> None:
        self.replies = list(replies)
        self.index = 0
        self._pos = 0

    @property
    def done(self) -> bool:
        return self.index >= len(self.replies)

    def due(self, text: str) -> List[SerialReply]:
        out = []
        while not self.done:
            m = self.replies[self.index].pattern.search(text, self._pos)
            if not m:
                break
            out.append(self.replies[self.index])
            self._pos = m.end()
            self.index += 1
        return out


class SerialPipe:
    """The harness end of a VM's serial console: two FIFOs, `<base>.in` (typed to the guest)
    and `<base>.out` (what the guest writes), as QEMU's `-chardev pipe,path=<base>` opens them
    (with `logfile=<serial log>`, so the log file is written as before).

    Why FIFOs and not a unix socket: the guest's UART sends one byte per write; a stream socket
    charges each write a whole buffer, fills after a few hundred bytes, and QEMU then drops
    bytes (seen here: a mangled log). A FIFO merges small writes (64 KiB), far more than the
    guest prints between two polls. What the guest writes is drained and dropped here (the log
    file has it; `LogFollower` reads that); `send` types on the console."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.paths = (base + ".in", base + ".out")
        for path in self.paths:
            if os.path.lexists(path):
                os.unlink(path)
            os.mkfifo(path, 0o600)
        # O_RDWR: opening a FIFO never blocks and never sees EOF while QEMU comes and goes.
        self._in = os.open(self.paths[0], os.O_RDWR | os.O_NONBLOCK)
        self._out = os.open(self.paths[1], os.O_RDWR | os.O_NONBLOCK)
        self._pending = b""

    def output_fd(self) -> int:
        """Readable when the guest wrote something (for `select`)."""
        return self._out

    def read(self) -> bytes:
        """What the guest wrote since the last read (b"" if nothing). Never blocks."""
        chunks = []
        while True:
            try:
                data = os.read(self._out, 65536)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def poll(self) -> None:
        """Drain (and drop) the guest's output, flush pending input. Never blocks."""
        self.read()
        self.flush()

    def flush(self) -> None:
        """Write pending input as far as the FIFO takes it. Never blocks."""
        while self._pending:
            try:
                n = os.write(self._in, self._pending)
            except (BlockingIOError, InterruptedError):
                return
            self._pending = self._pending[n:]

    def send(self, data: bytes) -> None:
        """Type `data` on the guest's console (queued if the FIFO is full)."""
        self._pending += data
        self.poll()

    def close(self) -> None:
        for fd in (self._in, self._out):
            os.close(fd)
        for path in self.paths:
            try:
                os.unlink(path)
            except OSError:
                pass
