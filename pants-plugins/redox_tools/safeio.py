"""Creating output files without following links someone planted (issue 11 #3).

A writer that opens a predictable temporary name with `open(path, "w")` follows a symlink
found there and overwrites its target. Everything here creates files exclusively
(`O_CREAT | O_EXCL | O_NOFOLLOW`): a name that already exists (file, symlink, fifo) is never
opened, and the final rename replaces a link at the output path instead of writing through it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import IO, Any, BinaryIO, Iterator, TextIO, cast

_EXCL = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _wrap(fd: int, text: bool) -> IO[Any]:
    if text:
        return os.fdopen(fd, "w", encoding="utf-8")
    return os.fdopen(fd, "w+b")


def create_new(path: str, *, text: bool = False, mode: int = 0o644) -> IO[Any]:
    """Open a file that must not exist yet (never through a symlink)."""
    return _wrap(os.open(path, _EXCL, mode), text)


def replace_new(path: str, *, text: bool = False, mode: int = 0o644) -> IO[Any]:
    """Open `path` as a fresh file: whatever is there (a stale file or a planted link) is
    unlinked first, not written through."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return create_new(path, text=text, mode=mode)


def copy_new(src: str, dest: str, *, mode: int = 0o644) -> None:
    """Copy `src` to a fresh `dest` (see `replace_new`)."""
    with open(src, "rb") as s, replace_new(dest, mode=mode) as d:
        shutil.copyfileobj(s, d, 1 << 20)


@contextlib.contextmanager
def _atomic(out_path: str, text: bool, mode: int) -> Iterator[IO[Any]]:
    out_dir = os.path.dirname(os.path.abspath(out_path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out_path)}.", suffix=".tmp", dir=out_dir)
    ok = False
    try:
        with _wrap(fd, text) as f:
            yield f
        os.chmod(tmp, mode)
        os.replace(tmp, out_path)
        ok = True
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_output(out_path: str, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a fresh temporary file beside `out_path` (unpredictable name, created exclusively);
    rename it over `out_path` when the block succeeds, remove it when it fails."""
    with _atomic(out_path, False, mode) as f:
        yield cast(BinaryIO, f)


@contextlib.contextmanager
def atomic_text_output(out_path: str, *, mode: int = 0o644) -> Iterator[TextIO]:
    """`atomic_output` for UTF-8 text."""
    with _atomic(out_path, True, mode) as f:
        yield cast(TextIO, f)
