"""Structure-aware FAT mutations and fsck.fat as the judge.

`FatModel(img)` records, once per seed, the byte offset of every directory entry (short and
long-name slots) and every file's and directory's cluster chain. `mutate(rng)` cross-links two
files, loops a chain, gives a FAT entry or a directory-entry field an edge value, plants a
forbidden character in a name, or changes a BPB field; FAT edits go to every FAT copy, so the
copies stay equal and a mutation reaches the chain logic rather than "FATs differ".
`fsck_rejects(img)` runs `fsck.fat -n` on it (None when dosfstools is missing).
"""
from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
import tempfile
from typing import List, Optional, Tuple

from redox_tools.formats.fat import ATTR_DIRECTORY, ATTR_LFN, ATTR_VOLUME_ID, BAD, EOC, FAT12, FAT32, FatReader


class FatModel:
    def __init__(self, img: bytes):
        self.img = bytes(img)
        r = FatReader(io.BytesIO(self.img))
        self.geo = g = r.geometry
        self.bps = g.bytes_per_sector
        self.short: List[Tuple[int, bool]] = []  # (dirent byte offset, is_dir)
        self.lfn: List[int] = []
        self.chains: List[List[int]] = []
        root = g.root_cluster if g.fat_type == FAT32 else None
        todo: List[Optional[int]] = [root]
        while todo:
            first = todo.pop()
            if first is None:
                spans = [(g.root_dir_start * self.bps, g.root_entries * 32)]
            else:
                ch = r.chain(first)
                self.chains.append(ch)
                spans = [(g.cluster_offset(c), g.cluster_bytes) for c in ch]
            for base, n in spans:
                for off in range(base, base + n, 32):
                    e = self.img[off : off + 32]
                    if e[0] in (0, 0xE5):
                        continue
                    if e[11] & 0x3F == ATTR_LFN:
                        self.lfn.append(off)
                        continue
                    if e[11] & ATTR_VOLUME_ID or e[:2] in (b". ", b".."):
                        continue
                    is_dir = bool(e[11] & ATTR_DIRECTORY)
                    self.short.append((off, is_dir))
                    fc = self._first(e)
                    if is_dir:
                        todo.append(fc)
                    elif fc:
                        self.chains.append(r.chain(fc))
        self.files = [o for o, d in self.short if not d]

    def _first(self, e: bytes) -> int:
        lo, = struct.unpack_from("<H", e, 26)
        hi, = struct.unpack_from("<H", e, 20)
        return (hi << 16 | lo) if self.geo.fat_type == FAT32 else lo

    def set_fat(self, b: bytearray, cluster: int, value: int) -> None:
        g = self.geo
        for k in range(g.num_fats):
            base = (g.fat_start + k * g.sectors_per_fat) * self.bps
            if g.fat_type == FAT12:
                pos = base + cluster * 3 // 2
                v = b[pos] | b[pos + 1] << 8
                v = (v & 0x000F) | (value & 0xFFF) << 4 if cluster & 1 else (v & 0xF000) | (value & 0xFFF)
                b[pos], b[pos + 1] = v & 0xFF, v >> 8
            elif g.fat_type == 16:
                struct.pack_into("<H", b, base + cluster * 2, value & 0xFFFF)
            else:
                struct.pack_into("<I", b, base + cluster * 4, value & 0x0FFFFFFF)

    def set_first(self, b: bytearray, off: int, cluster: int) -> None:
        struct.pack_into("<H", b, off + 26, cluster & 0xFFFF)
        if self.geo.fat_type == FAT32:
            struct.pack_into("<H", b, off + 20, cluster >> 16)

    def mutate(self, rng: random.Random) -> Tuple[bytes, str]:
        b = bytearray(self.img)
        g = self.geo
        t = g.fat_type
        kind = rng.randrange(8)
        if kind == 0 and len(self.files) > 1:  # cross-link two files
            a, c = rng.sample(self.files, 2)
            self.set_first(b, a, self._first(self.img[c : c + 32]))
            return bytes(b), "cross-link"
        if kind == 1 and self.chains:  # a chain loops back to one of its own clusters
            ch = rng.choice(self.chains)
            i = rng.randrange(len(ch))
            self.set_fat(b, ch[i], ch[rng.randrange(i + 1)])
            return bytes(b), "loop"
        if kind == 2 and self.chains:  # a FAT entry in a chain gets an edge value
            c = rng.choice(rng.choice(self.chains))
            self.set_fat(b, c, rng.choice([0, 1, BAD[t], EOC[t], g.cluster_count + 2, rng.randrange(2, g.cluster_count + 2)]))
            return bytes(b), "fat-entry"
        if kind == 3 and self.short:  # a directory-entry field
            off, _d = rng.choice(self.short)
            field = rng.randrange(3)
            if field == 0:
                struct.pack_into("<I", b, off + 28, rng.choice([0, 1, 511, 512, 513, 4096, 1 << 20, 0xFFFFFFFF]))
            elif field == 1:
                self.set_first(b, off, rng.choice([0, 1, 2, 3, g.cluster_count + 1, g.cluster_count + 2, 0xFFFF]))
            else:
                b[off + 11] ^= rng.choice([ATTR_DIRECTORY, ATTR_VOLUME_ID, 0x0F, 0x40])
            return bytes(b), "dirent"
        if kind == 4 and self.short:  # a forbidden character in a short name
            off, _d = rng.choice(self.short)
            b[off + rng.randrange(11)] = rng.choice(b'/\\:*?"<>|.\x01\x7f')
            return bytes(b), "short-name"
        if kind == 5 and self.lfn:  # a forbidden character in a long name
            off = rng.choice(self.lfn)
            pos = off + rng.choice([1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30])
            struct.pack_into("<H", b, pos, ord(rng.choice('/\\:*?"<>|')))
            return bytes(b), "long-name"
        if kind == 6:  # a BPB field
            off, size = rng.choice([(11, 2), (13, 1), (14, 2), (16, 1), (17, 2), (19, 2), (22, 2), (32, 4), (36, 4), (44, 4)])
            v = rng.choice([0, 1, 2, 3, 0x80, 0xFF, 0x200, 0xFFFF, 0xFFFFFFFF])
            b[off : off + size] = (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            return bytes(b), "bpb"
        pos = rng.randrange(len(b))  # random bytes anywhere (mostly data: must not matter)
        for _ in range(rng.randint(1, 8)):
            b[min(len(b) - 1, pos + rng.randrange(64))] = rng.randrange(256)
        return bytes(b), "random"


def have_fsck() -> bool:
    return shutil.which("fsck.fat") is not None


def fsck_rejects(img: bytes) -> bool:
    """True when `fsck.fat -n` finds a problem in the volume (exit status non-zero)."""
    fd, path = tempfile.mkstemp(prefix="fatfuzz-", suffix=".img")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(img)
        p = subprocess.run(["fsck.fat", "-n", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return p.returncode != 0
    finally:
        os.unlink(path)
