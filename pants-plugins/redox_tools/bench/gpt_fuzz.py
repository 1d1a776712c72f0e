"""Mutation fuzzing of the GPT reader: every case must read or raise GptError (nothing else).

    python -m redox_tools.bench.gpt_fuzz [--cases 10000] [--seed 1]

The seed is a 1 MiB disk with a Redox-like table. Mutations hit the MBR, the primary header,
the array, the backup; about half of the cases re-sign the header/array CRCs so that the
checks behind the CRCs (sizes, LBAs, overlaps, backup consistency) are reached.
"""
from __future__ import annotations

import io
import random
import struct
import uuid
import zlib
from functools import partial
from typing import Optional, Sequence

from redox_tools.formats import gpt
from redox_tools.formats.gpt import GptError, Partition
from redox_tools.fuzz.harness import Tally, bench_main, run_case

SIZE = 1 << 20
LAST = SIZE // 512 - 1


def seed_image() -> bytes:
    parts = [
        Partition("BIOS", gpt.BIOS_BOOT, uuid.UUID(int=1), 34, 199),
        Partition("EFI", gpt.EFI_SYSTEM, uuid.UUID(int=2), 200, 999),
        Partition("REDOX", gpt.LINUX_FS, uuid.UUID(int=3), 1000, 2000),
    ]
    f = io.BytesIO(bytes(SIZE))
    gpt.write_gpt(f, SIZE, parts, uuid.UUID(int=99))
    return f.getvalue()


def _resign(d: bytearray, hdr_off: int, rng: random.Random) -> None:
    alba, n, esz = struct.unpack_from("<QII", d, hdr_off + 72, )
    if rng.random() < 0.9 and 0 < n * esz <= 1 << 20 and alba * 512 + n * esz <= len(d):
        struct.pack_into("<I", d, hdr_off + 88, zlib.crc32(bytes(d[alba * 512 : alba * 512 + n * esz])) & 0xFFFFFFFF)
    hs, = struct.unpack_from("<I", d, hdr_off + 12)
    if 92 <= hs <= 512:
        struct.pack_into("<I", d, hdr_off + 16, 0)
        struct.pack_into("<I", d, hdr_off + 16, zlib.crc32(bytes(d[hdr_off : hdr_off + hs])) & 0xFFFFFFFF)


INTERESTING = [0, 1, 2, 33, 34, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, LAST, LAST - 32, LAST - 33]


def mutate(rng: random.Random, base: bytes) -> bytes:
    d = bytearray(base)
    backup = LAST * 512
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.15:
            off = rng.randrange(440, 512)
        elif r < 0.5:
            off = rng.randrange(512, 512 + 92)
        elif r < 0.8:
            off = rng.randrange(1024, 1024 + 3 * 128)
        elif r < 0.95:
            off = rng.randrange(backup, backup + 92)
        else:
            off = rng.randrange(0, len(d))
        if rng.random() < 0.3:  # a whole integer field set to an interesting value
            width = rng.choice([4, 8])
            off -= off % width
            val = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
            d[off : off + width] = val.to_bytes(width, "little")
        else:
            d[off] = rng.randrange(256)
    if rng.random() < 0.5:
        _resign(d, 512, rng)
        if rng.random() < 0.7:
            d[backup + 72 : backup + 92] = d[512 + 72 : 512 + 92]
            struct.pack_into("<Q", d, backup + 72, LAST - 32)
            d[(LAST - 32) * 512 : (LAST - 32) * 512 + 16384] = d[1024 : 1024 + 16384]
            _resign(d, backup, rng)
    if rng.random() < 0.05:
        del d[rng.randrange(0, len(d)) :]
    return bytes(d)


def run(cases: int, seed: int = 1, *, hang_s: int = 0) -> Tally:
    """`cases` mutations of the seed, every fourth read without the backup check; the tally of
    their outcomes (GptError is clean)."""
    rng = random.Random(seed)
    base = seed_image()
    tally = Tally("gpt")
    for i in range(cases):
        read = partial(gpt.read_gpt, io.BytesIO(mutate(rng, base)), check_backup=i % 4 != 0)
        run_case(tally, f"case {i}", read, (GptError,), hang_s=hang_s)
    return tally


def main(argv: Optional[Sequence[str]] = None) -> int:
    return bench_main("redox_tools.bench.gpt_fuzz", __doc__, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
