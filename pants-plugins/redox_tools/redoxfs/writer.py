"""RedoxFS v8 image writer: the reference layout of docs/formats/redoxfs.md §13.

`write_redoxfs(out, manifest, offset=..., size=...)` lays out the whole filesystem first
(node ids in depth-first pre-order, blocks from 256 upward with buddy alignment, DirLists +
HTree, BlockLists, tree lists, allocation log), then streams file contents in id order in
bounded batches: each batch reads its records straight into numpy staging arrays (inline
contents straight into the node blocks), hashes its records (the `seahash` library, through
`redox_tools.formats.seahash`), builds the finished node blocks, and writes contiguous disk runs with
`os.pwritev`. Only blocks that carry data are written (all-zero data pages are left as holes),
so the image stays sparse; peak memory is bounded by the batch budget (~32 MiB of staged data,
two sets of buffers) whatever the image or file sizes.

Pipeline: one IO thread writes batch i-1 and then does the big reads (>= 256 KiB) of batch
i+1 while the main thread reads the small files of batch i and hashes it. Only work that
releases the GIL for long goes to the IO thread; per-file Python work stays on the main
thread, where it does not fight the hashing loop for the GIL.

Times: every node gets mtime = atime = the entry's mtime and ctime = `ctime` if given, else
its mtime (nanoseconds 0). The root directory (implicit in a manifest) and any implied parent
directory get mode 0o755, uid/gid 0 and time `ctime` if given, else the largest mtime of the
manifest (0 if empty).

Default UUID: the first 16 bytes of SHA-256 over "redoxfs-uuid-v1\\0" + canonical JSON of
{"entries": [(path, kind, mode, uid, gid, mtime, size, sha256, target) for each entry in path
order], "size": size, "ctime": ctime}, with the RFC 4122 version-4/variant bits set. It
depends only on what the image holds (not on host source paths), so the same input gives the
same UUID.
"""
from __future__ import annotations

import ctypes
import errno
import gc
from concurrent.futures import Future, ThreadPoolExecutor
import hashlib
import json
import operator
import os
import stat as stat_mod
import struct
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, cast

import numpy as np

from redox_tools.manifest import DIR, FILE, SYMLINK, Entry
from redox_tools.redoxfs.format import (
    ALLOC_ENTRIES,
    BLOCK_SIZE,
    BLOCKLIST_ENTRIES,
    DIR_ENTRY_MAX_LENGTH,
    DIRLIST_BYTES,
    FLAG_INLINE,
    HEADER_RING,
    HTREE_ENTRIES,
    INLINE_MAX,
    INLINE_OFFSET,
    LEVEL_TABLE,
    MODE_DIR,
    MODE_FILE,
    MODE_SYMLINK,
    NODE_STRUCT,
    PTR_STRUCT,
    RECORD_LEVEL,
    SIGNATURE,
    TREE_ENTRIES,
    VERSION,
    RedoxFSError,
    make_addr,
    name_hashes,
    next_node_id,
    record_level_for,
)
from redox_tools.formats.seahash import seahash, seahash_arrays, seahash_rows

__all__ = ["write_redoxfs", "check_write_args", "size_needed", "default_uuid", "MIN_FREE_BLOCKS"]

# Free blocks (beyond the allocation-log blocks) a written image keeps at least at its end,
# so the daemon's first read-write mount can rewrite the log (§10.3 "leave free space").
MIN_FREE_BLOCKS = 64

BATCH_BYTES = 32 << 20  # staged record bytes per batch
BATCH_NODES = 1024  # node blocks per batch (4 MiB; two sets: 8 MiB)
IOV_MAX = 1024
MAX_U32 = 0xFFFFFFFF
MAX_U64 = 0xFFFFFFFFFFFFFFFF

_ROOT_MODE = 0o755
# Shared, never-mutated empties for nodes without children or BlockLists (checked: only
# directories get children appended, only _plan_list appends BlockLists after giving a list).
_NO_NODES: List[Any] = cast(List[Any], ())
_NO_LISTS: List[Any] = cast(List[Any], ())
_DIR_ROOT = struct.Struct("<QQQQ")  # HTree root pointer in a directory's level data
_LEN_BYTE = [bytes((i,)) for i in range(256)]
_HTREE_DTYPE = np.dtype([("h", "<u4"), ("a", "<u8"), ("x", "<u8")])  # packed, 20 bytes
# records reachable per tier: level0 direct, then 1..4 levels of BlockLists (§8.2)
_TIERS = [(cnt, depth) for (_, cnt, depth) in LEVEL_TABLE]


class _Node:
    """One inode of the plan. Slots only; lists are allocated where a node has content for them.
    What the manifest entry says (path, uid, gid, mtime, source, sha256) is read from the
    entry itself (`e`), not copied (memory per file: 100 000-file images)."""

    __slots__ = (
        "e", "name", "kind", "mode", "ctime", "children", "id", "block", "size", "data", "rl", "nrec",
        "last_level", "rec_base", "lists", "tops", "blocks", "dirlists", "dl_keys", "htree", "rec_hash", "base",
    )

    def __init__(self, e: Entry, name: bytes, kind: str, mode: int, ctime: int):
        self.e = e
        self.name = name
        self.kind = kind
        self.mode = mode
        self.ctime = ctime
        # Lists only where a node needs them: the others share the empty tuple until planning
        # gives them a list.
        self.children: List["_Node"] = [] if kind == DIR else _NO_NODES
        self.id = 0
        self.block = 0
        self.size = 0
        self.base: Optional[str] = None  # FILE: the manifest's base dir when the source is relative
        self.data: Optional[bytes] = None
        self.rl = 0
        self.nrec = 0
        self.last_level = 0
        self.rec_base = 0
        self.lists: List[Tuple[int, int, int, Tuple[int, ...]]] = _NO_LISTS  # (block, depth, first, children)
        self.tops: Sequence[List[int]] = ()  # per tier 1..4: list indexes of the top pointers
        self.blocks = 1
        # DIR: the end (in `children`, sorted by HTree key then name) of each DirList block
        self.dirlists: Sequence[int] = ()
        self.dl_keys: Sequence[int] = ()
        self.htree: Sequence[List[Tuple[int, int]]] = ()  # per level: (first child, end child)
        self.rec_hash: Optional[np.ndarray] = None

    @property
    def path(self) -> str:
        return self.e.path

    @property
    def src(self) -> str:
        """FILE: the entry's source, as written (relative to `base` when that is set)."""
        return self.e.source or ""

    @property
    def source(self) -> str:
        """The host path of a file's content, for messages (files are opened relative to the
        base directory's descriptor: no path is joined per file)."""
        return os.path.join(self.base, self.src) if self.base is not None else self.src

    @property
    def inline(self) -> bool:
        return self.kind != DIR and self.size <= INLINE_MAX

    def rec_addr(self, r: int) -> int:
        level = self.last_level if r == self.nrec - 1 else self.rl
        return make_addr(self.rec_base + (r << self.rl), level)


class _Plan:
    def __init__(self) -> None:
        self.nodes: List[_Node] = []
        self.gaps: List[Tuple[int, int]] = []
        self.tree_lists: Dict[Tuple[int, ...], int] = {}  # key -> block; key len 3 (L0), 2 (L1), 1 (L2), 0 (L3)
        self.alloc_base = 0
        self.alloc_count = 0
        self.end = 0  # first block after everything allocated

    @property
    def needed_blocks(self) -> int:
        return self.end + MIN_FREE_BLOCKS


class _Cursor:
    def __init__(self, start: int):
        self.cur = start
        self.gaps: List[Tuple[int, int]] = []

    def take(self, level: int = 0, count: int = 1) -> int:
        n = 1 << level
        a = (self.cur + n - 1) & ~(n - 1)
        if a > self.cur:
            self.gaps.append((self.cur, a - self.cur))
        self.cur = a + n * count
        return a


# ----------------------------------------------------------------------------------------------
# planning
# ----------------------------------------------------------------------------------------------


def _encode_name(s: str, what: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise RedoxFSError(f"{what} is not valid UTF-8 (RedoxFS names and link targets must be UTF-8)") from None


def _open_base(manifest: Any) -> Optional[int]:
    """A descriptor of the manifest's base directory (relative sources are opened against it),
    or None (then paths are joined; a missing directory is reported per file)."""
    base = getattr(manifest, "base_dir", None)
    if base is None:
        return None
    try:
        return os.open(base, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


def _build_tree(manifest: Any, ctime: Optional[int], dir_fd: Optional[int]) -> _Node:
    entries: List[Entry] = list(manifest)
    root_time = ctime if ctime is not None else max((e.mtime for e in entries), default=0)
    _check_time(root_time, "ctime")
    root = _Node(Entry(path="", kind=DIR, mode=_ROOT_MODE, mtime=root_time), b"", DIR, MODE_DIR | _ROOT_MODE, root_time)
    by_path: Dict[str, _Node] = {"": root}
    too_long: List[str] = []
    problems: List[str] = []
    link_error: Optional[str] = None  # the first, reported after the per-entry checks
    modes: Dict[int, int] = {}  # one int object per distinct mode (memory per file)
    base_dir = manifest.base_dir
    stat = os.stat
    entries.sort(key=_path_of)  # parents before their children (a prefix sorts first)
    for e in entries:
        path = e.path
        slash = path.rfind("/")
        try:
            name = path[slash + 1 :].encode("utf-8")
        except UnicodeEncodeError:
            name = _encode_name(e.name, f"name of /{path}")  # raises the error
        if len(name) > DIR_ENTRY_MAX_LENGTH:
            too_long.append(f"/{path} ({len(name)} bytes)")
        if not 0 <= e.uid <= MAX_U32 or not 0 <= e.gid <= MAX_U32:
            problems.append(f"/{path}: uid/gid must be 0..{MAX_U32}")
        if not 0 <= e.mtime <= MAX_U64:
            _check_time(e.mtime, f"mtime of /{path}")
        t_c = ctime if ctime is not None else e.mtime
        perm = e.mode & 0o7777
        kind = e.kind
        if kind == FILE:
            mode = MODE_FILE | perm
            n = _Node(e, name, FILE, modes.setdefault(mode, mode), t_c)
            src = e.source or ""
            if not src.startswith("/"):  # os.path.isabs on POSIX, without its per-call overhead
                n.base = base_dir
            try:
                st = stat(src, dir_fd=dir_fd) if dir_fd is not None else stat(n.source)
            except OSError as exc:
                raise RedoxFSError(f"/{path}: cannot read its source {n.source}: {exc.strerror}") from None
            if not stat_mod.S_ISREG(st.st_mode):
                raise RedoxFSError(f"/{path}: source {n.source} is not a regular file")
            if st.st_size != e.size:
                raise RedoxFSError(
                    f"/{path}: source {n.source} is {st.st_size} bytes, the manifest says {e.size}; rebuild the manifest"
                )
            n.size = e.size  # == st.st_size (checked above); the entry's int object is shared
            n.rl = RECORD_LEVEL
        elif kind == DIR:
            mode = MODE_DIR | perm
            n = _Node(e, name, DIR, modes.setdefault(mode, mode), t_c)
        elif kind == SYMLINK:
            n = _Node(e, name, SYMLINK, MODE_SYMLINK | perm, t_c)
            n.data = _encode_name(e.target or "", f"target of symlink /{path}")
            n.size = len(n.data)
        else:  # pragma: no cover - Entry validates kinds
            raise RedoxFSError(f"/{path}: unknown kind {kind}")
        by_path[path] = n
        if link_error is not None:
            continue
        # link to the parent (creating implied directories)
        parent_path = path[:slash] if slash >= 0 else ""
        parent_node = by_path.get(parent_path)
        if parent_node is not None and parent_node.kind == DIR:  # the common case
            parent_node.children.append(n)
            continue
        chain: List[_Node] = [n]
        while parent_path not in by_path:
            pname = parent_path.rsplit("/", 1)[-1]
            implied = _Node(Entry(path=parent_path, kind=DIR, mode=_ROOT_MODE, mtime=root_time),
                            _encode_name(pname, f"name of /{parent_path}"), DIR, MODE_DIR | _ROOT_MODE, root_time)
            if len(implied.name) > DIR_ENTRY_MAX_LENGTH:
                link_error = f"name longer than {DIR_ENTRY_MAX_LENGTH} bytes (RedoxFS limit): /{parent_path}"
                break
            by_path[parent_path] = implied
            chain.append(implied)
            parent_path = parent_path.rsplit("/", 1)[0] if "/" in parent_path else ""
        if link_error is not None:
            continue
        for child in chain:
            pp = child.path.rsplit("/", 1)[0] if "/" in child.path else ""
            parent = by_path[pp]
            if parent.kind != DIR:
                link_error = f"/{child.path} is below /{pp}, which is a {parent.kind}, not a directory"
                break
            parent.children.append(child)
    if too_long:
        shown = ", ".join(too_long[:10]) + (f" and {len(too_long) - 10} more" if len(too_long) > 10 else "")
        raise RedoxFSError(f"name longer than {DIR_ENTRY_MAX_LENGTH} bytes (RedoxFS limit): {shown}")
    if problems:
        raise RedoxFSError("; ".join(problems[:10]))
    if link_error is not None:
        raise RedoxFSError(link_error)
    return root


def _path_of(e: Entry) -> str:
    return e.path


def _check_time(t: int, what: str) -> None:
    if not 0 <= t <= MAX_U64:
        raise RedoxFSError(f"{what} {t} is outside 0..2^64-1")


def _plan_file(n: _Node, cur: _Cursor) -> None:
    rsize = BLOCK_SIZE << n.rl
    n.nrec = -(-n.size // rsize)
    last_len = n.size - (n.nrec - 1) * rsize
    n.last_level = record_level_for(last_len)
    capacity = sum(cnt * BLOCKLIST_ENTRIES ** depth for cnt, depth in _TIERS)
    if n.nrec > capacity:
        raise RedoxFSError(f"/{n.path}: {n.size} bytes is more than a RedoxFS file can address")
    first_level = n.rl if n.nrec > 1 else n.last_level
    n.rec_base = cur.take(first_level)
    cur.cur = n.rec_base + ((n.nrec - 1) << n.rl) + (1 << n.last_level)
    n.blocks = 1 + ((n.nrec - 1) << n.rl) + (1 << n.last_level)
    # BlockLists, post-order per top pointer
    start = 0
    tops_all: List[List[int]] = []
    for cnt, depth in _TIERS:
        span_top = BLOCKLIST_ENTRIES ** depth
        tops: List[int] = []
        if depth > 0:
            for j in range(cnt):
                first = start + j * span_top
                if first >= n.nrec:
                    break
                tops.append(_plan_list(n, cur, depth, first))
            tops_all.append(tops)
        start += cnt * span_top
        if start >= n.nrec:
            break
    if tops_all:
        n.tops = tops_all
    n.blocks += len(n.lists)


def _plan_list(n: _Node, cur: _Cursor, depth: int, first: int) -> int:
    children: Tuple[int, ...] = ()
    if depth > 1:
        span = BLOCKLIST_ENTRIES ** (depth - 1)
        kids = []
        for c in range(BLOCKLIST_ENTRIES):
            f = first + c * span
            if f >= n.nrec:
                break
            kids.append(_plan_list(n, cur, depth - 1, f))
        children = tuple(kids)
    if n.lists is _NO_LISTS:
        n.lists = []
    n.lists.append((cur.take(0), depth, first, children))
    return len(n.lists) - 1


def _plan_dir(n: _Node, cur: _Cursor) -> None:
    children = n.children
    if not children:
        n.blocks = 1
        return
    # DirLists hold the children in HTree key order (ties: name order); `dirlists` keeps where
    # each block ends, the entries are made from `children` when the blocks are written.
    keyed = sorted(zip(name_hashes([c.name for c in children]), [c.name for c in children], children), key=_dir_key)
    children[:] = [c for _, _, c in keyed]
    ends: List[int] = []
    keys: List[int] = []
    used = 0
    last_hash = 0
    for i, (h, name, _c) in enumerate(keyed):
        es = 5 + len(name)
        if used + es > DIRLIST_BYTES:
            keys.append(last_hash)
            ends.append(i)
            used = 0
        used += es
        last_hash = h
    keys.append(last_hash)
    ends.append(len(keyed))
    n.dirlists = ends
    n.dl_keys = keys
    lists = ends
    levels: List[List[Tuple[int, int]]] = []
    count = len(lists)
    while count > 1:
        groups = [(i, min(i + HTREE_ENTRIES, count)) for i in range(0, count, HTREE_ENTRIES)]
        levels.append(groups)
        count = len(groups)
    n.htree = levels
    nblk = len(lists) + sum(len(lv) for lv in levels)
    cur.take(0, nblk)  # consecutive after the node block: node.block + 1 ...
    n.size = BLOCK_SIZE * nblk
    n.blocks = 1 + nblk


def _dir_key(item: Tuple[int, bytes, _Node]) -> Tuple[int, bytes]:
    return item[0], item[1]


def _plan(manifest: Any, ctime: Optional[int], dir_fd: Optional[int] = None) -> _Plan:
    own_fd = _open_base(manifest) if dir_fd is None else None
    try:
        return _plan_with(manifest, ctime, dir_fd if dir_fd is not None else own_fd)
    finally:
        if own_fd is not None:
            os.close(own_fd)


def _plan_with(manifest: Any, ctime: Optional[int], dir_fd: Optional[int]) -> _Plan:
    root = _build_tree(manifest, ctime, dir_fd)
    plan = _Plan()
    # ids: depth-first pre-order, children in ascending byte order of names
    nodes = plan.nodes
    stack = [root]
    nid = 0
    while stack:
        n = stack.pop()
        nid = next_node_id(nid)
        n.id = nid
        nodes.append(n)
        if n.children:
            n.children.sort(key=lambda c: c.name)
            stack.extend(reversed(n.children))
    cur = _Cursor(HEADER_RING)
    for n in nodes:
        n.block = cur.take(0)
        if n.kind == DIR:
            _plan_dir(n, cur)
        elif not n.inline:
            _plan_file(n, cur)
    # tree lists: L0 keys ascending, then L1, L2, L3 root
    ids = [n.id for n in nodes]
    for depth in (3, 2, 1, 0):
        shift = 8 * (4 - depth)
        for prefix in sorted({i >> shift for i in ids}):
            key = tuple((prefix >> (8 * (depth - 1 - j))) & 0xFF for j in range(depth))
            plan.tree_lists[key] = cur.take(0)
    k_alloc = -(-(len(cur.gaps) + 1) // ALLOC_ENTRIES)
    plan.alloc_base = cur.take(0, k_alloc)
    plan.alloc_count = k_alloc
    plan.gaps = cur.gaps
    plan.end = cur.cur
    return plan


def size_needed(manifest: Any, *, ctime: Optional[int] = None) -> int:
    """Smallest filesystem size in bytes (a multiple of 4096) that `write_redoxfs` accepts for
    this manifest: every block the layout uses plus MIN_FREE_BLOCKS free blocks."""
    return _plan(manifest, ctime).needed_blocks * BLOCK_SIZE


def default_uuid(manifest: Any, size: int, ctime: Optional[int]) -> bytes:
    """The deterministic UUID used when none is given (see the module docstring)."""
    # The document is hashed as it is made, row by row (the bytes of json.dumps of the whole
    # {"ctime", "entries", "size"} object with sorted keys, without holding it: 100 000 entries
    # would be ~50 MB at the writer's peak).
    h = hashlib.sha256(b"redoxfs-uuid-v1\0")
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    h.update(('{"ctime":' + dumps(ctime) + ',"entries":[').encode())
    entries = sorted(manifest, key=lambda x: x.path)
    for i in range(0, len(entries), 1024):  # rows in chunks: "[r,r,...]" without its brackets
        rows = [[e.path, e.kind, e.mode, e.uid, e.gid, e.mtime, e.size, e.sha256, e.target] for e in entries[i : i + 1024]]
        h.update(("," if i else "").encode() + dumps(rows)[1:-1].encode("utf-8", "surrogateescape"))
    h.update(('],"size":' + dumps(size) + "}").encode())
    d = bytearray(h.digest()[:16])
    d[6] = (d[6] & 0x0F) | 0x40
    d[8] = (d[8] & 0x3F) | 0x80
    return bytes(d)


# ----------------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------------


class _Sink:
    """Positional writes into the filesystem region of `out` (os.pwritev on a real fd)."""

    def __init__(self, out: BinaryIO, offset: int, size: int):
        self.out = out
        self.offset = offset
        self.size = size
        self.fd: Optional[int] = None
        try:
            out.flush()
            self.fd = out.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None
        self.fresh = False
        self.syscalls = 0

    def prepare(self) -> None:
        """Find out whether the region reads as zeros (holes) so zero pages can be skipped;
        otherwise punch a hole over it; failing that, clear stale headers in the ring."""
        if self.fd is not None:
            st = os.fstat(self.fd)
            if stat_mod.S_ISREG(st.st_mode) and st.st_size < self.offset + self.size:
                os.ftruncate(self.fd, self.offset + self.size)
            self.fresh = _region_is_hole(self.fd, self.offset, self.size)
            if not self.fresh and stat_mod.S_ISREG(st.st_mode) and _punch_hole(self.fd, self.offset, self.size):
                self.fresh = _region_is_hole(self.fd, self.offset, self.size)
        if not self.fresh:
            ring = self.read(BLOCK_SIZE, (HEADER_RING - 1) * BLOCK_SIZE)
            zero = bytes(BLOCK_SIZE)
            for i in range(HEADER_RING - 1):
                if ring[i * BLOCK_SIZE : (i + 1) * BLOCK_SIZE].strip(b"\0"):
                    self.write_runs([(i + 1, memoryview(zero))])

    def read(self, pos: int, n: int) -> bytes:
        if self.fd is not None:
            data = os.pread(self.fd, n, self.offset + pos)
        else:
            self.out.seek(self.offset + pos)
            data = self.out.read(n)
        return data + bytes(n - len(data))

    def write_runs(self, items: List[Tuple[int, memoryview]]) -> None:
        """Write (block index, bytes) items, coalescing contiguous ones into single syscalls."""
        self.write_planned(self.plan_runs(items))

    @staticmethod
    def plan_runs(items: List[Tuple[int, memoryview]]) -> List[Tuple[int, List[memoryview]]]:
        """Sort (block index, bytes) items and group contiguous ones: (first block, buffers)."""
        out: List[Tuple[int, List[memoryview]]] = []
        if not items:
            return out
        items.sort(key=_FIRST)
        run_start = items[0][0]
        run_end = run_start
        bufs: List[memoryview] = []
        for blk, mv in items:
            if blk != run_end or len(bufs) >= IOV_MAX:
                out.append((run_start, bufs))
                bufs = []
                run_start = blk
            bufs.append(mv)
            run_end = blk + len(mv) // BLOCK_SIZE
        out.append((run_start, bufs))
        return out

    def write_planned(self, runs: List[Tuple[int, List[memoryview]]]) -> None:
        for blk, bufs in runs:
            self._pwritev(blk, bufs)

    def _pwritev(self, blk: int, bufs: List[memoryview]) -> None:
        if not bufs:
            return
        pos = self.offset + blk * BLOCK_SIZE
        if self.fd is None:
            self.out.seek(pos)
            for b in bufs:
                self.out.write(b)
            return
        total = sum(len(b) for b in bufs)
        done = os.pwritev(self.fd, bufs, pos)
        self.syscalls += 1
        if done != total:  # short write: finish the rest one buffer at a time
            skip = done
            for b in bufs:
                if skip >= len(b):
                    skip -= len(b)
                    pos += len(b)
                    continue
                rest = b[skip:]
                pos += skip
                skip = 0
                while len(rest):
                    k = os.pwrite(self.fd, rest, pos)
                    if k <= 0:
                        raise OSError(errno.EIO, "short write to the image")
                    rest = rest[k:]
                    pos += k


_FIRST = operator.itemgetter(0)


def _item_id(item: Tuple["_Node", memoryview, bool]) -> int:
    return item[0].id


def _region_is_hole(fd: int, offset: int, size: int) -> bool:
    try:
        pos = os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as e:
        return e.errno == errno.ENXIO
    except AttributeError:  # pragma: no cover - no SEEK_DATA on this platform
        return False
    return pos >= offset + size


def _punch_hole(fd: int, offset: int, size: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):  # pragma: no cover
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    fn.restype = ctypes.c_int
    FALLOC_FL_KEEP_SIZE = 1
    FALLOC_FL_PUNCH_HOLE = 2
    return fn(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, offset, size) == 0


_EOF_PROBE = bytearray(1)  # scratch for the byte past a file's planned end (never kept)


class _Source:
    """One file's content: an open source file (read with preadv) or in-memory bytes."""

    __slots__ = ("node", "fd")

    def __init__(self, node: _Node):
        self.node = node
        self.fd: Optional[int] = None
        if node.data is None:
            try:
                self.fd = os.open(node.source, _O_READ)
            except OSError as exc:
                raise RedoxFSError(f"/{node.path}: cannot read its source {node.source}: {exc.strerror}") from None

    def _short(self) -> RedoxFSError:
        return RedoxFSError(
            f"/{self.node.path}: source {self.node.source} is shorter than the {self.node.size} bytes "
            "it had when the image was planned (changed while writing?)"
        )

    def read_into(self, mv: memoryview, pos: int, last: bool = False) -> None:
        """Fill `mv` from byte `pos`. With `last` (mv ends at the planned size) also check that
        the file ends there: the read asks for one byte more, which must not come."""
        want = len(mv)
        if self.fd is None:
            chunk = (self.node.data or b"")[pos : pos + want]
            if len(chunk) != want:
                raise self._short()
            mv[:] = chunk
            return
        fd = self.fd
        k = os.preadv(fd, [mv, _EOF_PROBE] if last else [mv], pos)
        if k == want:  # the common case: one call, and (with `last`) the file ended right there
            return
        got = k
        while got < want:
            if k <= 0:
                raise self._short()
            k = os.preadv(fd, [mv[got:], _EOF_PROBE] if last else [mv[got:]], pos + got)
            got += max(k, 0)
        if got > want:
            raise self._changed()

    def _changed(self) -> RedoxFSError:
        return RedoxFSError(f"/{self.node.path}: source {self.node.source} changed size while the image was written")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


def _stored_bytes(n: _Node, r0: int, r1: int) -> int:
    full = max(0, min(r1, n.nrec - 1) - r0)
    return (full << n.rl) * BLOCK_SIZE + ((BLOCK_SIZE << n.last_level) if r1 == n.nrec else 0)


# A batch item: records [r0, r1) of a file node.
_Run = Tuple[_Node, int, int]
# A staged record piece: (level, first row, end row, node, first record, data bytes)
_Piece = Tuple[int, int, int, _Node, int, int]


# A read job: fill `dest` from byte `pos` of the node's content; `last`: dest ends at the
# planned size (check that the file ends there too); `pad`: bytes after it to zero.
_Job = Tuple[_Node, memoryview, int, bool, Optional[memoryview]]

# Reads at least this big go to the IO thread (one long GIL-free preadv each); smaller ones
# (small files, inline contents) are done by the main thread, where per-file Python work does
# not contend for the GIL with the hashing.
BIG_READ = 256 << 10


class _Batch:
    """One batch on its way through the pipeline: big reads (IO thread) -> small reads, hash
    and build (main thread) -> write (IO thread). `slot` picks one of the two sets of
    staging buffers."""

    __slots__ = ("runs", "nodes", "slot", "arrays", "pieces", "big", "small", "data_pages")

    def __init__(self, runs: List[_Run], nodes: List[_Node], slot: int):
        self.runs = runs
        self.nodes = nodes
        self.slot = slot
        self.arrays: List[Optional[np.ndarray]] = []
        self.pieces: List[_Piece] = []
        self.big: List[_Job] = []
        self.small: List[_Job] = []
        # per level: (row, data pages) of the rows that hold a file's last record
        self.data_pages: List[List[Tuple[int, int]]] = [[] for _ in range(RECORD_LEVEL + 1)]


def _run_jobs(jobs: List[_Job], dir_fd: Optional[int] = None) -> None:
    for n, dest, pos, last, pad in jobs:
        _read_file(n, dest, pos, last, dir_fd)
        if pad is not None:
            pad[:] = _ZEROS[: len(pad)]


def _read_file(n: _Node, dest: memoryview, pos: int, last: bool, dir_fd: Optional[int] = None) -> None:
    """Fill `dest` from byte `pos` of the node's content (see `_Source.read_into`). A relative
    source is opened against `dir_fd` (the manifest's base directory) when given."""
    if n.data is not None:
        _Source(n).read_into(dest, pos, last)
        return
    try:
        fd = os.open(n.src, _O_READ, dir_fd=dir_fd) if dir_fd is not None else os.open(n.source, _O_READ)
    except OSError as exc:
        raise RedoxFSError(f"/{n.path}: cannot read its source {n.source}: {exc.strerror}") from None
    try:
        if os.preadv(fd, [dest, _EOF_PROBE] if last else [dest], pos) != len(dest):
            src = _Source.__new__(_Source)
            src.node = n
            src.fd = fd
            src.read_into(dest, pos, last)  # short or long read: the careful path
    finally:
        os.close(fd)


_ZEROS = memoryview(bytes(BLOCK_SIZE << RECORD_LEVEL))


class _Writer:
    def __init__(self, plan: _Plan, sink: _Sink, dir_fd: Optional[int] = None):
        self.plan = plan
        self.sink = sink
        self.dir_fd = dir_fd  # the manifest's base directory (relative sources), or None
        self.node_hash = np.zeros(len(plan.nodes), dtype=np.uint64)
        self._hashed = 0  # node hashes filled so far (in plan order)
        self._list_hash: Dict[Tuple[int, int], int] = {}
        # One IO thread runs, in order, "write batch i-1" and "big reads of batch i+1" while
        # the main thread does the small reads of batch i and hashes it (preadv/pwritev and
        # numpy's loops release the GIL). Batch i+1 reads into the buffer set that batch i-1
        # was written from, after that write: two sets of staging buffers suffice and memory
        # stays bounded.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="redoxfs-io")
        self._writes: List[Future] = []
        self._arenas: List[Optional[np.ndarray]] = [None, None]
        self._node_bufs: List[Optional[np.ndarray]] = [None, None]
        self._dir_root: Dict[int, Tuple[int, int, int]] = {}
        # Content checks (sha256 against the manifest) run on their own thread, in batch order,
        # over the staged bytes; a slot's check must end before the slot is refilled.
        self._sha_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="redoxfs-sha256")
        self._sha_jobs: List[Optional[Future]] = [None, None]
        self._sha_open: Dict[int, Any] = {}  # node id -> running hash of a file spanning batches
        # The first mismatch (batches are checked in order): later checks are skipped, because a
        # failed batch leaves its spanning files' hashes unfinished, and every wait reports it.
        self._sha_failed: Optional[RedoxFSError] = None

    def _arena(self, slot: int, nbytes: int) -> np.ndarray:
        a = self._arenas[slot]
        if a is None or a.size < nbytes:
            a = np.empty(max(nbytes, BATCH_BYTES + (BLOCK_SIZE << RECORD_LEVEL)), dtype=np.uint8)
            self._arenas[slot] = a
        return a

    def _node_buf(self, slot: int, n: int) -> np.ndarray:
        a = self._node_bufs[slot]
        if a is None or a.shape[0] < n:
            a = np.empty((max(n, BATCH_NODES), BLOCK_SIZE), dtype=np.uint8)
            self._node_bufs[slot] = a
        out = a[:n]
        out.fill(0)
        return out

    # -- batching -------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._sha_pool.shutdown(wait=True, cancel_futures=True)

    def _sha_wait(self, slot: int) -> None:
        job = self._sha_jobs[slot]
        if job is not None:
            self._sha_jobs[slot] = None
            job.result()
        if self._sha_failed is not None:
            raise self._sha_failed

    def _sha_check(self, items: List[Tuple[_Node, memoryview, bool]]) -> None:
        """Hash (node, bytes, last piece) items in order; a file's digest must be its entry's."""
        if self._sha_failed is not None:
            return
        open_ = self._sha_open
        for n, mv, last in items:
            h = open_.pop(n.id, None)
            if h is None:
                h = hashlib.sha256(mv)
            else:
                h.update(mv)
            if not last:
                open_[n.id] = h
            elif n.e.sha256 is not None and h.hexdigest() != n.e.sha256:
                self._sha_failed = RedoxFSError(
                    f"/{n.path}: source {n.source} no longer matches the manifest (sha256 {h.hexdigest()}, the "
                    f"manifest says {n.e.sha256}); rebuild the manifest"
                )
                return

    def _wait(self) -> None:
        while self._writes:
            self._writes.pop(0).result()

    def _batches(self) -> Iterator[Tuple[List[_Run], List[_Node]]]:
        runs: List[_Run] = []
        done_nodes: List[_Node] = []
        staged = 0
        for n in self.plan.nodes:
            if n.kind != DIR and n.size > INLINE_MAX:
                rsize = BLOCK_SIZE << n.rl
                per_batch = max(1, BATCH_BYTES // rsize)
                r = 0
                while r < n.nrec:
                    room = (BATCH_BYTES - staged) // rsize
                    if room <= 0:
                        yield runs, done_nodes
                        runs, done_nodes, staged = [], [], 0
                        room = per_batch
                    r1 = min(n.nrec, r + room)
                    runs.append((n, r, r1))
                    staged += _stored_bytes(n, r, r1)
                    r = r1
            done_nodes.append(n)
            if len(done_nodes) >= BATCH_NODES or staged >= BATCH_BYTES:
                yield runs, done_nodes
                runs, done_nodes, staged = [], [], 0
        if runs or done_nodes:
            yield runs, done_nodes

    def _run(self) -> None:
        submit = self._pool.submit
        batches = self._batches()
        slot = 0
        nxt = next(batches, None)
        pending: Optional[Tuple[_Batch, Future, Future]] = None
        if nxt is not None:
            b = self._prepare(nxt[0], nxt[1], slot)
            pending = (b, submit(self._zero_nodes, b), submit(_run_jobs, b.big, self.dir_fd))
        while pending is not None:
            batch, zeroing, reading = pending
            nxt = next(batches, None)
            slot ^= 1
            if nxt is not None:
                self._sha_wait(slot)  # the slot's previous batch is checked before it is refilled
                b = self._prepare(nxt[0], nxt[1], slot)
                pending = (b, submit(self._zero_nodes, b), submit(_run_jobs, b.big, self.dir_fd))
            else:
                pending = None
            writes = self._process(batch, zeroing, reading)
            self._writes.append(submit(self.sink.write_planned, self.sink.plan_runs(writes)))
            # keep at most the last write in flight (errors surface early)
            while len(self._writes) > 1:
                self._writes.pop(0).result()
        self._sha_wait(0)
        self._sha_wait(1)
        self.finish()

    def _prepare(self, runs: List[_Run], nodes: List[_Node], slot: int) -> _Batch:
        """Place the batch's records in the slot's arena (views only: the slot's buffers may
        still be being written) and list the reads that fill them."""
        b = _Batch(runs, nodes, slot)
        if not runs:
            return b
        counts = [0] * (RECORD_LEVEL + 1)  # rows per level class
        for n, r0, r1 in runs:
            full = min(r1, n.nrec - 1) - r0 if r0 < n.nrec - 1 else 0
            counts[n.rl] += max(0, full)
            if r1 == n.nrec:
                counts[n.last_level] += 1
        arena = self._arena(slot, sum(c * (BLOCK_SIZE << lv) for lv, c in enumerate(counts)))
        arrays: List[Optional[np.ndarray]] = [None] * (RECORD_LEVEL + 1)
        starts = [0] * (RECORD_LEVEL + 1)  # byte offset of each level's rows in the arena
        off = 0
        for lv in range(RECORD_LEVEL, -1, -1):
            c = counts[lv]
            if c:
                nb = c * (BLOCK_SIZE << lv)
                arrays[lv] = arena[off : off + nb].reshape(c, BLOCK_SIZE << lv)
                starts[lv] = off
                off += nb
        b.arrays = arrays
        flat = arena.data
        fill = [0] * (RECORD_LEVEL + 1)
        pieces = b.pieces
        big = b.big
        small = b.small
        for n, r0, r1 in runs:
            rl = n.rl
            rsize = BLOCK_SIZE << rl
            full_end = min(r1, n.nrec - 1)
            if full_end > r0:
                row0 = fill[rl]
                k = full_end - r0
                at = starts[rl] + row0 * rsize
                (big if k * rsize >= BIG_READ else small).append((n, flat[at : at + k * rsize], r0 * rsize, False, None))
                fill[rl] += k
                pieces.append((rl, row0, row0 + k, n, r0, k * rsize))
            if r1 == n.nrec:
                lv = n.last_level
                row = fill[lv]
                fill[lv] += 1
                r = n.nrec - 1
                length = n.size - r * rsize
                at = starts[lv] + row * (BLOCK_SIZE << lv)
                end = at + (BLOCK_SIZE << lv)
                job = (n, flat[at : at + length], r * rsize, True, flat[at + length : end] if end > at + length else None)
                (big if length >= BIG_READ else small).append(job)
                pieces.append((lv, row, row + 1, n, r, length))
                b.data_pages[lv].append((row, -(-length // BLOCK_SIZE)))
        return b

    # -- main thread ----------------------------------------------------------------------------
    def _process(self, b: _Batch, zeroing: Future, reading: Future) -> List[Tuple[int, memoryview]]:
        writes: List[Tuple[int, memoryview]] = []
        _run_jobs(b.small, self.dir_fd)
        node_arr = zeroing.result()  # the batch's node blocks, zeroed (IO thread)
        self._read_inline(b.nodes, node_arr, self.dir_fd)
        reading.result()  # the big reads (IO thread)
        self._sha_jobs[b.slot] = self._sha_pool.submit(self._sha_check, self._sha_items(b, node_arr))
        self._records(b, writes)
        self._block_lists(b.nodes, writes)
        self._directories(b.nodes, writes)
        self._nodes(b.nodes, node_arr, writes)
        return writes

    @staticmethod
    def _sha_items(b: _Batch, node_arr: Optional[np.ndarray]) -> List[Tuple[_Node, memoryview, bool]]:
        """The batch's file contents as staged (records, inline contents in node blocks)."""
        items: List[Tuple[_Node, memoryview, bool]] = []
        arrays = b.arrays
        for lv, row0, row1, n, r0, data_len in b.pieces:
            arr = arrays[lv]
            assert arr is not None
            items.append((n, arr[row0:row1].reshape(-1).data[:data_len], r0 + (row1 - row0) == n.nrec))
        if node_arr is not None:
            buf = node_arr.reshape(-1).data
            for row, n in enumerate(b.nodes):
                if n.kind == FILE and n.size <= INLINE_MAX:
                    base = row * BLOCK_SIZE + INLINE_OFFSET
                    items.append((n, buf[base : base + n.size], True))
        # in node order (a stable sort keeps a file's pieces in order): the first mismatch
        # reported is the first file in id order, as the native writer reports it
        items.sort(key=_item_id)
        return items

    def _zero_nodes(self, b: _Batch) -> Optional[np.ndarray]:
        """The batch's node blocks, zeroed (IO thread: after the slot's previous write)."""
        return self._node_buf(b.slot, len(b.nodes)) if b.nodes else None

    @staticmethod
    def _read_inline(nodes: List[_Node], arr: Optional[np.ndarray], dir_fd: Optional[int]) -> None:
        """Read inline file contents into their node blocks."""
        if arr is None:
            return
        buf = arr.reshape(-1).data
        base = INLINE_OFFSET
        read = _read_file
        for n in nodes:
            size = n.size
            if size and size <= INLINE_MAX and n.kind != DIR:
                read(n, buf[base : base + size], 0, True, dir_fd)
            base += BLOCK_SIZE

    # -- records --------------------------------------------------------------------------------
    def _records(self, b: _Batch, writes: List[Tuple[int, memoryview]]) -> None:
        if not b.runs:
            return
        arrays = b.arrays
        present = [a for a in arrays if a is not None]
        got = iter(seahash_arrays(present))
        hashes = [next(got) if a is not None else None for a in arrays]
        fresh = self.sink.fresh
        # On a fresh (all-hole) region, all-zero data pages are left as holes. Find the rows
        # with a candidate (a data page whose first word is 0) in one pass per level; only
        # their pieces are looked at page by page.
        suspects: List[Optional[np.ndarray]] = [None] * len(arrays)
        if fresh:
            for lv, arr in enumerate(arrays):
                if arr is None:
                    continue
                ppr = 1 << lv
                first_zero = arr.reshape(-1, BLOCK_SIZE).view(np.uint64)[:, 0] == 0
                if not first_zero.any():
                    continue
                first_zero = first_zero.reshape(arr.shape[0], ppr)
                ends = b.data_pages[lv]
                if ends:  # rows holding a file's last record: pages past its data are padding
                    valid = np.full(arr.shape[0], ppr, dtype=np.int64)
                    valid[[r for r, _ in ends]] = [k for _, k in ends]
                    first_zero &= np.arange(ppr)[None, :] < valid[:, None]
                rows = np.flatnonzero(first_zero.any(axis=1))
                if rows.size:
                    suspects[lv] = rows
        for lv, row0, row1, n, r0, data_len in b.pieces:
            h = hashes[lv]
            arr = arrays[lv]
            assert h is not None and arr is not None
            if row1 - row0 == n.nrec:  # all of the file's records: keep a view
                n.rec_hash = h[row0:row1]
            else:
                if n.rec_hash is None:
                    n.rec_hash = np.zeros(n.nrec, dtype=np.uint64)
                n.rec_hash[r0 : r0 + (row1 - row0)] = h[row0:row1]
            blk0 = n.rec_base + (r0 << n.rl)
            flat = arr[row0:row1].reshape(-1)
            if not fresh:
                writes.append((blk0, flat.data))
                continue
            npages = -(-data_len // BLOCK_SIZE)
            sus = suspects[lv]
            if sus is not None and np.any((sus >= row0) & (sus < row1)):
                pages = flat[: npages * BLOCK_SIZE].view(np.uint64).reshape(npages, BLOCK_SIZE // 8)
                nz = pages.any(axis=1)
                if not nz.all():
                    idx = np.flatnonzero(np.diff(np.concatenate(([False], nz, [False])).astype(np.int8)))
                    for a, e in zip(idx[0::2].tolist(), idx[1::2].tolist()):
                        writes.append((blk0 + a, flat[a * BLOCK_SIZE : e * BLOCK_SIZE].data))
                    continue
            writes.append((blk0, flat[: npages * BLOCK_SIZE].data))

    # -- BlockLists -----------------------------------------------------------------------------
    def _block_lists(self, nodes: List[_Node], writes: List[Tuple[int, memoryview]]) -> None:
        todo = [n for n in nodes if n.lists]
        if not todo:
            return
        list_hash: Dict[Tuple[int, int], int] = {}
        max_depth = max(d for n in todo for (_, d, _, _) in n.lists)
        for depth in range(1, max_depth + 1):
            blocks: List[Tuple[_Node, int, int]] = [
                (n, i, blk) for n in todo for i, (blk, d, _, _) in enumerate(n.lists) if d == depth
            ]
            if not blocks:
                continue
            arr = np.zeros((len(blocks), BLOCK_SIZE), dtype=np.uint8)
            for row, (n, i, _blk) in enumerate(blocks):
                _b, _d, first, children = n.lists[i]
                if depth == 1:
                    last = min(first + BLOCKLIST_ENTRIES, n.nrec)
                    ptrs = np.empty((last - first, 2), dtype="<u8")
                    ptrs[:, 0] = [n.rec_addr(r) for r in range(first, last)]
                    assert n.rec_hash is not None
                    ptrs[:, 1] = n.rec_hash[first:last]
                else:
                    ptrs = np.empty((len(children), 2), dtype="<u8")
                    ptrs[:, 0] = [make_addr(n.lists[c][0], 0) for c in children]
                    ptrs[:, 1] = [list_hash[(n.id, c)] for c in children]
                arr[row, : ptrs.size * 8] = ptrs.view(np.uint8).reshape(-1)
            for (n, i, blk), h in zip(blocks, seahash_rows(arr).tolist()):
                list_hash[(n.id, i)] = h
            for row, (n, i, blk) in enumerate(blocks):
                writes.append((blk, memoryview(arr[row])))
        self._list_hash = list_hash

    # -- directories ----------------------------------------------------------------------------
    def _directories(self, nodes: List[_Node], writes: List[Tuple[int, memoryview]]) -> None:
        dirs = [n for n in nodes if n.kind == DIR and n.dirlists]
        if not dirs:
            return
        total = sum(len(n.dirlists) for n in dirs)
        arr = np.zeros((total, BLOCK_SIZE), dtype=np.uint8)
        buf = arr.reshape(-1).data
        row = 0
        rows: List[int] = []
        for n in dirs:
            rows.append(row)
            entries = n.children
            start = 0
            for end in n.dirlists:
                blob = b"".join([c.id.to_bytes(4, "little") + _LEN_BYTE[len(c.name)] + c.name for c in entries[start:end]])
                base = row * BLOCK_SIZE
                buf[base : base + len(blob)] = blob
                buf[base + DIRLIST_BYTES : base + BLOCK_SIZE] = (end - start).to_bytes(2, "little") + len(blob).to_bytes(2, "little")
                start = end
                row += 1
        dl_hash = seahash_rows(arr).tolist()
        # HTree levels, lowest first; child pointers per dir: list of (addr, hash, key)
        child_ptrs: Dict[int, List[Tuple[int, int, int]]] = {}
        for n, r0 in zip(dirs, rows):
            nd = len(n.dirlists)
            child_ptrs[n.id] = [
                (make_addr(n.block + 1 + i, 0), dl_hash[r0 + i], n.dl_keys[i]) for i in range(nd)
            ]
            writes.append((n.block + 1, arr[r0 : r0 + nd].reshape(-1).data))
        next_blk = {n.id: n.block + 1 + len(n.dirlists) for n in dirs}
        level = 0
        while True:
            work = [n for n in dirs if level < len(n.htree)]
            if not work:
                break
            blocks: List[Tuple[_Node, int, List[Tuple[int, int, int]]]] = []
            for n in work:
                kids = child_ptrs[n.id]
                for a, b in n.htree[level]:
                    blocks.append((n, next_blk[n.id], kids[a:b]))
                    next_blk[n.id] += 1
            harr = np.zeros((len(blocks), BLOCK_SIZE), dtype=np.uint8)
            for row, (_n, _blk, kids) in enumerate(blocks):
                rec = np.zeros(HTREE_ENTRIES, dtype=_HTREE_DTYPE)
                rec["h"] = 0xFFFFFFFF
                rec["h"][: len(kids)] = [k[2] for k in kids]
                rec["a"][: len(kids)] = [k[0] for k in kids]
                rec["x"][: len(kids)] = [k[1] for k in kids]
                harr[row, : HTREE_ENTRIES * 20] = rec.view(np.uint8)
            hh = seahash_rows(harr).tolist()
            new_ptrs: Dict[int, List[Tuple[int, int, int]]] = {n.id: [] for n in work}
            for row, ((n, blk, kids), h) in enumerate(zip(blocks, hh)):
                new_ptrs[n.id].append((make_addr(blk, 0), h, kids[-1][2]))
                writes.append((blk, memoryview(harr[row])))
            for n in work:
                child_ptrs[n.id] = new_ptrs[n.id]
            level += 1
        for n in dirs:
            (addr, h, _key), = child_ptrs[n.id]
            self._dir_root[n.id] = (len(n.htree), addr, h)

    # -- node blocks ----------------------------------------------------------------------------
    def _nodes(self, nodes: List[_Node], arr: Optional[np.ndarray], writes: List[Tuple[int, memoryview]]) -> None:
        if not nodes:
            return
        assert arr is not None  # zeroed, inline contents already read in
        buf = arr.reshape(-1).data
        pack = NODE_STRUCT.pack_into
        pack_ptr = PTR_STRUCT.pack_into
        for row, n in enumerate(nodes):
            base = row * BLOCK_SIZE
            e = n.e
            if n.kind == DIR:
                pack(buf, base, n.mode, e.uid, e.gid, 1, n.size, n.blocks, n.ctime, 0, e.mtime, 0, e.mtime, 0, n.rl, 0)
                if n.dirlists:
                    depth, addr, h = self._dir_root[n.id]
                    _DIR_ROOT.pack_into(buf, base + 128, 0xFFFFFFFFFFFFFFF0 | depth, 0xFFFFFFFFFFFFFFFF, addr, h)
            elif n.size <= INLINE_MAX:
                pack(buf, base, n.mode, e.uid, e.gid, 1, n.size, n.blocks, n.ctime, 0, e.mtime, 0, e.mtime, 0,
                     n.rl, FLAG_INLINE)
            else:
                pack(buf, base, n.mode, e.uid, e.gid, 1, n.size, n.blocks, n.ctime, 0, e.mtime, 0, e.mtime, 0, n.rl, 0)
                if n.nrec == 1:
                    assert n.rec_hash is not None
                    pack_ptr(buf, base + 128, make_addr(n.rec_base, n.last_level), int(n.rec_hash[0]))
                else:
                    self._level_data(n, arr[row])
        hashes = seahash_rows(arr)
        # batches are consecutive runs of the plan's nodes, processed in order
        self.node_hash[self._hashed : self._hashed + len(nodes)] = hashes
        self._hashed += len(nodes)
        for n in nodes:
            n.rec_hash = None  # free the per-record hashes
            if n.dirlists:
                n.dirlists = ()
                n.children = _NO_NODES
        # node blocks are mostly contiguous with each other (inline files) or with their data
        row0 = 0
        nn = len(nodes)
        while row0 < nn:
            row1 = row0 + 1
            blk = nodes[row0].block
            while row1 < nn and nodes[row1].block == blk + (row1 - row0):
                row1 += 1
            writes.append((blk, buf[row0 * BLOCK_SIZE : row1 * BLOCK_SIZE]))
            row0 = row1

    def _level_data(self, n: _Node, row: np.ndarray) -> None:
        assert n.rec_hash is not None
        k = min(n.nrec, 128)
        ptrs = np.empty((k, 2), dtype="<u8")
        ptrs[:, 0] = [n.rec_addr(r) for r in range(k)]
        ptrs[:, 1] = n.rec_hash[:k]
        row[128 : 128 + 16 * k] = ptrs.view(np.uint8).reshape(-1)
        for tier, tops in enumerate(n.tops, start=1):
            off = LEVEL_TABLE[tier][0]
            for j, li in enumerate(tops):
                row[off + 16 * j : off + 16 * j + 16] = np.frombuffer(
                    make_addr(n.lists[li][0], 0).to_bytes(8, "little") + self._list_hash[(n.id, li)].to_bytes(8, "little"),
                    dtype=np.uint8,
                )

    # -- tree, allocation log, header -------------------------------------------------------------
    def finish(self) -> None:
        plan = self.plan
        writes: List[Tuple[int, memoryview]] = []
        child_hash: Dict[Tuple[int, ...], int] = {}
        full: Dict[Tuple[int, ...], bool] = {}
        # entries per list: key -> {index: (addr, hash)}
        for depth in (3, 2, 1, 0):
            keys = [k for k in plan.tree_lists if len(k) == depth]
            keys.sort()
            arr = np.zeros((len(keys), BLOCK_SIZE), dtype=np.uint8)
            entries: Dict[Tuple[int, ...], List[Tuple[int, int, int, bool]]] = {k: [] for k in keys}
            if depth == 3:
                self._leaf_tree_lists(keys, arr, full)
                for k, h in zip(keys, seahash_rows(arr).tolist()):
                    child_hash[k] = h
                for row, k in enumerate(keys):
                    writes.append((plan.tree_lists[k], memoryview(arr[row])))
                continue
            else:
                for ck in [k for k in plan.tree_lists if len(k) == depth + 1]:
                    entries[ck[:depth]].append((ck[depth], make_addr(plan.tree_lists[ck], 0), child_hash[ck], full[ck]))
            for row, k in enumerate(keys):
                ptrs = np.zeros((TREE_ENTRIES, 2), dtype="<u8")
                flags = 0
                for idx, addr, h, is_full in entries[k]:
                    ptrs[idx] = (addr, h)
                    if is_full:
                        flags |= 1 << idx
                if depth == 3 and k == (0, 0, 0):
                    flags |= 1  # reserved id 0
                full[k] = flags == (1 << TREE_ENTRIES) - 1
                arr[row, : TREE_ENTRIES * 16] = ptrs.view(np.uint8).reshape(-1)
                arr[row, TREE_ENTRIES * 16 :] = np.frombuffer(flags.to_bytes(32, "little"), dtype=np.uint8)
            for k, h in zip(keys, seahash_rows(arr).tolist()):
                child_hash[k] = h
            for row, k in enumerate(keys):
                writes.append((plan.tree_lists[k], memoryview(arr[row])))
        tree_ptr = (make_addr(plan.tree_lists[()], 0), child_hash[()])
        # allocation log
        total_blocks = self.sink.size // BLOCK_SIZE
        extents = list(plan.gaps)
        if total_blocks > plan.end:
            extents.append((plan.end, total_blocks - plan.end))
        prev = (0, 0)
        for j in range(plan.alloc_count):
            blk = bytearray(BLOCK_SIZE)
            blk[0:16] = prev[0].to_bytes(8, "little") + prev[1].to_bytes(8, "little")
            for e, (start, count) in enumerate(extents[j * ALLOC_ENTRIES : (j + 1) * ALLOC_ENTRIES]):
                blk[16 + 16 * e : 32 + 16 * e] = start.to_bytes(8, "little") + count.to_bytes(8, "little")
            index = plan.alloc_base + j
            prev = (make_addr(index, 0), seahash(blk))
            writes.append((index, memoryview(bytes(blk))))
        alloc_ptr = prev
        if self.uuid_fn is not None:  # computed here, while the last batch is being written
            self.uuid = self.uuid_fn()
        self._wait()
        self.sink.write_runs(writes)
        # header last
        self.sink.write_runs([(0, memoryview(self.header(tree_ptr, alloc_ptr)))])

    def _leaf_tree_lists(self, keys: List[Tuple[int, ...]], arr: np.ndarray, full: Dict[Tuple[int, ...], bool]) -> None:
        """Fill the lowest tree lists (one row of `arr` per key, keys ascending): the node
        pointers (all "full") and their bitmaps, vectorised over all nodes."""
        plan = self.plan
        ids = np.array([n.id for n in plan.nodes], dtype=np.int64)
        blocks = np.array([n.block for n in plan.nodes], dtype=np.uint64)
        prefixes = np.array([(k[0] << 16) | (k[1] << 8) | k[2] for k in keys], dtype=np.int64)
        rows = np.searchsorted(prefixes, ids >> 8)
        idx = ids & 0xFF
        words = arr.view("<u8")
        words[rows, 2 * idx] = blocks << np.uint64(8)  # make_addr(block, 0)
        words[rows, 2 * idx + 1] = self.node_hash
        flags = arr[:, TREE_ENTRIES * 16 :]
        np.bitwise_or.at(flags, (rows, idx >> 3), (np.uint8(1) << (idx & 7).astype(np.uint8)))
        if keys and keys[0] == (0, 0, 0):
            flags[0, 0] |= 1  # reserved id 0
        counts = np.unpackbits(flags, axis=1).sum(axis=1)
        for k, c in zip(keys, counts.tolist()):
            full[k] = c == TREE_ENTRIES

    def header(self, tree_ptr: Tuple[int, int], alloc_ptr: Tuple[int, int]) -> bytes:
        h = bytearray(BLOCK_SIZE)
        h[0:8] = SIGNATURE
        h[8:16] = VERSION.to_bytes(8, "little")
        h[16:32] = self.uuid
        h[32:40] = self.sink.size.to_bytes(8, "little")
        h[40:48] = (0).to_bytes(8, "little")
        h[48:64] = tree_ptr[0].to_bytes(8, "little") + tree_ptr[1].to_bytes(8, "little")
        h[64:80] = alloc_ptr[0].to_bytes(8, "little") + alloc_ptr[1].to_bytes(8, "little")
        digest = seahash(h[:4072])
        h[4072:4080] = digest.to_bytes(8, "little")
        h[4088:4096] = digest.to_bytes(8, "little")
        return bytes(h)

    uuid = bytes(16)
    uuid_fn: Optional[Callable[[], bytes]] = None


def check_write_args(*, offset: int, size: int, uuid: Optional[bytes], ctime: Optional[int]) -> None:
    """`write_redoxfs`'s checks of its arguments (shared with the native writer's wrapper)."""
    if offset < 0:
        raise RedoxFSError(f"offset {offset} is negative")
    if size % BLOCK_SIZE:
        raise RedoxFSError(f"filesystem size {size} is not a multiple of {BLOCK_SIZE} bytes")
    if uuid is not None and len(uuid) != 16:
        raise RedoxFSError(f"uuid must be 16 bytes, got {len(uuid)}")
    if ctime is not None:
        _check_time(ctime, "ctime")


def write_redoxfs(
    out: BinaryIO,
    manifest: Any,
    *,
    offset: int,
    size: int,
    uuid: Optional[bytes] = None,
    ctime: Optional[int] = None,
) -> None:
    """Write a RedoxFS v8 filesystem for `manifest` into bytes [offset, offset+size) of `out`
    (a binary file opened r+b/w+b, ideally sparse and at least offset+size long).

    Raises RedoxFSError (naming the entry or the needed size) before writing anything when the
    input is impossible: size too small or not a multiple of 4096, names over 252 bytes,
    entries below non-directories, unreadable sources."""
    check_write_args(offset=offset, size=size, uuid=uuid, ctime=ctime)
    # The writer makes many small objects and no reference cycles: the cyclic collector would
    # only rescan the manifest and the plan over and over (~10% of the run).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _write(out, manifest, offset, size, uuid, ctime)
    finally:
        if gc_was_enabled:
            gc.enable()


def _write(out: BinaryIO, manifest: Any, offset: int, size: int, uuid: Optional[bytes], ctime: Optional[int]) -> None:
    dir_fd = _open_base(manifest)
    try:
        plan = _plan(manifest, ctime, dir_fd)
        need = plan.needed_blocks * BLOCK_SIZE
        if size < need:
            raise RedoxFSError(
                f"image too small: this RedoxFS needs at least {need} bytes "
                f"({-(-need // (1 << 20))} MiB), got {size} bytes ({size / (1 << 20):.1f} MiB)"
            )
        sink = _Sink(out, offset, size)
        sink.prepare()
        w = _Writer(plan, sink, dir_fd)
        if uuid is not None:
            w.uuid = uuid
        else:
            w.uuid_fn = lambda: default_uuid(manifest, size, ctime)
        w.run()
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
