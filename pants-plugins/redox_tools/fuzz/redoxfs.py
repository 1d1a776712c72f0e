"""Structure-aware RedoxFS mutations with every block hash and the header hash recomputed.

`RfsModel(img)` finds, once per seed image, every block pointer (an aligned (addr, seahash)
pair whose hash matches the blocks it addresses), the node blocks and the valid header slots.
`mutate(rng)` changes a node field, a pointer, a header field or raw bytes of a used block,
then re-signs: each pointer to a changed block gets its hash recomputed, up to the header.
"""
from __future__ import annotations

import io
import random
import struct
from typing import Dict, List, Set, Tuple

from redox_tools.redoxfs.format import BLOCK_SIZE, H_ENC_HASH, H_HASH, HEADER_RING, SIGNATURE
from redox_tools.formats.seahash import seahash

U64 = struct.Struct("<Q")
# (offset, size) of the node fields mode..flags (NODE_STRUCT "<HIIIQQQIQIQIII")
NODE_FIELDS = {
    "mode": (0, 2), "uid": (2, 4), "gid": (6, 4), "links": (10, 4), "size": (14, 8), "blocks": (22, 8),
    "ctime": (30, 8), "mtime": (42, 8), "record_level": (66, 4), "flags": (70, 4),
}
HEADER_FIELDS = {"version": (8, 8), "size": (32, 8), "generation": (40, 8), "tree": (48, 8), "alloc": (64, 8)}
EDGES = [0, 1, 2, 3, 5, 0xFF, 0x100, 0xF7F, 0xF80, 0x1000, 0xFFFF, 0x10000, 1 << 20, 1 << 24, 1 << 30, 1 << 33,
         1 << 40, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 62, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF]


class RfsModel:
    def __init__(self, img: bytes):
        self.img = bytes(img)
        self.size_blocks = U64.unpack_from(img, 32)[0] // BLOCK_SIZE
        self.nblocks = len(img) // BLOCK_SIZE
        self.headers = [s for s in range(min(HEADER_RING, self.nblocks)) if self._header_ok(img, s)]
        self.used = [b for b in range(self.nblocks) if img[b * BLOCK_SIZE : (b + 1) * BLOCK_SIZE].strip(b"\0")]
        # pointer byte position -> (first block, count); covered block -> pointer positions
        self.ptrs: Dict[int, Tuple[int, int]] = {}
        self.parents: Dict[int, List[int]] = {}
        for b in self.used:
            base = b * BLOCK_SIZE
            for pos in range(base, base + BLOCK_SIZE - 15, 4):
                addr, h = struct.unpack_from("<QQ", img, pos)
                idx, lvl = addr >> 8, addr & 0xF
                if idx == 0 or lvl > 5 or idx + (1 << lvl) > min(self.size_blocks, self.nblocks) or h in (0, (1 << 64) - 1):
                    continue
                if seahash(img[idx * BLOCK_SIZE : (idx + (1 << lvl)) * BLOCK_SIZE]) == h:
                    self.ptrs[pos] = (idx, 1 << lvl)
                    for k in range(idx, idx + (1 << lvl)):
                        self.parents.setdefault(k, []).append(pos)
        self.nodes = self._node_blocks()
        self.ptr_list = sorted(self.ptrs)

    @staticmethod
    def _header_ok(img: bytes, slot: int) -> bool:
        h = img[slot * BLOCK_SIZE : (slot + 1) * BLOCK_SIZE]
        return h[:8] == SIGNATURE and U64.unpack_from(h, H_HASH)[0] == seahash(h[:H_ENC_HASH])

    def _node_blocks(self) -> List[int]:
        from redox_tools.redoxfs import RedoxFSReader

        fs = RedoxFSReader(io.BytesIO(self.img))
        return sorted({fs._node_ptr(st.id)[0] >> 8 for _p, st in fs.walk()})

    # ------------------------------------------------------------------------------------------
    def resign(self, b: bytearray, changed: Set[int]) -> None:
        """Recompute the hash of every pointer whose target blocks changed (or that itself
        changed), walking up to the headers, whose own hashes are recomputed last."""
        dirty = set(changed)
        done: Set[int] = set()
        for _round in range(64):
            todo = [p for blk in dirty for p in self.parents.get(blk, ())]
            todo += [p for p in self.ptr_list if p // BLOCK_SIZE in changed]
            nxt: Set[int] = set()
            for pos in todo:
                if pos in done:
                    continue
                done.add(pos)
                addr = U64.unpack_from(b, pos)[0]
                idx, n = addr >> 8, 1 << (addr & 0xF)
                if 0 < idx and (idx + n) * BLOCK_SIZE <= len(b) and n <= 32:
                    U64.pack_into(b, pos + 8, seahash(b[idx * BLOCK_SIZE : (idx + n) * BLOCK_SIZE]))
                    nxt.add(pos // BLOCK_SIZE)
            changed = set()
            dirty = nxt - {s for s in self.headers}
            if not dirty:
                break
        for s in self.headers:
            base = s * BLOCK_SIZE
            if base + BLOCK_SIZE <= len(b):
                h = seahash(b[base : base + H_ENC_HASH])
                struct.pack_into("<QQQ", b, base + H_ENC_HASH, h, 0, h)  # encrypted_hash = hash, 0: plain

    def set_node_field(self, block: int, name: str, value: int) -> bytes:
        off, size = NODE_FIELDS[name]
        b = bytearray(self.img)
        pos = block * BLOCK_SIZE + off
        b[pos : pos + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        self.resign(b, {block})
        return bytes(b)

    def mutate(self, rng: random.Random) -> Tuple[bytes, str]:
        """One mutation of the seed; returns (image, description)."""
        b = bytearray(self.img)
        kind = rng.randrange(7)
        if kind == 0 and self.nodes:  # a node field gets an edge value
            blk = rng.choice(self.nodes)
            name = rng.choice(sorted(NODE_FIELDS))
            off, size = NODE_FIELDS[name]
            v = rng.choice(EDGES) if rng.random() < 0.8 else rng.getrandbits(8 * size)
            b[blk * BLOCK_SIZE + off : blk * BLOCK_SIZE + off + size] = (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            what, changed = f"node block {blk} {name}={v:#x}", {blk}
        elif kind == 1 and self.ptr_list:  # a pointer is redirected (to another pointer's target or an edge)
            pos = rng.choice(self.ptr_list)
            if rng.random() < 0.6:
                addr = U64.unpack_from(self.img, rng.choice(self.ptr_list))[0]
            else:
                addr = (rng.choice(EDGES) << 8 | rng.randrange(16)) & ((1 << 64) - 1)
            U64.pack_into(b, pos, addr)
            what, changed = f"pointer at {pos:#x} -> {addr:#x}", {pos // BLOCK_SIZE}
        elif kind == 2 and self.headers:  # a header field
            slot = rng.choice(self.headers)
            name = rng.choice(sorted(HEADER_FIELDS))
            off, size = HEADER_FIELDS[name]
            v = rng.choice(EDGES)
            U64.pack_into(b, slot * BLOCK_SIZE + off, v)
            what, changed = f"header slot {slot} {name}={v:#x}", {slot}
        elif kind == 3:  # a node block is copied over another used block
            src = rng.choice(self.nodes or self.used)
            dst = rng.choice(self.used[1:] or self.used)
            b[dst * BLOCK_SIZE : (dst + 1) * BLOCK_SIZE] = self.img[src * BLOCK_SIZE : (src + 1) * BLOCK_SIZE]
            what, changed = f"block {src} copied over {dst}", {dst}
        elif kind == 4:  # truncation
            n = rng.randrange(len(b))
            del b[n:]
            return bytes(b), f"truncated to {n}"
        else:  # random bytes in one used block (re-signed or not)
            blk = rng.choice(self.used)
            for _ in range(rng.randint(1, 8)):
                b[blk * BLOCK_SIZE + rng.randrange(BLOCK_SIZE)] = rng.randrange(256)
            what, changed = f"random bytes in block {blk}", {blk}
            if kind == 6:
                return bytes(b), what + " (not re-signed)"
        self.resign(b, changed)
        return bytes(b), what
