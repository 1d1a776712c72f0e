"""RedoxFS v8 reader and checker (docs/formats/redoxfs.md §5–§12).

    with open("redoxfs.img", "rb") as f:
        fs = RedoxFSReader(f)              # header ring opened, current header verified
        fs.listdir("/usr/lib/boot")        # ['initfs', 'kernel'] (on-disk order)
        fs.read("/usr/lib/boot/kernel")    # bytes (records, BlockLists, LZ4 records)
        fs.check()                         # every checksum, allocation log, counts, flags

Every block read through a pointer is hash-checked. Bad data raises RedoxFSError only: reads
are bounds-checked against the filesystem and the file, every structure walk is bounded and
HTree/allocation-chain/directory cycles are detected. Symlinks are never followed (like the
bootloader); `readlink` returns their target.
"""
from __future__ import annotations

import bisect
import os
import stat as stat_mod
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Set, Tuple

import numpy as np

from redox_tools.redoxfs.format import (
    ALLOC_ENTRIES,
    BLOCK_SIZE,
    BLOCKLIST_ENTRIES,
    DIR_ENTRY_MAX_LENGTH,
    DIRLIST_BYTES,
    FLAG_INLINE,
    H_ALLOC,
    H_ENC_HASH,
    H_HASH,
    H_RELEASE,
    H_TREE,
    HEADER_RING,
    HTREE_ENTRIES,
    INLINE_CAPACITY,
    INLINE_MAX,
    INLINE_OFFSET,
    LEVEL_TABLE,
    MODE_DIR,
    MODE_FILE,
    MODE_SOCK,
    MODE_SYMLINK,
    MODE_TYPE,
    NODE_STRUCT,
    PTR_STRUCT,
    RECORD_LEVEL,
    SIGNATURE,
    TREE_ENTRIES,
    VERSION,
    RedoxFSError,
    addr_decomp,
    addr_index,
    addr_level,
    is_marker,
    lz4_block_decompress,
    name_hash,
    uuid_str,
)
from redox_tools.formats.seahash import BATCH_MIN_ROWS, seahash, seahash_rows

__all__ = ["RedoxFSReader", "RedoxStat", "CheckReport", "NotFoundError"]

SCAN_BLOCKS = 65536
DEFAULT_READ_LIMIT = 1 << 30
_CACHE_MAX = 4096
_BATCH = 64  # records verified per batch while streaming a file


class NotFoundError(RedoxFSError):
    """A path that does not exist in the filesystem."""


Ptr = Tuple[int, int]  # (addr, hash)


@dataclass(frozen=True)
class RedoxStat:
    id: int
    mode: int
    uid: int
    gid: int
    links: int
    size: int
    blocks: int
    ctime: int
    ctime_nsec: int
    mtime: int
    mtime_nsec: int
    atime: int
    atime_nsec: int
    record_level: int
    flags: int

    @property
    def kind(self) -> str:
        t = self.mode & MODE_TYPE
        return {MODE_FILE: "file", MODE_DIR: "dir", MODE_SYMLINK: "symlink", MODE_SOCK: "socket"}.get(t, "unknown")

    @property
    def is_dir(self) -> bool:
        return self.mode & MODE_TYPE == MODE_DIR

    @property
    def is_file(self) -> bool:
        return self.mode & MODE_TYPE == MODE_FILE

    @property
    def is_symlink(self) -> bool:
        return self.mode & MODE_TYPE == MODE_SYMLINK

    @property
    def inline(self) -> bool:
        return bool(self.flags & FLAG_INLINE)

    @property
    def perm(self) -> int:
        return self.mode & 0o7777

    def filemode(self) -> str:
        """`ls -l` style mode string."""
        t = {MODE_FILE: stat_mod.S_IFREG, MODE_DIR: stat_mod.S_IFDIR, MODE_SYMLINK: stat_mod.S_IFLNK,
             MODE_SOCK: stat_mod.S_IFSOCK}.get(self.mode & MODE_TYPE, 0)
        return stat_mod.filemode(t | (self.mode & 0o7777))


@dataclass
class CheckReport:
    errors: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    nodes: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    used_blocks: int = 0
    free_blocks: int = 0
    total_blocks: int = 0
    content_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


class _Node:
    __slots__ = ("id", "raw", "st")

    def __init__(self, node_id: int, raw: bytes, st: RedoxStat):
        self.id = node_id
        self.raw = raw
        self.st = st

    def ptr(self, off: int) -> Ptr:
        return PTR_STRUCT.unpack_from(self.raw, off)  # type: ignore[return-value]


def _parse_node(node_id: int, raw: bytes) -> _Node:
    st = RedoxStat(node_id, *NODE_STRUCT.unpack_from(raw, 0))
    return _Node(node_id, raw, st)


class RedoxFSReader:
    """Read-only access to a RedoxFS v8 filesystem starting at byte `offset` of `fh`.

    `offset` is the position of ring slot 0 (the partition start, or 2 MiB in a whole disk).
    With `scan=True` the first 65536 blocks from `offset` are searched for a valid header, like
    `redoxfs` on a host does. `verify=False` skips checksum comparisons (for inspecting damaged
    images and for fuzzing the parsers); every structural check stays on."""

    def __init__(self, fh: BinaryIO, offset: int = 0, *, scan: bool = False, verify: bool = True,
                 size: Optional[int] = None):
        # `size`: bytes of the container from `offset` (a partition); a header claiming more is refused
        self.fh = fh
        self.verify = verify
        try:
            self._fd: Optional[int] = fh.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None
        self._file_len = self._length()
        if offset < 0 or offset >= self._file_len:
            raise RedoxFSError(f"offset {offset} is outside the image ({self._file_len} bytes)")
        self._cache: Dict[Ptr, bytes] = {}
        self._open_ring(offset, scan)
        end = self._file_len if size is None else min(self._file_len, offset + size)
        if size is not None and self._start + self.size > end:
            raise RedoxFSError(f"the filesystem's size {self.size} exceeds its container ({end - self._start} bytes from byte {self._start})")
        # what a file can hold at most: the filesystem's size, within the bytes actually present
        self._max_file = max(0, min(self.size, end - self._start))

    # -- low-level I/O ------------------------------------------------------------------------------
    def _length(self) -> int:
        if self._fd is not None:
            st = os.fstat(self._fd)
            if stat_mod.S_ISREG(st.st_mode):
                return st.st_size
            try:
                return os.lseek(self._fd, 0, os.SEEK_END)
            except OSError as exc:
                raise RedoxFSError(f"cannot size the image: {exc.strerror}") from None
        pos = self.fh.seek(0, os.SEEK_END)
        return int(pos)

    def _pread(self, pos: int, n: int) -> bytes:
        if pos < 0 or pos + n > self._file_len:
            raise RedoxFSError(f"read of {n} bytes at byte {pos} runs past the end of the image ({self._file_len} bytes)")
        try:
            if self._fd is not None:
                data = os.pread(self._fd, n, pos)
            else:
                self.fh.seek(pos)
                data = self.fh.read(n)
        except OSError as exc:
            raise RedoxFSError(f"cannot read the image at byte {pos}: {exc.strerror}") from None
        if len(data) != n:
            raise RedoxFSError(f"short read at byte {pos}: the image is truncated")
        return data

    def _read_blocks(self, index: int, count: int, what: str) -> bytes:
        if index <= 0 or index + count > self._size_blocks:
            raise RedoxFSError(f"{what}: block {index} (+{count}) is outside the filesystem ({self._size_blocks} blocks)")
        return self._pread(self._start + index * BLOCK_SIZE, count * BLOCK_SIZE)

    def _read_ptr(self, ptr: Ptr, what: str, *, cache: bool = True, level0: bool = True) -> bytes:
        """Read and verify one block. Verified level-0 blocks are cached by (addr, hash)."""
        addr, h = ptr
        cache = cache and level0
        if cache:
            hit = self._cache.get(ptr)
            if hit is not None:
                return hit
        index, level = addr_index(addr), addr_level(addr)
        if index == 0:
            raise RedoxFSError(f"{what}: null pointer")
        if level0 and (level != 0 or addr_decomp(addr) != 0):
            raise RedoxFSError(f"{what}: pointer {addr:#x} must be level 0 and uncompressed")
        data = self._read_blocks(index, 1 << level, what)
        if self.verify and seahash(data) != h:
            raise RedoxFSError(f"{what}: checksum mismatch in block {index} (pointer hash {h:#018x})")
        if cache:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[ptr] = data
        return data

    def _read_ptrs(self, ptrs: List[Ptr], what: str, max_level: int = 0) -> List[bytes]:
        """Read and verify many pointers at once (batched hashing per block size)."""
        out: List[bytes] = [b""] * len(ptrs)
        groups: Dict[int, List[int]] = {}
        for i, (addr, _h) in enumerate(ptrs):
            lv = addr_level(addr)
            if addr_index(addr) == 0:
                raise RedoxFSError(f"{what}: null pointer")
            if lv > max_level:
                raise RedoxFSError(f"{what}: block level {lv} is above {max_level}")
            groups.setdefault(lv, []).append(i)
        for lv, idx in groups.items():
            if lv == 0:
                hit = [i for i in idx if ptrs[i] in self._cache]
                for i in hit:
                    out[i] = self._cache[ptrs[i]]
                if hit:
                    idx = [i for i in idx if ptrs[i] not in self._cache]
            datas = [self._read_blocks(addr_index(ptrs[i][0]), 1 << lv, what) for i in idx]
            if not self.verify:
                for i, d in zip(idx, datas):
                    out[i] = d
                continue
            if len(idx) >= BATCH_MIN_ROWS:
                arr = np.frombuffer(b"".join(datas), dtype=np.uint8).reshape(len(idx), BLOCK_SIZE << lv)
                hashes = seahash_rows(arr).tolist()
            else:
                hashes = [seahash(d) for d in datas]
            for i, d, h in zip(idx, datas, hashes):
                if h != ptrs[i][1]:
                    raise RedoxFSError(
                        f"{what}: checksum mismatch in block {addr_index(ptrs[i][0])} (pointer hash {ptrs[i][1]:#018x})"
                    )
                out[i] = d
                if lv == 0:
                    if len(self._cache) >= _CACHE_MAX:
                        self._cache.clear()
                    self._cache[ptrs[i]] = d
        return out

    # -- header ring ---------------------------------------------------------------------------------
    def _header_valid(self, h: bytes) -> bool:
        return (
            h[0:8] == SIGNATURE
            and int.from_bytes(h[8:16], "little") == VERSION
            and (not self.verify or int.from_bytes(h[H_HASH : H_HASH + 8], "little") == seahash(h[:H_ENC_HASH]))
        )

    def _open_ring(self, offset: int, scan: bool) -> None:
        limit = SCAN_BLOCKS if scan else 1
        found: Optional[Tuple[int, bytes]] = None
        for b in range(limit):
            pos = offset + b * BLOCK_SIZE
            if pos + BLOCK_SIZE > self._file_len:
                break
            h = self._pread(pos, BLOCK_SIZE)
            if h[0:8] == SIGNATURE and self._header_valid(h):
                found = (b, h)
                break
        if found is None:
            where = f"in the first {limit} blocks from byte {offset}" if scan else f"at byte {offset}"
            raise RedoxFSError(f"no valid RedoxFS v{VERSION} header {where}")
        b, h0 = found
        gen0 = int.from_bytes(h0[40:48], "little")
        base = b - gen0 % HEADER_RING
        if base < 0:
            raise RedoxFSError(f"header generation {gen0} puts the ring before the start of the image")
        self._start = offset + base * BLOCK_SIZE
        ring_len = min(HEADER_RING * BLOCK_SIZE, self._file_len - self._start)
        ring = self._pread(self._start, ring_len - ring_len % BLOCK_SIZE)
        best: Optional[bytes] = None
        best_gen = -1
        best_slot = 0
        self.ring_generations: List[Tuple[int, int]] = []
        for slot in range(len(ring) // BLOCK_SIZE):
            h = ring[slot * BLOCK_SIZE : (slot + 1) * BLOCK_SIZE]
            if h[0:8] == SIGNATURE and self._header_valid(h):
                g = int.from_bytes(h[40:48], "little")
                self.ring_generations.append((slot, g))
                if g > best_gen:
                    best, best_gen, best_slot = h, g, slot
        assert best is not None or not ring  # slot 0 itself is valid
        if best is None:
            best, best_gen, best_slot = h0, gen0, b - base
        self.header = best
        self.generation = best_gen
        self.header_slot = best_slot
        self.uuid = best[16:32]
        self.size = int.from_bytes(best[32:40], "little")
        self._size_blocks = self.size // BLOCK_SIZE
        enc = best[H_ENC_HASH : H_ENC_HASH + 16]
        if self.verify and enc != best[H_HASH : H_HASH + 8] + bytes(8):
            raise RedoxFSError("the filesystem is encrypted (encrypted_hash differs); encryption is not supported")
        self._tree: Ptr = PTR_STRUCT.unpack_from(best, H_TREE)  # type: ignore[assignment]
        self._alloc: Ptr = PTR_STRUCT.unpack_from(best, H_ALLOC)  # type: ignore[assignment]
        self._release: Ptr = PTR_STRUCT.unpack_from(best, H_RELEASE)  # type: ignore[assignment]
        if addr_index(self._tree[0]) == 0:
            raise RedoxFSError(f"current header (generation {best_gen}) has a null node tree")

    @property
    def uuid_str(self) -> str:
        return uuid_str(self.uuid)

    @property
    def start(self) -> int:
        """Byte offset of the filesystem (block 0) in the image."""
        return self._start

    # -- node tree ------------------------------------------------------------------------------------
    def _node_ptr(self, node_id: int) -> Ptr:
        parts = ((node_id >> 24) & 0xFF, (node_id >> 16) & 0xFF, (node_id >> 8) & 0xFF, node_id & 0xFF)
        if node_id <= 0 or node_id > 0xFFFFFFFF or any(p >= TREE_ENTRIES for p in parts):
            raise RedoxFSError(f"node id {node_id} is not a valid tree index")
        ptr = self._tree
        for depth, p in enumerate(parts):
            lst = self._read_ptr(ptr, f"tree list L{3 - depth}", cache=True)
            ptr = PTR_STRUCT.unpack_from(lst, p * 16)  # type: ignore[assignment]
            if addr_index(ptr[0]) == 0:
                raise RedoxFSError(f"node {node_id} is not in the node tree")
        return ptr

    def _node(self, node_id: int) -> _Node:
        return _parse_node(node_id, self._read_ptr(self._node_ptr(node_id), f"node {node_id}"))

    def _nodes(self, ids: List[int]) -> List[_Node]:
        ptrs = [self._node_ptr(i) for i in ids]
        raws = self._read_ptrs(ptrs, "node block")
        return [_parse_node(i, r) for i, r in zip(ids, raws)]

    # -- directories ----------------------------------------------------------------------------------
    @staticmethod
    def _dirlist_entries(data: bytes, what: str) -> List[Tuple[int, bytes]]:
        count = int.from_bytes(data[DIRLIST_BYTES : DIRLIST_BYTES + 2], "little")
        used = int.from_bytes(data[DIRLIST_BYTES + 2 : DIRLIST_BYTES + 4], "little")
        if used > DIRLIST_BYTES:
            raise RedoxFSError(f"{what}: entry_bytes_len {used} > {DIRLIST_BYTES}")
        out: List[Tuple[int, bytes]] = []
        pos = 0
        for _ in range(count):
            if pos + 5 > used:
                raise RedoxFSError(f"{what}: entry {len(out)} runs past entry_bytes_len")
            nid = int.from_bytes(data[pos : pos + 4], "little")
            nlen = data[pos + 4]
            if nlen == 0 or pos + 5 + nlen > used:
                raise RedoxFSError(f"{what}: entry {len(out)} has a bad name length {nlen}")
            out.append((nid, data[pos + 5 : pos + 5 + nlen]))
            pos += 5 + nlen
        if pos != used:
            raise RedoxFSError(f"{what}: entries use {pos} bytes but entry_bytes_len is {used}")
        return out

    def _dir_root(self, node: _Node) -> Optional[Tuple[int, Ptr]]:
        if not node.st.is_dir:
            raise RedoxFSError(f"node {node.id} is not a directory")
        if node.st.inline:
            raise RedoxFSError(f"directory node {node.id} has the INLINE_DATA flag")
        m = node.ptr(INLINE_OFFSET)
        if not is_marker(*m):
            return None
        root = node.ptr(INLINE_OFFSET + 16)
        if addr_index(root[0]) == 0:
            raise RedoxFSError(f"directory node {node.id}: marker without a root pointer")
        return m[0] & 0xF, root

    @staticmethod
    def _htree_entries(data: bytes) -> List[Tuple[int, Ptr]]:
        out = []
        for i in range(HTREE_ENTRIES):
            off = i * 20
            h = int.from_bytes(data[off : off + 4], "little")
            ptr = PTR_STRUCT.unpack_from(data, off + 4)
            if addr_index(ptr[0]) == 0:
                break
            out.append((h, ptr))
        return out

    def _dir_blocks(self, node: _Node, report: Optional[CheckReport] = None) -> Tuple[List[bytes], int]:
        """All DirList blocks of a directory in order, plus the number of HTree blocks."""
        root = self._dir_root(node)
        if root is None:
            return [], 0
        depth, ptr = root
        seen: Set[int] = set()
        lists: List[bytes] = []
        htree_blocks = 0
        what = f"directory node {node.id}"
        # iterative walk: (level, ptr, parent key bound)
        stack: List[Tuple[int, Ptr, Optional[int]]] = [(depth, ptr, None)]
        while stack:
            lv, p, bound = stack.pop()
            idx = addr_index(p[0])
            if idx in seen:
                raise RedoxFSError(f"{what}: block {idx} is referenced twice in its HTree")
            seen.add(idx)
            data = self._read_ptr(p, f"{what} HTree/DirList", cache=lv > 0)
            if lv == 0:
                lists.append(data)
                if report is not None and bound is not None:
                    for _nid, name in self._dirlist_entries(data, what):
                        if name_hash(name) > bound:
                            report.errors.append(
                                f"{what}: name {name!r} hash {name_hash(name):#x} is above its HTree key {bound:#x}"
                            )
                continue
            htree_blocks += 1
            ents = self._htree_entries(data)
            if report is not None:
                keys = [h for h, _ in ents]
                if keys != sorted(keys):
                    report.errors.append(f"{what}: HTree block {idx} keys are not sorted")
                if bound is not None and keys and keys[-1] > bound:
                    report.errors.append(f"{what}: HTree block {idx} key above its parent key")
            for h, cp in reversed(ents):
                stack.append((lv - 1, cp, h))
        return lists, htree_blocks

    def _dir_entries(self, node: _Node) -> List[Tuple[int, bytes]]:
        out: List[Tuple[int, bytes]] = []
        for i, data in enumerate(self._dir_blocks(node)[0]):
            out.extend(self._dirlist_entries(data, f"directory node {node.id} DirList {i}"))
        return out

    def _dir_lookup(self, node: _Node, name: bytes, memo: Optional[Dict[Any, Any]] = None) -> Optional[int]:
        """§9.5 lookup through the HTree (`memo` caches blocks across lookups in one directory)."""
        root = self._dir_root(node)
        if root is None:
            return None
        depth, ptr = root
        h = name_hash(name)
        seen: Set[int] = set()
        what = f"directory node {node.id}"

        def search(entries: List[Tuple[int, Ptr]], lv: int) -> Optional[int]:
            prev: Optional[int] = None
            for key, p in entries:
                if prev is None:
                    if key < h:
                        continue
                elif prev != h:
                    break
                prev = key
                idx = addr_index(p[0])
                if idx in seen:
                    raise RedoxFSError(f"{what}: block {idx} is referenced twice in its HTree")
                seen.add(idx)
                parsed = memo.get(p) if memo is not None else None
                if parsed is None:
                    data = self._read_ptr(p, f"{what} HTree/DirList", cache=lv > 1)
                    if lv == 1:
                        names: Dict[bytes, int] = {}
                        for nid, nm in self._dirlist_entries(data, what):
                            names.setdefault(nm, nid)
                        parsed = names
                    else:
                        parsed = self._htree_entries(data)
                    if memo is not None:
                        memo[p] = parsed
                if lv == 1:
                    found = parsed.get(name)  # type: ignore[union-attr]
                else:
                    found = search(parsed, lv - 1)  # type: ignore[arg-type]
                if found is not None:
                    return found
            return None

        if depth == 0:
            return search([(0xFFFFFFFE, ptr)], 1)
        seen.add(addr_index(ptr[0]))
        root_entries = memo.get(("root", ptr)) if memo is not None else None
        if root_entries is None:
            root_entries = self._htree_entries(self._read_ptr(ptr, f"{what} HTree root", cache=True))
            if memo is not None:
                memo[("root", ptr)] = root_entries
        return search(root_entries, depth)

    # -- paths -----------------------------------------------------------------------------------------
    @staticmethod
    def _components(path: str) -> List[str]:
        parts: List[str] = []
        for p in path.split("/"):
            if p in ("", "."):
                continue
            if p == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(p)
        return parts

    def _resolve(self, path: str) -> _Node:
        node = self._node(1)
        walked = ""
        for comp in self._components(path):
            if not node.st.is_dir:
                raise NotFoundError(f"/{walked}: not a directory (symlinks are not followed)")
            nid = self._dir_lookup(node, comp.encode("utf-8", "surrogateescape"))
            walked = f"{walked}/{comp}" if walked else comp
            if nid is None:
                raise NotFoundError(f"/{walked}: no such file or directory")
            node = self._node(nid)
        return node

    # -- public API ------------------------------------------------------------------------------------
    def stat(self, path: str) -> RedoxStat:
        return self._resolve(path).st

    def exists(self, path: str) -> bool:
        try:
            self._resolve(path)
        except NotFoundError:
            return False
        return True

    def listdir(self, path: str = "/") -> List[str]:
        """Names in a directory, in on-disk (hash) order."""
        node = self._resolve(path)
        if not node.st.is_dir:
            raise NotFoundError(f"{path}: not a directory")
        return [n.decode("utf-8", "surrogateescape") for _i, n in self._dir_entries(node)]

    def scandir(self, path: str = "/") -> List[Tuple[str, RedoxStat]]:
        """(name, stat) for every entry of a directory, sorted by name bytes."""
        node = self._resolve(path)
        if not node.st.is_dir:
            raise NotFoundError(f"{path}: not a directory")
        return self._scan(node)

    def _scan(self, node: _Node) -> List[Tuple[str, RedoxStat]]:
        ents = sorted(self._dir_entries(node), key=lambda e: e[1])
        kids = self._nodes([i for i, _ in ents])
        return [(n.decode("utf-8", "surrogateescape"), k.st) for (_i, n), k in zip(ents, kids)]

    def walk(self, path: str = "/") -> Iterator[Tuple[str, RedoxStat]]:
        """Depth-first (path, stat) of everything below `path` (pre-order, names sorted)."""
        node = self._resolve(path)
        base = "/" + "/".join(self._components(path))
        yield base, node.st
        if not node.st.is_dir:
            return
        visited: Set[int] = {node.id}
        iters: List[Tuple[str, Iterator[Tuple[str, RedoxStat]], int]] = [(base, iter(self._scan(node)), node.id)]
        while iters:
            prefix, it, nid = iters[-1]
            nxt = next(it, None)
            if nxt is None:
                iters.pop()
                continue
            name, st = nxt
            p = prefix.rstrip("/") + "/" + name
            yield p, st
            if st.is_dir:
                if st.id in visited:
                    raise RedoxFSError(f"{p}: directory node {st.id} is linked more than once (cycle?)")
                visited.add(st.id)
                iters.append((p, iter(self._scan(self._node(st.id))), st.id))

    def readlink(self, path: str) -> str:
        node = self._resolve(path)
        if not node.st.is_symlink:
            raise RedoxFSError(f"{path}: not a symlink")
        return b"".join(self._content(node, 1 << 20)).decode("utf-8", "surrogateescape")

    def read(self, path: str, *, limit: int = DEFAULT_READ_LIMIT) -> bytes:
        """Whole content of a file (or symlink target bytes). Refuses files above `limit` bytes."""
        node = self._resolve(path)
        if node.st.is_dir:
            raise RedoxFSError(f"{path}: is a directory")
        return b"".join(self._content(node, limit))

    def iter_read(self, path: str, *, limit: int = 1 << 40) -> Iterator[bytes]:
        """Content of a file as a stream of record-sized chunks (memory stays bounded)."""
        node = self._resolve(path)
        if node.st.is_dir:
            raise RedoxFSError(f"{path}: is a directory")
        return self._content(node, limit)

    # -- file content ---------------------------------------------------------------------------------
    def _content(self, node: _Node, limit: int) -> Iterator[bytes]:
        st = node.st
        size = st.size
        if size > limit:
            raise RedoxFSError(f"node {node.id}: size {size} is above the read limit {limit}")
        if st.inline:
            if size > INLINE_MAX:
                raise RedoxFSError(f"node {node.id}: inline size {size} is beyond the inline capacity ({INLINE_MAX} bytes)")
            data = node.raw[INLINE_OFFSET : INLINE_OFFSET + size]
            return iter([data]) if size else iter([])
        if size > self._max_file:
            raise RedoxFSError(f"node {node.id}: size {size} is larger than the filesystem ({self._max_file} bytes)")
        if st.record_level > RECORD_LEVEL:
            raise RedoxFSError(f"node {node.id}: record_level {st.record_level} > {RECORD_LEVEL}")
        return self._records(node)

    def _records(self, node: _Node) -> Iterator[bytes]:
        st = node.st
        rl = st.record_level
        rsize = BLOCK_SIZE << rl
        nrec = -(-st.size // rsize)
        lists: Dict[Ptr, bytes] = {}
        what = f"node {node.id}"
        for r0 in range(0, nrec, _BATCH):
            r1 = min(nrec, r0 + _BATCH)
            ptrs = [self._record_ptr(node, r, lists) for r in range(r0, r1)]
            real = [(i, p) for i, p in enumerate(ptrs) if addr_index(p[0]) != 0]
            datas = self._read_ptrs([p for _, p in real], f"{what} record", max_level=rl)
            by_i = dict(zip((i for i, _ in real), datas))
            for i in range(r1 - r0):
                r = r0 + i
                want = min(rsize, st.size - r * rsize)
                data = by_i.get(i)
                if data is None:
                    yield bytes(want)
                    continue
                addr = ptrs[i][0]
                d = addr_decomp(addr)
                if d:
                    if d > rl:
                        raise RedoxFSError(f"{what}: record {r} decompresses to level {d} > record level {rl}")
                    clen = int.from_bytes(data[0:2], "little")
                    if 2 + clen > len(data):
                        raise RedoxFSError(f"{what}: record {r} compressed length {clen} exceeds its block")
                    data = lz4_block_decompress(data[2 : 2 + clen], BLOCK_SIZE << d)
                if len(data) >= want:
                    yield data[:want]
                else:
                    yield data + bytes(want - len(data))

    def _record_ptr(self, node: _Node, r: int, lists: Dict[Ptr, bytes]) -> Ptr:
        start = 0
        for off, cnt, depth in LEVEL_TABLE:
            span = BLOCKLIST_ENTRIES ** depth
            if r < start + cnt * span:
                rel = r - start
                ptr: Ptr = node.ptr(off + 16 * (rel // span))
                for d in range(depth - 1, -1, -1):
                    if addr_index(ptr[0]) == 0:
                        return (0, 0)
                    data = lists.get(ptr)
                    if data is None:
                        data = self._read_ptr(ptr, f"node {node.id} BlockList")
                        if len(lists) > 64:
                            lists.clear()
                        lists[ptr] = data
                    ptr = PTR_STRUCT.unpack_from(data, 16 * ((rel // BLOCKLIST_ENTRIES ** d) % BLOCKLIST_ENTRIES))  # type: ignore
                return ptr
            start += cnt * span
        raise RedoxFSError(f"node {node.id}: record {r} is beyond the addressable range")

    # -- allocation log --------------------------------------------------------------------------------
    def alloc_chain(self) -> List[int]:
        """Block indexes of the allocation log, newest first (hash-checked, cycle-checked)."""
        chain: List[int] = []
        seen: Set[int] = set()
        ptr = self._alloc
        self._alloc_blocks: List[bytes] = []
        while addr_index(ptr[0]) != 0:
            idx = addr_index(ptr[0])
            if idx in seen or len(chain) > self._size_blocks:
                raise RedoxFSError(f"allocation log: cycle at block {idx}")
            seen.add(idx)
            data = self._read_ptr(ptr, "allocation log")
            chain.append(idx)
            self._alloc_blocks.append(data)
            ptr = PTR_STRUCT.unpack_from(data, 0)  # type: ignore[assignment]
        return chain

    def free_extents(self) -> List[Tuple[int, int]]:
        """Replay the allocation log (§10.2): sorted, merged (start, count) free extents."""
        self.alloc_chain()
        free: List[List[int]] = []  # sorted disjoint [start, end)
        starts: List[int] = []
        for bi, data in enumerate(reversed(self._alloc_blocks)):
            for k in range(ALLOC_ENTRIES):
                index, count = int.from_bytes(data[16 + 16 * k : 24 + 16 * k], "little"), int.from_bytes(
                    data[24 + 16 * k : 32 + 16 * k], "little", signed=True
                )
                if count == 0:
                    continue
                a = index
                b = index + abs(count)
                if a < HEADER_RING or b > self._size_blocks:
                    raise RedoxFSError(f"allocation log entry ({index}, {count}) is outside blocks {HEADER_RING}..{self._size_blocks}")
                pos = bisect.bisect_right(starts, a) - 1
                if count > 0:
                    if pos >= 0 and free[pos][1] > a or pos + 1 < len(free) and free[pos + 1][0] < b:
                        raise RedoxFSError(f"allocation log entry ({index}, {count}) frees blocks that are already free")
                    # insert and merge neighbours
                    free.insert(pos + 1, [a, b])
                    starts.insert(pos + 1, a)
                    if pos + 2 < len(free) and free[pos + 2][0] == b:
                        free[pos + 1][1] = free[pos + 2][1]
                        del free[pos + 2], starts[pos + 2]
                    if pos >= 0 and free[pos][1] == a:
                        free[pos][1] = free[pos + 1][1]
                        del free[pos + 1], starts[pos + 1]
                else:
                    if pos < 0 or free[pos][1] < b:
                        raise RedoxFSError(
                            f"allocation log entry ({index}, {count}) allocates blocks that are not free (replay would panic)"
                        )
                    s, e = free[pos]
                    del free[pos], starts[pos]
                    ins = [[x, y] for x, y in ((s, a), (b, e)) if y > x]
                    for j, iv in enumerate(ins):
                        free.insert(pos + j, iv)
                        starts.insert(pos + j, iv[0])
        return [(s, e - s) for s, e in free]

    def free_blocks(self) -> int:
        return sum(c for _, c in self.free_extents())

    # -- full check ------------------------------------------------------------------------------------
    def check(self, *, strict: bool = False) -> CheckReport:
        """Verify everything a consumer relies on (§12.3). Returns a report; with strict=True
        raises RedoxFSError listing the errors if there are any. Corrupt data that makes the
        walk impossible raises RedoxFSError directly."""
        rep = CheckReport(total_blocks=self._size_blocks)
        if addr_index(self._release[0]) != 0:
            rep.warnings.append("header release list is not null")
        used: List[Tuple[int, int, str]] = []  # (start, count, what)
        g = self.generation
        if g % 1024 == 0 and g >= 1024:
            rep.warnings.append(f"current generation {g} is a positive multiple of 1024 (bootloader GC commit)")
        # tree
        tree_ids: Set[int] = set()
        node_ptrs: Dict[int, Ptr] = {}
        self._check_tree(self._tree, 3, 0, rep, used, tree_ids, node_ptrs, set())
        # allocation log
        chain = self.alloc_chain()
        for idx in chain:
            used.append((idx, 1, "allocation log"))
        free = self.free_extents()
        rep.free_blocks = sum(c for _, c in free)
        # nodes reachable from the root
        refs: Dict[int, int] = {}
        if 1 not in node_ptrs:
            raise RedoxFSError("root node 1 is missing from the node tree")
        nodes: Dict[int, _Node] = {}
        queue: List[int] = [1]
        nodes[1] = self._node(1)
        while queue:
            nid = queue.pop()
            node = nodes[nid]
            used.append((addr_index(node_ptrs[nid][0]), 1, f"node {nid}"))
            st = node.st
            rep.nodes += 1
            self._check_node_fields(node, rep)
            if st.is_dir:
                rep.dirs += 1
                lists, nht = self._dir_blocks(node, rep)
                count_blocks = 1 + len(lists) + nht
                names: Set[bytes] = set()
                child_ids: List[int] = []
                memo: Dict[Any, Any] = {}
                for li, data in enumerate(lists):
                    for cid, name in self._dirlist_entries(data, f"directory node {nid} DirList {li}"):
                        self._check_name(nid, name, names, rep)
                        child_ids.append(cid)
                        if self._dir_lookup(node, name, memo) != cid:
                            rep.errors.append(f"directory node {nid}: {name!r} is not reachable by an HTree lookup")
                self._dir_block_usage(node, used)
                if st.size != BLOCK_SIZE * (count_blocks - 1):
                    rep.errors.append(f"directory node {nid}: size {st.size} != 4096 x {count_blocks - 1} blocks")
                if st.blocks != count_blocks:
                    rep.errors.append(f"directory node {nid}: blocks {st.blocks} != {count_blocks}")
                if st.links != 1:
                    rep.errors.append(f"directory node {nid}: links {st.links} != 1")
                fresh = []
                for cid in child_ids:
                    refs[cid] = refs.get(cid, 0) + 1
                    if cid not in node_ptrs:
                        raise RedoxFSError(f"directory node {nid} names node {cid}, which is not in the node tree")
                    if cid in nodes:
                        if nodes[cid].st.is_dir:
                            raise RedoxFSError(f"directory node {cid} is linked more than once (cycle or hard link)")
                        continue
                    fresh.append(cid)
                for child in self._nodes(fresh):
                    nodes[child.id] = child
                    queue.append(child.id)
            else:
                if st.is_file:
                    rep.files += 1
                elif st.is_symlink:
                    rep.symlinks += 1
                else:
                    rep.errors.append(f"node {nid}: unexpected type {st.mode & MODE_TYPE:#x}")
                count = 1
                if not st.inline:
                    count += self._check_records(node, rep, used)
                rep.content_bytes += st.size
                if st.blocks != count:
                    rep.errors.append(f"node {nid}: blocks {st.blocks} != {count} (exact count required)")
        for nid, n in nodes.items():
            if not n.st.is_dir and refs.get(nid, 0) != n.st.links:
                rep.errors.append(f"node {nid}: links {n.st.links} but {refs.get(nid, 0)} directory entries")
        orphans = set(node_ptrs) - set(nodes)
        if orphans:
            rep.warnings.append(f"{len(orphans)} node(s) in the tree are not reachable from the root (leaked)")
        # overlap checks
        used.sort()
        prev_end, prev_what = HEADER_RING, "header ring"
        total_used = HEADER_RING
        for s, c, what in used:
            if s < prev_end:
                rep.errors.append(f"block {s} is used by both {prev_what} and {what}")
            if s + c > self._size_blocks:
                rep.errors.append(f"{what}: blocks {s}..{s + c - 1} are beyond the filesystem")
            if s + c > prev_end:
                prev_end, prev_what = s + c, what
            total_used += c
        rep.used_blocks = total_used
        fi = 0
        for s, c, what in used:
            while fi < len(free) and free[fi][0] + free[fi][1] <= s:
                fi += 1
            if fi < len(free) and free[fi][0] < s + c:
                rep.errors.append(f"{what}: block {max(s, free[fi][0])} is in use but listed free")
        if rep.free_blocks == 0:
            rep.errors.append("no free blocks: a read-write mount would fail with ENOSPC")
        leaked = self._size_blocks - rep.free_blocks - total_used
        if leaked > 0:
            rep.warnings.append(f"{leaked} block(s) are neither free nor reachable (leaked)")
        if strict and rep.errors:
            more = f" (+{len(rep.errors) - 20} more)" if len(rep.errors) > 20 else ""
            raise RedoxFSError("check failed: " + "; ".join(rep.errors[:20]) + more)
        return rep

    def _check_tree(self, ptr: Ptr, level: int, prefix: int, rep: CheckReport, used: List[Tuple[int, int, str]],
                    ids: Set[int], node_ptrs: Dict[int, Ptr], seen: Set[int]) -> bool:
        if addr_index(ptr[0]) in seen:
            raise RedoxFSError(f"tree list block {addr_index(ptr[0])} is referenced twice")
        seen.add(addr_index(ptr[0]))
        data = self._read_ptr(ptr, f"tree list L{level}", cache=True)
        used.append((addr_index(ptr[0]), 1, f"tree list L{level}"))
        flags = int.from_bytes(data[4064:4096], "little")
        if flags >> TREE_ENTRIES:
            rep.errors.append(f"tree list L{level} at block {addr_index(ptr[0])}: flag bits 254/255 set")
        all_full = True
        for i in range(TREE_ENTRIES):
            p: Ptr = PTR_STRUCT.unpack_from(data, 16 * i)  # type: ignore[assignment]
            bit = (flags >> i) & 1
            nid = (prefix << 8) | i
            if addr_index(p[0]) == 0:
                if p != (0, 0):
                    rep.errors.append(f"tree list L{level}: null pointer {i} is not all zeros")
                if level == 0 and bit and nid != 0:
                    rep.warnings.append(f"tree list L0: full flag set for empty id {nid}")
                if not (level == 0 and nid == 0 and bit):
                    all_full = False
                continue
            if level == 0:
                ids.add(nid)
                node_ptrs[nid] = p
                if not bit:
                    rep.errors.append(f"tree list L0: node {nid} present but its full flag is clear (daemon would crash)")
            else:
                child_full = self._check_tree(p, level - 1, nid, rep, used, ids, node_ptrs, seen)
                if bool(bit) != child_full:
                    rep.warnings.append(f"tree list L{level}: full flag of entry {i} is {bit} but the child list is "
                                        f"{'full' if child_full else 'not full'}")
                if not child_full:
                    all_full = False
        return all_full

    def _check_node_fields(self, node: _Node, rep: CheckReport) -> None:
        st = node.st
        for what, ns in (("ctime", st.ctime_nsec), ("mtime", st.mtime_nsec), ("atime", st.atime_nsec)):
            if ns >= 1_000_000_000:
                rep.errors.append(f"node {node.id}: {what}_nsec {ns} >= 10^9")
        if st.flags & ~FLAG_INLINE:
            rep.warnings.append(f"node {node.id}: unknown flag bits {st.flags:#x}")
        if st.is_dir:
            if st.inline:
                rep.errors.append(f"directory node {node.id} has INLINE_DATA")
        elif st.inline:
            if st.size > INLINE_MAX:
                rep.errors.append(f"node {node.id}: inline size {st.size} > {INLINE_MAX}")
            tail = node.raw[INLINE_OFFSET + min(st.size, INLINE_CAPACITY) :]
            if tail.strip(b"\0"):
                rep.errors.append(f"node {node.id}: bytes after the inline data are not zero")
        if st.is_file and st.record_level != RECORD_LEVEL and not st.inline:
            rep.warnings.append(f"node {node.id}: file record_level {st.record_level} (upstream uses 5)")

    def _check_records(self, node: _Node, rep: CheckReport, used: List[Tuple[int, int, str]]) -> int:
        """Verify every stored record and BlockList of a file (visiting only non-null pointers,
        so the work is bounded by what is stored, not by the size field). Returns the blocks."""
        st = node.st
        rl = st.record_level
        if rl > RECORD_LEVEL:
            raise RedoxFSError(f"node {node.id}: record_level {rl} > {RECORD_LEVEL}")
        nrec = -(-st.size // (BLOCK_SIZE << rl))
        seen: Set[int] = set()
        blocks = 0
        batch: List[Tuple[int, Ptr]] = []
        what = f"node {node.id}"

        def flush() -> None:
            datas = self._read_ptrs([p for _, p in batch], f"{what} record", max_level=rl)
            for (r, p), data in zip(batch, datas):
                d = addr_decomp(p[0])
                if d:
                    if d > rl:
                        rep.errors.append(f"{what}: record {r} decompresses to level {d} > record level {rl}")
                        continue
                    clen = int.from_bytes(data[0:2], "little")
                    if 2 + clen > len(data):
                        raise RedoxFSError(f"{what}: record {r} compressed length {clen} exceeds its block")
                    lz4_block_decompress(data[2 : 2 + clen], BLOCK_SIZE << d)
            batch.clear()

        start = 0
        stack: List[Tuple[Ptr, int, int]] = []
        for off, cnt, depth in LEVEL_TABLE:
            span = BLOCKLIST_ENTRIES ** depth
            for j in range(cnt):
                stack.append((node.ptr(off + 16 * j), depth, start + j * span))
            start += cnt * span
        stack.reverse()
        while stack:
            p, depth, first = stack.pop()
            if addr_index(p[0]) == 0:
                if p != (0, 0):
                    rep.errors.append(f"{what}: null pointer with non-zero bits")
                continue
            if first >= nrec:
                rep.warnings.append(f"{what}: pointer for records from {first} is beyond the file size (leaked)")
                continue
            if depth == 0:
                lv = addr_level(p[0])
                used.append((addr_index(p[0]), 1 << lv, f"{what} record {first}"))
                blocks += 1 << lv
                batch.append((first, p))
                if len(batch) >= _BATCH:
                    flush()
                continue
            idx = addr_index(p[0])
            if idx in seen:
                raise RedoxFSError(f"{what}: BlockList block {idx} is referenced twice")
            seen.add(idx)
            data = self._read_ptr(p, f"{what} BlockList")
            used.append((idx, 1, f"{what} BlockList"))
            blocks += 1
            span = BLOCKLIST_ENTRIES ** (depth - 1)
            kids = [(PTR_STRUCT.unpack_from(data, 16 * e), depth - 1, first + e * span) for e in range(BLOCKLIST_ENTRIES)]
            stack.extend(reversed(kids))  # type: ignore[arg-type]
        if batch:
            flush()
        return blocks

    def _check_name(self, nid: int, name: bytes, names: Set[bytes], rep: CheckReport) -> None:
        what = f"directory node {nid}"
        if name in names:
            rep.errors.append(f"{what}: duplicate name {name!r}")
        names.add(name)
        if not 1 <= len(name) <= DIR_ENTRY_MAX_LENGTH:
            rep.errors.append(f"{what}: name {name!r} length {len(name)} outside 1..{DIR_ENTRY_MAX_LENGTH}")
        if b"/" in name or b"\0" in name or name in (b".", b".."):
            rep.errors.append(f"{what}: invalid name {name!r}")
        try:
            name.decode("utf-8")
        except UnicodeDecodeError:
            rep.errors.append(f"{what}: name {name!r} is not UTF-8")

    def _dir_block_usage(self, node: _Node, used: List[Tuple[int, int, str]]) -> None:
        root = self._dir_root(node)
        if root is None:
            return
        depth, ptr = root
        stack = [(depth, ptr)]
        while stack:
            lv, p = stack.pop()
            used.append((addr_index(p[0]), 1, f"directory node {node.id} {'HTree' if lv else 'DirList'}"))
            if lv:
                for _h, cp in self._htree_entries(self._read_ptr(p, "HTree", cache=True)):
                    stack.append((lv - 1, cp))
