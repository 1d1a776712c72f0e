"""Mutation fuzzing of the FAT reader: every case must either read cleanly or raise FatError
(no other exception, no hang).

    python -m redox_tools.bench.fat_fuzz [--cases 10000] [--seed 1]

Seeds are FAT12 (1 MiB), FAT16 (8 MiB) and FAT32 (34 MiB, forced) volumes with nested
directories, long names and multi-cluster files; mutations hit the BPB, the FATs, the
directories, random bytes, and truncate the image.
"""
from __future__ import annotations

import io
import random
from functools import partial
from typing import List, Optional, Sequence, Tuple

from redox_tools.formats import fat
from redox_tools.formats.fat import FatError, FatReader
from redox_tools.fuzz.harness import Tally, bench_main, run_case

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


def exercise(data: bytes) -> None:
    r = FatReader(io.BytesIO(data))
    for _p, e in r.walk():
        if not e.is_dir:
            r.read_entry(e)
    r.listdir("/")


def run(cases: int, seed: int = 1, *, hang_s: int = 0) -> Tally:
    """`cases` mutations of the seeds in turn; the tally of their outcomes (FatError is clean)."""
    rng = random.Random(seed)
    bases = seeds()
    tally = Tally("fat")
    for i in range(cases):
        name, base, geo = bases[i % len(bases)]
        run_case(tally, f"case {i} ({name})", partial(exercise, mutate(rng, base, geo)), (FatError,), hang_s=hang_s)
    return tally


def main(argv: Optional[Sequence[str]] = None) -> int:
    return bench_main("redox_tools.bench.fat_fuzz", __doc__, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
