"""A deterministic content hash of a checked-out source tree ("tree hash").

    python -m redox_tools.sources.treehash DIR [--list]

Prints `sha256:<64 hex digits>`; `--list` prints the records the hash is computed over (one per
line, without the trailing NUL), to find which file differs between two trees.

The hash covers what a build sees: file contents, symlink targets, directories (so empty ones
count) and the executable bit. It ignores every entry named `.git` at any depth (the
repository's own `.git` directory and the `.git` files/directories of submodule checkouts), so
a submodule checkout counts as plain content. It does not depend on timestamps, owners, other
mode bits, the order the file system lists entries in, or whether the tree came from git, an
archive or a copy.

Exact format (version 1) — anyone can recompute it:

1. Walk DIR recursively without following symlinks. Skip every entry whose name is exactly
   `.git` (and, for a directory, everything below it). DIR itself is not an entry.
2. For each remaining entry take its path relative to DIR, components joined with `/`, as bytes
   (the file system's bytes; `os.fsencode`). No leading `./`, no trailing `/`.
3. Make one record per entry:

       <type> SP <x> SP <size> SP <digest> SP <path> NUL

   - `<type>`: `d` directory, `f` regular file, `l` symbolic link (one ASCII byte). Any other
     kind (fifo, socket, device) is an error.
   - `<x>`: `1` for a regular file whose owner-execute bit (0o100) is set, else `0`.
   - `<size>`: decimal ASCII, no leading zeros: the file's length in bytes, the length of the
     symlink target in bytes, `0` for a directory.
   - `<digest>`: 64 lowercase hex digits of SHA-256 over the file's contents, or over the
     symlink target bytes (as `readlink` returns them, not resolved); `-` for a directory.
   - SP is one 0x20 byte, NUL one 0x00 byte (paths cannot contain NUL, so the record is
     unambiguous).
4. Sort the records by path, comparing the path bytes (plain bytewise order of the whole
   relative path; e.g. `a.txt` < `a/b` because `.` = 0x2E < `/` = 0x2F).
5. The hash is SHA-256 over the byte string `redox-treehash-v1` NUL followed by all records in
   that order; written as `sha256:` + 64 lowercase hex digits.

An empty directory DIR therefore hashes to sha256 of `b"redox-treehash-v1\\0"`.

Library: `tree_hash(root) -> str`, `tree_records(root) -> list[TreeRecord]`,
`is_tree_hash(value) -> bool`.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from typing import List, Optional, Sequence

from redox_tools.errors import ToolError, run_main

PREFIX = b"redox-treehash-v1\0"
IGNORED_NAME = ".git"
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHUNK = 1 << 20


class TreeHashError(ToolError):
    """A tree that cannot be hashed (missing, special files)."""


@dataclass(frozen=True)
class TreeRecord:
    path: bytes
    kind: str  # "d", "f", "l"
    executable: bool
    size: int
    digest: str  # hex, or "-" for directories

    def encode(self) -> bytes:
        return b"%s %s %d %s %s\0" % (
            self.kind.encode(),
            b"1" if self.executable else b"0",
            self.size,
            self.digest.encode(),
            self.path,
        )


def is_tree_hash(value: str) -> bool:
    """True for a well-formed `sha256:<64 lowercase hex>` tree hash."""
    return bool(_HASH_RE.match(value))


def _file_digest(path: bytes) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(_CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def tree_records(root: "str | os.PathLike[str]") -> List[TreeRecord]:
    """The records of `root` (sorted), as defined in the module docstring."""
    root_b = os.fsencode(os.fspath(root))
    try:
        st = os.stat(root_b)
    except OSError as e:
        raise TreeHashError(f"cannot hash {os.fsdecode(root_b)}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise TreeHashError(f"cannot hash {os.fsdecode(root_b)}: not a directory")
    records: List[TreeRecord] = []
    stack: List[bytes] = [b""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root_b, rel_dir) if rel_dir else root_b
        with os.scandir(abs_dir) as it:
            entries = list(it)
        for entry in entries:
            name = entry.name
            if name == b".git":
                continue
            rel = rel_dir + b"/" + name if rel_dir else name
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink(entry.path)
                records.append(TreeRecord(rel, "l", False, len(target), hashlib.sha256(target).hexdigest()))
            elif stat.S_ISDIR(mode):
                records.append(TreeRecord(rel, "d", False, 0, "-"))
                stack.append(rel)
            elif stat.S_ISREG(mode):
                records.append(
                    TreeRecord(rel, "f", bool(mode & stat.S_IXUSR), st.st_size, _file_digest(entry.path))
                )
            else:
                raise TreeHashError(
                    f"cannot hash {os.fsdecode(os.path.join(root_b, rel))}: not a file, directory or "
                    "symlink (fifo, socket or device)"
                )
    records.sort(key=lambda r: r.path)
    return records


def tree_hash(root: "str | os.PathLike[str]") -> str:
    """`sha256:<hex>` of the tree at `root` (see the module docstring for the exact format)."""
    h = hashlib.sha256(PREFIX)
    for rec in tree_records(root):
        h.update(rec.encode())
    return "sha256:" + h.hexdigest()


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m redox_tools.sources.treehash",
        description="Print the redox-treehash-v1 content hash of a directory (ignores .git).",
    )
    ap.add_argument("dir")
    ap.add_argument("--list", action="store_true", help="print the hashed records instead")
    args = ap.parse_args(argv)
    if args.list:
        for rec in tree_records(args.dir):
            line = rec.encode()[:-1].decode("utf-8", "backslashreplace")
            print(line)
        return 0
    print(tree_hash(args.dir))
    return 0


if __name__ == "__main__":
    run_main(main)
