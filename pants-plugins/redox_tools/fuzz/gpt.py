"""Structure-aware GPT mutations with both CRCs recomputed, and `sgdisk -v` as the judge.

`mutate(rng, seed)` changes header fields (to edge values and to values related to the layout:
the array end, the backup header LBA), partition entries (LBAs, duplicate unique GUIDs, zero
types) or the protective MBR's entries; the array change goes to both copies and both headers
are re-signed, so the mutation reaches the checks behind the CRCs.
"""
from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
import tempfile
import uuid
import zlib
from typing import Tuple

from redox_tools.formats import gpt
from redox_tools.formats.gpt import Partition

SIZE = 1 << 20


def seed_image(size: int = SIZE) -> bytes:
    parts = [
        Partition("BIOS", gpt.BIOS_BOOT, uuid.UUID(int=1), 34, 199),
        Partition("EFI", gpt.EFI_SYSTEM, uuid.UUID(int=2), 200, 999),
        Partition("REDOX", gpt.LINUX_FS, uuid.UUID(int=3), 1000, 2000),
    ]
    f = io.BytesIO(bytes(size))
    gpt.write_gpt(f, size, parts, uuid.UUID(int=99))
    return f.getvalue()


def resign(d: bytearray, *, copy_array: bool = True) -> None:
    """Primary array -> backup array (when both are where the seed has them), then each
    header's array CRC and header CRC."""
    last = len(d) // 512 - 1
    if copy_array:
        d[(last - 32) * 512 : last * 512] = d[2 * 512 : 34 * 512]
    for hdr in (512, last * 512):
        alba, n, esz = struct.unpack_from("<QII", d, hdr + 72)
        if 0 < n * esz <= 1 << 20 and alba * 512 + n * esz <= len(d):
            struct.pack_into("<I", d, hdr + 88, zlib.crc32(bytes(d[alba * 512 : alba * 512 + n * esz])))
        hs, = struct.unpack_from("<I", d, hdr + 12)
        if 92 <= hs <= 512:
            struct.pack_into("<I", d, hdr + 16, 0)
            struct.pack_into("<I", d, hdr + 16, zlib.crc32(bytes(d[hdr : hdr + hs])))


# header fields: (offset, struct format)
HEADER_FIELDS = {"my_lba": (24, "<Q"), "alternate_lba": (32, "<Q"), "first_usable": (40, "<Q"), "last_usable": (48, "<Q"),
                 "array_lba": (72, "<Q"), "num_entries": (80, "<I"), "entry_size": (84, "<I")}


def mutate(rng: random.Random, seed: bytes) -> Tuple[bytes, str]:
    d = bytearray(seed)
    last = len(d) // 512 - 1
    kind = rng.randrange(5)
    if kind == 0:  # one header field, in both headers (they must agree) or only one
        name = rng.choice(sorted(HEADER_FIELDS))
        off, fmt = HEADER_FIELDS[name]
        v = rng.choice([0, 1, 2, 3, 4, 33, 34, 35, 100, last - 34, last - 33, last - 32, last - 1, last, last + 1, 0xFFFFFFFF, 2**64 - 1])
        v &= (1 << (8 * struct.calcsize(fmt))) - 1
        for hdr in ([512, last * 512] if name not in ("my_lba", "alternate_lba", "array_lba") or rng.random() < 0.3 else [rng.choice([512, last * 512])]):
            struct.pack_into(fmt, d, hdr + off, v)
        resign(d)
        return bytes(d), f"header {name}={v}"
    if kind == 1:  # a partition's LBAs
        e = 2 * 512 + 128 * rng.randrange(3)
        first, lastp = struct.unpack_from("<QQ", d, e + 32)
        v = rng.choice([0, 1, 2, 33, 34, 35, first - 1, first + 1, lastp + 1, last - 33, last - 32, last, 2**64 - 1])
        struct.pack_into("<Q", d, e + 32 + 8 * rng.randrange(2), max(0, v) & (2**64 - 1))
        resign(d)
        return bytes(d), "entry LBAs"
    if kind == 2:  # duplicate unique GUIDs, or a zero/duplicate type
        a, b = rng.sample(range(3), 2)
        ea, eb = 2 * 512 + 128 * a, 2 * 512 + 128 * b
        if rng.random() < 0.6:
            d[eb + 16 : eb + 32] = d[ea + 16 : ea + 32]
            what = "duplicate GUID"
        else:
            d[eb : eb + 16] = bytes(16) if rng.random() < 0.5 else d[ea : ea + 16]
            what = "entry type"
        resign(d)
        return bytes(d), what
    if kind == 3:  # the protective MBR's entries
        i = rng.randrange(4)
        pos = 446 + 16 * i + rng.choice([0, 4, 8, 12])
        if rng.random() < 0.5:
            d[pos] = rng.choice([0x00, 0x07, 0x0C, 0x83, 0xEE, 0xEF, 0xFF])
        else:
            d[pos : pos + 4] = struct.pack("<I", rng.choice([0, 1, 2, 34, 0xFFFFFFFF]))
        return bytes(d), "mbr entry"
    pos = rng.randrange(0, 34 * 512)  # random bytes in the primary structures, re-signed or not
    d[pos] = rng.randrange(256)
    if rng.random() < 0.5:
        resign(d, copy_array=rng.random() < 0.5)
    return bytes(d), "random"


def have_sgdisk() -> bool:
    return shutil.which("sgdisk") is not None


def sgdisk_rejects(img: bytes) -> bool:
    """True unless `sgdisk -v` says "No problems found" (it exits 0 either way)."""
    fd, path = tempfile.mkstemp(prefix="gptfuzz-", suffix=".img")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(img)
        p = subprocess.run(["sgdisk", "-v", path], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return "No problems found" not in p.stdout
    finally:
        os.unlink(path)
