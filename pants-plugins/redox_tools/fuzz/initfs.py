"""Structure-aware initfs mutations (the format has no checksums: every mutation reaches the
parser). `InitfsModel(img)` records the inode table and every directory entry; `mutate(rng)`
gives a header field, an inode field (type, length, offset) or a directory-entry field (child,
name length, name offset) an edge value or a value taken from elsewhere in the image."""
from __future__ import annotations

import random
import struct
from typing import List, Tuple

from redox_tools.formats.initfs import DIRENT_SIZE, INODE_SIZE, TYPE_DIR, InitfsReader

# header fields (offset, format): inode_table_offset, initfs_size, inode_count, root_inode, page_size
HEADER = [(0x08, "<I"), (0x0C, "<Q"), (0x14, "<H"), (0x16, "<H"), (0x18, "<H")]


class InitfsModel:
    def __init__(self, img: bytes):
        self.img = bytes(img)
        r = InitfsReader(self.img)
        h = r.header
        self.inodes = [h.inode_table_offset + INODE_SIZE * i for i in range(h.inode_count)]
        self.dirents: List[int] = []
        for i in range(h.inode_count):
            ino = r.inode(i)
            if ino.type == TYPE_DIR:
                self.dirents += [ino.offset + DIRENT_SIZE * k for k in range(ino.length // DIRENT_SIZE)]
        self.size = len(self.img)

    def edges(self, rng: random.Random) -> int:
        return rng.choice([0, 1, 2, 7, 8, 33, 34, 0xFFF, 0x1000, 0x1001, self.size - 1, self.size, self.size + 1,
                           0xFFFF, 0xFFFFFFFF, rng.randrange(self.size), 1 << 28, (1 << 64) - 1])

    def mutate(self, rng: random.Random) -> Tuple[bytes, str]:
        b = bytearray(self.img)
        kind = rng.randrange(5)
        if kind == 0:
            off, fmt = rng.choice(HEADER)
            what = f"header {off:#x}"
        elif kind == 1:  # inode "<III": type, length, offset
            base = rng.choice(self.inodes)
            off, fmt = rng.choice([(base, "<I"), (base + 4, "<I"), (base + 8, "<I")])
            what = f"inode field {off - base}"
        elif kind == 2 and self.dirents:  # dirent "<HHI": child, name length, name offset
            base = rng.choice(self.dirents)
            off, fmt = rng.choice([(base, "<H"), (base + 2, "<H"), (base + 4, "<I")])
            what = f"dirent field {off - base}"
        elif kind == 3:  # a page copied over another
            pages = self.size // 4096
            src, dst = rng.randrange(pages), rng.randrange(pages)
            b[dst * 4096 : dst * 4096 + 4096] = self.img[src * 4096 : src * 4096 + 4096]
            return bytes(b), "page copy"
        else:
            pos = rng.randrange(self.size)
            b[pos] = rng.randrange(256)
            return bytes(b), "random byte"
        v = self.edges(rng) & ((1 << (8 * struct.calcsize(fmt))) - 1)
        struct.pack_into(fmt, b, off, v)
        return bytes(b), f"{what}={v:#x}"
