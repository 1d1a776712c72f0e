"""Mutation fuzzing of the FAT reader: every case must either read cleanly or raise FatError
(no other exception, no hang).

    python -m redox_tools.bench.fat_fuzz [-n 10000] [--seed 1]

Seeds are FAT12 (1 MiB), FAT16 (8 MiB) and FAT32 (34 MiB, forced) volumes with nested
directories, long names and multi-cluster files; mutations hit the BPB, the FATs, the
directories, random bytes, and truncate the image.
"""
from __future__ import annotations

import argparse
import collections
import io
import random
import time
import traceback
from typing import Any, Counter, Dict, List, Optional, Sequence, Tuple

from redox_tools.formats import fat
from redox_tools.formats.fat import FatError, FatReader

MiB = 1 << 20

FILES = {
    "EFI/BOOT/BOOTX64.EFI": bytes(range(256)) * 24,
    "A/B/C.TXT": b"c" * 700,
    "long name here.bin": b"q" * 1500,
    "Another Long Directory/inner file.dat": b"i" * 5000,
    "EMPTY": b"",
}


def seeds() -> List[Tuple[str, bytes, fat.FatGeometry]]:
    out = []
    for name, size, ftype in (("fat12", MiB, None), ("fat16", 8 * MiB, None), ("fat32", 34 * MiB, 32)):
        f = io.BytesIO(bytes(size))
        geo = fat.write_fat(f, size=size, files=FILES, volume_id=1, fat_type=ftype)
        data = f.getvalue()
        # keep only what the structures need: metadata + the first data clusters
        keep = geo.cluster_offset(2) + 64 * geo.cluster_bytes
        out.append((name, data[:keep], geo))
    return out


def mutate(rng: random.Random, base: bytes, geo: fat.FatGeometry) -> bytes:
    d = bytearray(base)
    fat_lo = geo.fat_start * 512
    fat_hi = fat_lo + geo.sectors_per_fat * 512
    root_lo = geo.root_dir_start * 512 if geo.fat_type != 32 else geo.cluster_offset(2)
    data_lo = geo.cluster_offset(2)
    for _ in range(rng.randint(1, 10)):
        r = rng.random()
        if r < 0.25:
            off = rng.randrange(0, 96)  # BPB
        elif r < 0.5:
            off = rng.randrange(fat_lo, min(fat_hi, fat_lo + 256))  # used FAT entries
        elif r < 0.75:
            off = rng.randrange(root_lo, root_lo + 512)  # root directory
        elif r < 0.9:
            off = rng.randrange(data_lo, min(len(d), data_lo + 16 * geo.cluster_bytes))  # subdirs
        else:
            off = rng.randrange(0, len(d))
        v = rng.random()
        if v < 0.5:
            d[off] = rng.randrange(256)
        elif v < 0.8:
            d[off] = rng.choice([0x00, 0xFF, 0xE5, 0x0F, 0x10, 0x20, 0x2E, 0x41, 0x01, 0x02])
        else:
            d[off] ^= 1 << rng.randrange(8)
    if rng.random() < 0.1:
        del d[rng.randrange(0, len(d)) :]
    return bytes(d)


def exercise(data: bytes) -> str:
    try:
        r = FatReader(io.BytesIO(data))
        for _p, e in r.walk():
            if not e.is_dir:
                r.read_entry(e)
        r.listdir("/")
        return "ok"
    except FatError:
        return "FatError"


def run(n: int, seed: int = 1, *, raise_crash: bool = True) -> Dict[str, Any]:
    rng = random.Random(seed)
    bases = seeds()
    counts: Counter[str] = collections.Counter()
    crashes: List[str] = []
    slowest = 0.0
    t0 = time.perf_counter()
    for i in range(n):
        name, base, geo = bases[i % len(bases)]
        data = mutate(rng, base, geo)
        t = time.perf_counter()
        try:
            res = exercise(data)
        except Exception as e:  # anything but FatError is a reader bug
            if raise_crash:
                raise
            res = "CRASH"
            crashes.append(f"case {i} ({name}): {type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
        slowest = max(slowest, time.perf_counter() - t)
        counts[f"{name}:{res}"] += 1
    return dict(cases=n, seconds=time.perf_counter() - t0, slowest_case=slowest, counts=dict(counts), crashes=crashes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.bench.fat_fuzz")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    res = run(a.n, a.seed, raise_crash=False)
    print(f"fat_fuzz: {res['cases']} cases in {res['seconds']:.1f} s "
          f"({res['cases'] / res['seconds']:.0f}/s), slowest case {res['slowest_case'] * 1000:.1f} ms")
    for k, v in sorted(res["counts"].items()):
        print(f"  {k:<16} {v}")
    crashes = res["crashes"]
    print(f"  crashes (non-FatError): {len(crashes)}")
    for c in crashes[:5]:
        print(c)
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
