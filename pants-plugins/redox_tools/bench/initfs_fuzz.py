"""Mutation fuzz of the initfs reader: corrupt valid archives and make sure the reader only ever
raises `InitfsError` (no IndexError/struct.error/ValueError/RecursionError, no hang).

    python -m redox_tools.bench.initfs_fuzz [--cases 10000] [--seed 1]

Prints the outcome classes (redox_tools.fuzz.harness) and the first failures; exit status 1
if any case failed.
"""
from __future__ import annotations

import hashlib
import os
import random
import struct
import sys
import tempfile
from functools import partial
from typing import List, Optional, Sequence

from redox_tools.formats.initfs import (
    TYPE_EXEC, TYPE_FILE, TYPE_SYMLINK, InitfsError, InitfsReader, build_initfs,
)
from redox_tools.fuzz.harness import Tally, bench_main, run_case
from redox_tools.manifest import DIR, FILE, SYMLINK, Entry, Manifest

# initfs.md §11 bootstrap: a bare ELF64 header with e_entry 0x3000
BOOTSTRAP = bytes.fromhex(
    "7f454c46020101000000000000000000" "02003e00010000000030000000000000"
    "40000000000000000000000000000000" "00000000400038000000400000000000"
) + bytes(136)


def base_images() -> List[bytes]:
    """A few valid archives with files, executables, nested and empty dirs, symlinks."""
    with tempfile.TemporaryDirectory() as tmp:
        def f(path: str, data: bytes, mode: int = 0o644) -> Entry:
            src = os.path.join(tmp, hashlib.sha256(path.encode() + data).hexdigest())
            with open(src, "wb") as fh:
                fh.write(data)
            return Entry(path, FILE, mode, source=src, sha256=hashlib.sha256(data).hexdigest(), size=len(data))

        small = Manifest([
            f("bin/init", b"#!/bin/sh\necho init\n", 0o755),
            f("hello.txt", b"Hello, initfs!\n"),
            Entry("sh", SYMLINK, 0o777, target="bin/init"),
        ])
        richer = Manifest([
            f("bin/init", b"\x7fELF" + bytes(60), 0o755),
            f("bin/logd", b"logd" * 300, 0o755),
            f("lib/init.d/00_base", b"ramfs logging\n"),
            f("lib/pcid.d/initfs.toml", b"[[drivers]]\nname = 'x'\n"),
            f("etc/empty", b""),
            Entry("var/empty-dir", DIR, 0o755),
            Entry("usr/bin/sh", SYMLINK, 0o777, target="/bin/init"),
            Entry("usr/lib", SYMLINK, 0o777, target="../lib"),
            Entry("loop", SYMLINK, 0o777, target="loop"),
        ])
        return [build_initfs(small, BOOTSTRAP), build_initfs(richer, BOOTSTRAP)]


def _hot_offsets(img: bytes) -> List[int]:
    """Offsets of header fields, inode table entries and directory entry tables."""
    hot = [0x00, 0x08, 0x0C, 0x14, 0x16, 0x18, 0x1A, 0x1000]
    try:
        r = InitfsReader(img)
    except InitfsError:
        return hot
    ito = r.header.inode_table_offset
    for i in range(r.header.inode_count):
        hot.append(ito + 12 * i)
        ino = r.inode(i)
        if ino.type == 2:
            hot.extend(ino.offset + 8 * k for k in range(ino.length // 8))
    return hot


def mutate(rng: random.Random, base: bytes, hot: Optional[Sequence[int]] = None) -> bytes:
    """One random corruption of an image, biased towards the structures that matter."""
    b = bytearray(base)
    hot = hot or [0]
    for _ in range(rng.randint(1, 6)):
        if not b:
            break
        r = rng.random()
        pos = rng.choice(hot) + rng.randrange(12) if rng.random() < 0.7 else rng.randrange(len(b))
        pos = min(pos, len(b) - 1)
        if r < 0.45:
            b[pos] = rng.randrange(256)
        elif r < 0.65:
            b[pos] ^= 1 << rng.randrange(8)
        elif r < 0.85:
            val = rng.choice([0, 1, 2, 3, 4, 8, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x1000, 0x2000, len(b), len(b) - 8,
                              rng.randrange(1 << 32), rng.choice(hot), rng.randrange(16)])
            b[pos:pos + 4] = struct.pack("<I", val & 0xFFFFFFFF)
        elif r < 0.95:
            del b[rng.randrange(len(b)):]
        else:
            b += bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    return bytes(b)


def exercise(data: bytes) -> None:
    """Everything a consumer might do with an image; raises only InitfsError on garbage."""
    r = InitfsReader(data)
    for path, st in r.walk():
        try:
            if st.type == TYPE_SYMLINK:
                r.readlink(path)
            if st.type in (TYPE_FILE, TYPE_EXEC, TYPE_SYMLINK):
                r.read(path)
            else:
                r.listdir(path)
            r.stat(path, follow_symlinks=True)
        except InitfsError:
            pass
    r.check()


def run(cases: int, seed: int = 1, *, hang_s: int = 0) -> Tally:
    """`cases` mutations of random seeds; the tally of their outcomes (InitfsError is clean)."""
    rng = random.Random(seed)
    bases = base_images()
    hots = [_hot_offsets(b) for b in bases]
    tally = Tally("initfs")
    for i in range(cases):
        k = rng.randrange(len(bases))
        run_case(tally, f"case {i}", partial(exercise, mutate(rng, bases[k], hots[k])), (InitfsError,), hang_s=hang_s)
    return tally


def main(argv: Optional[Sequence[str]] = None) -> int:
    return bench_main("redox_tools.bench.initfs_fuzz", __doc__, run, argv)


if __name__ == "__main__":
    sys.exit(main())
