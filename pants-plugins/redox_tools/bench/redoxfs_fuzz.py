"""Mutation fuzzing of the RedoxFS reader.

    python -m redox_tools.bench.redoxfs_fuzz [--cases 10000] [--seed 1]

Seeds: the canonical §15.2 image, the upstream-written §15.4 image (compressed record,
several generations) and a writer image with a multi-record file and an HTree directory.
Each case mutates one seed (bit flips, byte/word overwrites with edge values, block copies,
truncation) and then opens it, walks it, reads every file and symlink, replays the allocation
log and runs `check()`, half the cases with checksum verification off so the mutations reach
the parsers. The only acceptable exception is RedoxFSError; anything else (or a case slower
than --slow seconds) is a failure. Prints cases, failures, time.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import sys
import tempfile
import time
import traceback
from typing import List, Optional, Sequence, Tuple

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


def run_cases(cases: int, seed: int = 1, slow: float = 5.0) -> Tuple[int, List[str], float]:
    """Run `cases` mutations; returns (cases run, failure descriptions, slowest case seconds)."""
    rng = random.Random(seed)
    seeds = seed_images()
    used = [_used_blocks(s) for s in seeds]
    failures: List[str] = []
    slowest = 0.0
    for case in range(cases):
        k = rng.randrange(len(seeds))
        img = mutate(seeds[k], used[k], rng)
        verify = case % 2 == 0
        t = time.perf_counter()
        try:
            exercise(img, verify)
        except RedoxFSError:
            pass
        except Exception:  # noqa: BLE001 - that is what we are looking for
            failures.append(f"case {case} (seed image {k}, verify={verify}): {traceback.format_exc(limit=3)}")
        dt = time.perf_counter() - t
        slowest = max(slowest, dt)
        if dt > slow:
            failures.append(f"case {case} (seed image {k}, verify={verify}): took {dt:.1f} s")
    return cases, failures, slowest


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="mutation fuzzing of the RedoxFS reader")
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--slow", type=float, default=5.0, help="seconds after which a case counts as a hang")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    n, failures, slowest = run_cases(args.cases, args.seed, args.slow)
    dt = time.perf_counter() - t
    for f in failures[:20]:
        print(f)
    print(f"cases: {n}  failures: {len(failures)}  time: {dt:.1f} s ({n / dt:.0f} cases/s, slowest {slowest * 1000:.0f} ms)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
