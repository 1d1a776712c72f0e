"""RedoxFS version 8 on-disk constants and small codecs (docs/formats/redoxfs.md §2–§10)."""
from __future__ import annotations

import struct
from typing import List, Sequence, Tuple

from redox_tools.errors import FormatError
from redox_tools.formats.seahash import seahash, seahash_many


class RedoxFSError(FormatError):
    """Bad RedoxFS data (reader) or an impossible RedoxFS image request (writer)."""


BLOCK_SIZE = 4096
SIGNATURE = b"RedoxFS\0"
VERSION = 8
HEADER_RING = 256
RECORD_LEVEL = 5  # files: 4096 << 5 = 128 KiB records
DIR_ENTRY_MAX_LENGTH = 252
INLINE_OFFSET = 128
INLINE_CAPACITY = BLOCK_SIZE - INLINE_OFFSET  # 3968
INLINE_MAX = INLINE_CAPACITY - 1  # data stays inline while size <= 3967
TREE_ENTRIES = 254
BLOCKLIST_ENTRIES = 256
HTREE_ENTRIES = 204
ALLOC_ENTRIES = 255
DIRLIST_BYTES = 4092
MAX_LEVEL = 15

# Node level data: (byte offset in the node block, pointer count, BlockList depth)
LEVEL_TABLE = ((128, 128, 0), (2176, 64, 1), (3200, 32, 2), (3712, 16, 3), (3968, 8, 4))

MODE_TYPE = 0xF000
MODE_FILE = 0x8000
MODE_DIR = 0x4000
MODE_SYMLINK = 0xA000
MODE_SOCK = 0xC000
MODE_PERM = 0x0FFF

FLAG_INLINE = 1

# Header field offsets
H_TREE = 48
H_ALLOC = 64
H_RELEASE = 3152
H_ENC_HASH = 4072
H_HASH = 4088

MARKER_HASH = 0xFFFFFFFFFFFFFFFF
HTREE_UNUSED = 0xFFFFFFFF

NODE_STRUCT = struct.Struct("<HIIIQQQIQIQIII")  # mode..flags, 74 bytes at offset 0
PTR_STRUCT = struct.Struct("<QQ")
HTREE_PTR = struct.Struct("<IQQ")
DIRLIST_TAIL = struct.Struct("<HH")


def make_addr(index: int, level: int, decomp_level: int = 0) -> int:
    return (index << 8) | (decomp_level << 4) | level


def addr_index(addr: int) -> int:
    return addr >> 8


def addr_level(addr: int) -> int:
    return addr & 0xF


def addr_decomp(addr: int) -> int:
    return (addr >> 4) & 0xF


def is_marker(addr: int, h: int) -> bool:
    return (addr | 0xF) == 0xFFFFFFFFFFFFFFFF and h == MARKER_HASH


def name_hash(name: bytes) -> int:
    """HTree key of a directory entry name (§9.4)."""
    h = seahash(name) & 0xFFFFFFFF
    return 0xFFFFFFFE if h == 0xFFFFFFFF else h


def name_hashes(names: Sequence[bytes]) -> List[int]:
    """`name_hash` of many names at once (batched seahash)."""
    out = []
    for h in seahash_many(names):
        h &= 0xFFFFFFFF
        out.append(0xFFFFFFFE if h == 0xFFFFFFFF else h)
    return out


def next_node_id(i: int) -> int:
    """The valid node id after `i` (ids whose bytes are 254/255 are skipped, §6.2)."""
    i += 1
    while True:
        if (i & 0xFF) >= TREE_ENTRIES:
            i = (i | 0xFF) + 1
            continue
        if ((i >> 8) & 0xFF) >= TREE_ENTRIES:
            i = (i | 0xFFFF) + 1
            continue
        if ((i >> 16) & 0xFF) >= TREE_ENTRIES:
            i = (i | 0xFFFFFF) + 1
            continue
        if (i >> 24) >= TREE_ENTRIES:
            raise RedoxFSError("too many nodes for a RedoxFS node tree")
        return i


def id_parts(node_id: int) -> Tuple[int, int, int, int]:
    return (node_id >> 24) & 0xFF, (node_id >> 16) & 0xFF, (node_id >> 8) & 0xFF, node_id & 0xFF


def record_level_for(length: int) -> int:
    """Smallest block level whose block holds `length` bytes (§8.1)."""
    blocks = max(1, -(-length // BLOCK_SIZE))
    return (blocks - 1).bit_length()


def uuid_str(u: bytes) -> str:
    h = u.hex()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def lz4_block_decompress(src: bytes, out_size: int) -> bytes:
    """Decode one raw LZ4 block (§8.3) into at most `out_size` bytes; the result is
    zero-padded to `out_size`. Raises RedoxFSError on malformed input or overflow."""
    out = bytearray()
    n = len(src)
    i = 0
    while i < n:
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                if i >= n:
                    raise RedoxFSError("LZ4: truncated literal length")
                b = src[i]
                i += 1
                lit += b
                if b != 255:
                    break
        if i + lit > n:
            raise RedoxFSError("LZ4: literals run past the end of the input")
        if len(out) + lit > out_size:
            raise RedoxFSError("LZ4: output larger than the record")
        out += src[i : i + lit]
        i += lit
        if i >= n:
            break
        if i + 2 > n:
            raise RedoxFSError("LZ4: truncated match offset")
        offset = src[i] | (src[i + 1] << 8)
        i += 2
        if offset == 0 or offset > len(out):
            raise RedoxFSError("LZ4: bad match offset")
        mlen = token & 15
        if mlen == 15:
            while True:
                if i >= n:
                    raise RedoxFSError("LZ4: truncated match length")
                b = src[i]
                i += 1
                mlen += b
                if b != 255:
                    break
        mlen += 4
        if len(out) + mlen > out_size:
            raise RedoxFSError("LZ4: output larger than the record")
        start = len(out) - offset
        if offset >= mlen:
            out += out[start : start + mlen]
        else:
            # overlapping copy: the pattern of `offset` bytes repeats
            pattern = bytes(out[start:])
            reps = -(-mlen // offset)
            out += (pattern * reps)[:mlen]
    if len(out) < out_size:
        out += bytes(out_size - len(out))
    return bytes(out)
