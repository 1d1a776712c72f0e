"""Mutation fuzzing of the RedoxFS reader.

    python -m redox_tools.bench.redoxfs_fuzz [--cases 10000] [--seed 1]

Seeds: the canonical §15.2 image, the upstream-written §15.4 image (compressed record,
several generations) and a writer image with a multi-record file and an HTree directory.
Each case mutates one seed (bit flips, byte/word overwrites with edge values, block copies,
truncation) and then opens it, walks it, reads every file and symlink, replays the allocation
log and runs `check()`, half the cases with checksum verification off so the mutations reach
the parsers. The only acceptable exception is RedoxFSError; anything else (or a case slower
than 5 s) is a failure. Prints the outcome classes (redox_tools.fuzz.harness) and the first
failures; exit status 1 if any case failed.
"""
from __future__ import annotations

import hashlib
import io
import os
import random
import sys
import tempfile
from functools import partial
from typing import List, Optional, Sequence

from redox_tools.fuzz.harness import Tally, bench_main, run_case
from redox_tools.manifest import DIR, SYMLINK, Entry, Manifest
from redox_tools.redoxfs import RedoxFSError, RedoxFSReader, write_redoxfs
from redox_tools.redoxfs import vectors

INTERESTING = [0, 1, 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0x100, 0x1000, 0xFFFFFFFFFFFFFFF0]


def seed_images() -> List[bytes]:
    """The seed images (built once, in memory)."""
    seeds = [vectors.image_15_4()]
    with tempfile.TemporaryDirectory() as d:
        m, kw, _sha = vectors.manifest_15_2(d)
        seeds.append(_write(m, kw["size"], kw))
        entries = list(m) + [Entry("many", DIR, 0o755)]
        entries += [Entry("many/link%03d-%s" % (i, "y" * 60), SYMLINK, 0o777, target="t%d" % i) for i in range(150)]
        big = os.path.join(d, "big.bin")
        big_data = bytes(range(256)) * (600 << 10 >> 8)
        with open(big, "wb") as f:
            f.write(big_data)
        entries.append(Entry("big.bin", "file", 0o644, source=big, sha256=hashlib.sha256(big_data).hexdigest(),
                             size=600 << 10))
        seeds.append(_write(Manifest(entries), 4 << 20, {"ctime": 1}))
    return seeds


def _write(m: Manifest, size: int, kw: dict) -> bytes:
    buf = io.BytesIO(bytes(size))
    write_redoxfs(buf, m, offset=0, size=size, uuid=kw.get("uuid"), ctime=kw.get("ctime"))
    return buf.getvalue()


def _used_blocks(img: bytes) -> List[int]:
    return [i for i in range(len(img) // 4096) if img[i * 4096 : (i + 1) * 4096].strip(b"\0")]


def mutate(img: bytes, used: List[int], rng: random.Random) -> bytes:
    b = bytearray(img)
    kind = rng.randrange(6)
    blk = rng.choice(used)
    base = blk * 4096
    if kind == 0:  # a few bit flips in one used block
        for _ in range(rng.randint(1, 4)):
            pos = base + rng.randrange(4096)
            b[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:  # random bytes
        for _ in range(rng.randint(1, 8)):
            b[base + rng.randrange(4096)] = rng.randrange(256)
    elif kind == 2:  # an aligned u64/u32/u16 field gets an edge value
        size = rng.choice((2, 4, 8))
        pos = base + rng.randrange(4096 // size) * size
        b[pos : pos + size] = (rng.choice(INTERESTING) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    elif kind == 3:  # copy one used block over another
        src = rng.choice(used) * 4096
        b[base : base + 4096] = img[src : src + 4096]
    elif kind == 4:  # truncate
        del b[rng.randrange(len(b)) :]
    else:  # unaligned 8-byte overwrite with random data
        pos = base + rng.randrange(4089)
        b[pos : pos + 8] = rng.getrandbits(64).to_bytes(8, "little")
    return bytes(b)


def exercise(img: bytes, verify: bool) -> None:
    fs = RedoxFSReader(io.BytesIO(img), verify=verify)
    for path, st in fs.walk():
        if st.is_dir:
            fs.listdir(path)
        elif st.is_symlink:
            fs.readlink(path)
        else:
            fs.read(path, limit=1 << 24)
    fs.free_extents()
    fs.check()


def run(cases: int, seed: int = 1, *, hang_s: int = 0) -> Tally:
    """`cases` mutations of random seeds, every other one read with verification off; the tally
    of their outcomes (RedoxFSError is clean)."""
    rng = random.Random(seed)
    seeds = seed_images()
    used = [_used_blocks(s) for s in seeds]
    tally = Tally("redoxfs")
    for case in range(cases):
        k = rng.randrange(len(seeds))
        verify = case % 2 == 0
        read = partial(exercise, mutate(seeds[k], used[k], rng), verify)
        run_case(tally, f"case {case} (seed image {k}, verify={verify})", read, (RedoxFSError,), hang_s=hang_s)
    return tally


def main(argv: Optional[Sequence[str]] = None) -> int:
    return bench_main("redox_tools.bench.redoxfs_fuzz", __doc__, run, argv)


if __name__ == "__main__":
    sys.exit(main())
