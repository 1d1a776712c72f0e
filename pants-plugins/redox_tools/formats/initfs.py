"""Redox initfs archives ("RedoxFtw", revision C): writer and reader.

Spec: docs/formats/initfs.md. The writer follows the upstream archiver's bump allocation order
(§6) exactly, with directory entries sorted by name bytes, so the same manifest + bootstrap
always gives the same bytes and the worked example of §11 is reproduced byte for byte.

Layout (all offsets absolute, every allocation starts on a page boundary):
    0x0000 header page | 0x1000 bootstrap ELF | root entry table | per entry: content, then name
    | ... | inode table (post-order inode numbers, root last) = end of file (not page padded)

Only what revision C can hold is taken from the manifest: the kind, the owner-execute bit
(type 1 = executable) and symlink targets (stored relative to the link's directory).
uid/gid/mtime/other permission bits are not representable and are ignored.

API:
    build_initfs(manifest, bootstrap, *, max_size=DEFAULT_MAX_SIZE) -> bytes
    write_initfs(manifest, bootstrap, out_path, *, max_size=DEFAULT_MAX_SIZE) -> None   (atomic)
    InitfsReader(data).header / .listdir(p) / .read(p) / .readlink(p) / .stat(p) / .walk() / .check()

CLI:
    python -m redox_tools.formats.initfs create --manifest M.json --bootstrap ELF -o OUT [--max-size N]
    python -m redox_tools.formats.initfs ls IMG [PATH] [-l]
    python -m redox_tools.formats.initfs cat IMG PATH
    python -m redox_tools.formats.initfs info IMG
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import stat as _stat
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, Iterator, List, Optional, Sequence, Tuple

from redox_tools import qcow2
from redox_tools.errors import FormatError, run_main
from redox_tools.manifest import DIR, FILE, SYMLINK, Entry, Manifest, resolve_symlink_target

MAGIC = b"RedoxFtw"
PAGE_SIZE = 4096
HEADER_SIZE = 34
INODE_SIZE = 12
DIRENT_SIZE = 8
BOOTSTRAP_OFFSET = 0x1000
BOOTSTRAP_VADDR_BIAS = 0x2000  # file offset o of the bootstrap <-> virtual address 0x2000 + o (§7)
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
MAX_U16 = 0xFFFF
MAX_U32 = 0xFFFFFFFF
SYMLINK_HOPS = 40

TYPE_FILE = 0
TYPE_EXEC = 1
TYPE_DIR = 2
TYPE_SYMLINK = 3
TYPE_NAMES = {TYPE_FILE: "file", TYPE_EXEC: "exec", TYPE_DIR: "dir", TYPE_SYMLINK: "symlink"}

_HEADER = struct.Struct("<8sIQHHHQ")
_INODE = struct.Struct("<III")
_DIRENT = struct.Struct("<HHI")
assert _HEADER.size == HEADER_SIZE and _INODE.size == INODE_SIZE and _DIRENT.size == DIRENT_SIZE


class InitfsError(FormatError):
    """A malformed initfs image, or a tree/bootstrap that cannot be archived."""


def _round_up(n: int) -> int:
    return (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


# =================================================================================================
# Header
# =================================================================================================
@dataclass(frozen=True)
class InitfsHeader:
    inode_table_offset: int
    initfs_size: int
    root_inode: int
    inode_count: int
    bootstrap_entry: int
    page_size: int = PAGE_SIZE
    magic: bytes = MAGIC

    def pack(self) -> bytes:
        return _HEADER.pack(
            self.magic, self.inode_table_offset, self.initfs_size, self.page_size,
            self.root_inode, self.inode_count, self.bootstrap_entry,
        )

    @classmethod
    def unpack(cls, data: bytes) -> "InitfsHeader":
        if len(data) < HEADER_SIZE:
            raise InitfsError(f"image is {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
        magic, ito, size, page, root, count, entry = _HEADER.unpack_from(data, 0)
        return cls(ito, size, root, count, entry, page, magic)


# =================================================================================================
# Bootstrap
# =================================================================================================
def bootstrap_entry(elf: bytes) -> int:
    """`e_entry` of the bootstrap ELF, read by EI_CLASS/EI_DATA as the archiver does (§6.2)."""
    if len(elf) < 4 or elf[:4] != b"\x7fELF":
        raise InitfsError("bootstrap is not an ELF file (it must start with 7F 45 4C 46)")
    if len(elf) < 6:
        raise InitfsError("bootstrap ELF is truncated before EI_CLASS/EI_DATA")
    cls, enc = elf[4], elf[5]
    if enc not in (1, 2):
        raise InitfsError(f"bootstrap ELF has unknown data encoding EI_DATA={enc}")
    e = "<" if enc == 1 else ">"
    if cls == 1:
        fmt, need = e + "I", 0x18 + 4
    elif cls == 2:
        fmt, need = e + "Q", 0x18 + 8
    else:
        raise InitfsError(f"bootstrap ELF has unknown class EI_CLASS={cls}")
    if len(elf) < need:
        raise InitfsError(f"bootstrap ELF is truncated ({len(elf)} bytes) before e_entry")
    (entry,) = struct.unpack_from(fmt, elf, 0x18)
    return entry


def check_bootstrap(elf: bytes) -> int:
    """Check the §7 properties the kernel and the archive layout rely on; return `e_entry`.

    Required: ELF magic, non-zero entry (the kernel asserts it), not position-independent
    (nothing relocates it), and every loadable segment with memory at file offset o <->
    virtual 0x2000 + o and no memory beyond its file bytes (else .bss overwrites the archive).
    """
    entry = bootstrap_entry(elf)
    if entry == 0:
        raise InitfsError("bootstrap ELF has entry point 0 (the kernel refuses it; was the link missing --entry/_start?)")
    if elf[4] == 2:  # ELF64: check the segments as well
        from redox_tools.formats.elf import ET_DYN, ET_REL, PT_LOAD, ElfError, ElfFile

        try:
            parsed = ElfFile(elf, name="bootstrap")
        except ElfError as e:
            raise InitfsError(str(e)) from None
        if parsed.type in (ET_DYN, ET_REL):
            raise InitfsError(
                f"bootstrap ELF is {parsed.type_name}; it must be a static position-dependent executable (ET_EXEC)"
            )
        for i, ph in enumerate(parsed.program_headers):
            if ph.type != PT_LOAD or ph.memsz == 0:
                continue
            if ph.vaddr - ph.offset != BOOTSTRAP_VADDR_BIAS:
                raise InitfsError(
                    f"bootstrap PT_LOAD #{i} maps file offset {ph.offset:#x} at {ph.vaddr:#x}; the initfs needs "
                    f"vaddr = offset + {BOOTSTRAP_VADDR_BIAS:#x} (link with the bootstrap linker script)"
                )
            if ph.memsz != ph.filesz:
                raise InitfsError(
                    f"bootstrap PT_LOAD #{i} has memsz {ph.memsz:#x} > filesz {ph.filesz:#x}: its .bss would "
                    f"overwrite the archive; put .bss inside the file-backed .data section"
                )
    return entry


# =================================================================================================
# Writer
# =================================================================================================
@dataclass
class _Node:
    name: bytes
    path: str
    type: int
    entry: Optional[Entry] = None
    children: List["_Node"] = field(default_factory=list)
    target: bytes = b""
    # layout, filled by _plan
    inode: int = -1
    length: int = 0
    offset: int = 0
    name_offset: int = 0


def _encode_name(name: str, path: str) -> bytes:
    try:
        b = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InitfsError(f"/{path}: name is not valid UTF-8 (the initfs scheme cannot list it)") from None
    if len(b) > MAX_U16:
        raise InitfsError(f"/{path}: name is {len(b)} bytes long, the initfs limit is {MAX_U16}")
    return b


def stored_symlink_target(link_path: str, target: str) -> str:
    """The target as the archiver stores it: relative to the link's directory, normalised.
    Absolute targets are taken as paths inside the image; one escaping the root is an error."""
    resolved = resolve_symlink_target(link_path, target)
    if resolved is None:
        raise InitfsError(f"symlink /{link_path} -> {target} points outside the initfs root")
    here = link_path.split("/")[:-1]
    there = resolved.split("/") if resolved else []
    common = 0
    while common < len(here) and common < len(there) and here[common] == there[common]:
        common += 1
    parts = [".."] * (len(here) - common) + there[common:]
    return "/".join(parts) if parts else "."


def _tree(manifest: Manifest) -> _Node:
    complete = manifest.complete()
    root = _Node(b"", "", TYPE_DIR)
    nodes: Dict[str, _Node] = {"": root}
    for e in complete:  # sorted by path: parents come before children
        name = _encode_name(e.name, e.path)
        if e.kind == DIR:
            t = TYPE_DIR
        elif e.kind == FILE:
            t = TYPE_EXEC if e.mode & 0o100 else TYPE_FILE
            if e.size > MAX_U32:
                raise InitfsError(f"/{e.path}: file is {e.size} bytes; initfs files must be < 4 GiB")
        else:
            t = TYPE_SYMLINK
        node = _Node(name, e.path, t, e)
        if t == TYPE_SYMLINK:
            stored = stored_symlink_target(e.path, e.target or "")
            try:
                node.target = stored.encode("utf-8")
            except UnicodeEncodeError:
                raise InitfsError(f"/{e.path}: symlink target {stored!r} is not valid UTF-8") from None
        parent = nodes.get(e.parent)
        if parent is None or parent.type != TYPE_DIR:  # complete() already refuses this
            raise InitfsError(f"/{e.path}: parent /{e.parent} is not a directory")
        parent.children.append(node)
        if t == TYPE_DIR:
            nodes[e.path] = node
    for node in nodes.values():
        node.children.sort(key=lambda n: n.name)
        if len(node.children) > MAX_U16:
            raise InitfsError(f"/{node.path}: directory has {len(node.children)} entries, the initfs limit is {MAX_U16}")
    return root


class _Plan:
    """The §6 bump allocation, computed before any byte is written."""

    def __init__(self, root: _Node, bootstrap_len: int) -> None:
        self.cursor = 0
        self.inodes: List[_Node] = []
        self.items: List[Tuple[int, _Node, str]] = []  # (offset, node, what) in allocation order
        self.header_offset = self._alloc(PAGE_SIZE)
        self.bootstrap_offset = self._alloc(bootstrap_len)
        self._dir(root)
        root.inode = len(self.inodes)
        self.inodes.append(root)
        if len(self.inodes) > MAX_U16:
            raise InitfsError(f"the tree has {len(self.inodes)} inodes (entries + root), the initfs limit is {MAX_U16}")
        self.inode_table_offset = self._alloc(INODE_SIZE * len(self.inodes))
        self.size = self.inode_table_offset + INODE_SIZE * len(self.inodes)

    def _alloc(self, n: int) -> int:
        off = self.cursor
        if n:
            self.cursor = _round_up(off + n)
        return off

    def _dir(self, root: _Node) -> None:
        """write_dir of §6 with an explicit stack (deep trees must not hit the recursion limit):
        entry table, then per child its content (a subdirectory recursively), inode, name."""
        self._table(root)
        stack: List[Tuple[_Node, int]] = [(root, 0)]  # (directory, index of its next child)
        while stack:
            d, i = stack[-1]
            if i == len(d.children):
                stack.pop()
                if stack:
                    self._finish(d)
                continue
            stack[-1] = (d, i + 1)
            c = d.children[i]
            if c.type == TYPE_DIR:
                self._table(c)
                stack.append((c, 0))
                continue
            c.length = len(c.target) if c.type == TYPE_SYMLINK else c.entry.size  # type: ignore[union-attr]
            c.offset = self._alloc(c.length)
            self.items.append((c.offset, c, "data"))
            self._finish(c)

    def _table(self, d: _Node) -> None:
        d.length = DIRENT_SIZE * len(d.children)
        d.offset = self._alloc(d.length)
        self.items.append((d.offset, d, "table"))

    def _finish(self, c: _Node) -> None:
        c.inode = len(self.inodes)
        self.inodes.append(c)
        c.name_offset = self._alloc(len(c.name))
        self.items.append((c.name_offset, c, "name"))


def _size_error(plan: _Plan, max_size: int) -> InitfsError:
    files = sorted((n for n in plan.inodes if n.type in (TYPE_FILE, TYPE_EXEC)), key=lambda n: (-n.length, n.path))
    biggest = ", ".join(f"/{n.path} ({n.length} bytes)" for n in files[:3])
    return InitfsError(
        f"initfs image would be {plan.size} bytes ({plan.size / 1048576:.1f} MiB), over the limit of "
        f"{max_size} bytes ({max_size / 1048576:.1f} MiB); largest files: {biggest or 'none'}"
    )


def _copy_file(manifest: Manifest, node: _Node, out: BinaryIO) -> None:
    e = node.entry
    assert e is not None
    src = manifest.source_path(e)
    h = hashlib.sha256()
    n = 0
    try:
        with open(src, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                n += len(chunk)
                if n > e.size:
                    break
                h.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise InitfsError(f"/{e.path}: cannot read its source {src}: {exc.strerror or exc}") from None
    if n != e.size or h.hexdigest() != e.sha256:
        raise InitfsError(
            f"/{e.path}: source {src} no longer matches the manifest (size/sha256 differ); rebuild the manifest"
        )


def _emit(manifest: Manifest, bootstrap: bytes, out: BinaryIO, max_size: int, check: bool) -> int:
    entry = check_bootstrap(bootstrap) if check else bootstrap_entry(bootstrap)
    if entry == 0:
        raise InitfsError("bootstrap ELF has entry point 0 (the kernel refuses it)")
    plan = _Plan(_tree(manifest), len(bootstrap))
    if plan.size > min(max_size, MAX_U32):
        raise _size_error(plan, min(max_size, MAX_U32))
    out.seek(plan.bootstrap_offset)
    out.write(bootstrap)
    for off, node, what in plan.items:
        if what == "table":
            if node.children:
                out.seek(off)
                out.write(b"".join(_DIRENT.pack(c.inode, len(c.name), c.name_offset) for c in node.children))
        elif what == "name":
            out.seek(off)
            out.write(node.name)
        elif node.type == TYPE_SYMLINK:
            out.seek(off)
            out.write(node.target)
        elif node.length:
            out.seek(off)
            _copy_file(manifest, node, out)
        else:
            _copy_file(manifest, node, io.BytesIO())  # still verify that the empty source is empty
    out.seek(plan.inode_table_offset)
    out.write(b"".join(_INODE.pack(n.type, n.length, n.offset) for n in plan.inodes))
    header = InitfsHeader(plan.inode_table_offset, plan.size, plan.inodes[-1].inode, len(plan.inodes), entry)
    out.seek(0)
    out.write(header.pack())
    out.truncate(plan.size)
    return plan.size


def build_initfs(manifest: Manifest, bootstrap: bytes, *, max_size: int = DEFAULT_MAX_SIZE,
                 check_bootstrap_layout: bool = True) -> bytes:
    """The archive as bytes (for tests and small images)."""
    buf = io.BytesIO()
    _emit(manifest, bytes(bootstrap), buf, max_size, check_bootstrap_layout)
    return buf.getvalue()


def write_initfs(manifest: Manifest, bootstrap: bytes, out_path: str, *, max_size: int = DEFAULT_MAX_SIZE,
                 check_bootstrap_layout: bool = True) -> None:
    """Write the archive to `out_path` atomically (temp file + rename; nothing left on error).
    Gaps between allocations are holes where the filesystem supports them."""
    out_dir = os.path.dirname(os.path.abspath(out_path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".initfs-", suffix=".tmp", dir=out_dir)
    except OSError as exc:
        raise InitfsError(f"cannot create output in {out_dir}: {exc.strerror or exc}") from None
    ok = False
    try:
        with os.fdopen(fd, "w+b") as f:
            _emit(manifest, bytes(bootstrap), f, max_size, check_bootstrap_layout)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
        ok = True
    except OSError as exc:
        raise InitfsError(f"cannot write {out_path}: {exc.strerror or exc}") from None
    finally:
        if not ok:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# =================================================================================================
# Reader
# =================================================================================================
@dataclass(frozen=True)
class Inode:
    number: int
    type: int
    length: int
    offset: int

    @property
    def kind(self) -> str:
        return TYPE_NAMES.get(self.type, "unknown")


@dataclass(frozen=True)
class InitfsStat:
    inode: int
    type: int  # 0 file, 1 executable, 2 directory, 3 symlink
    mode: int  # st_mode as the initfs scheme reports it (§5)
    size: int  # §9: file/symlink = length; directory = sum(name_len + 1)
    length: int  # raw inode length
    offset: int  # absolute offset of the inode's data

    @property
    def kind(self) -> str:
        return {TYPE_FILE: FILE, TYPE_EXEC: FILE, TYPE_DIR: DIR, TYPE_SYMLINK: SYMLINK}.get(self.type, "unknown")

    @property
    def executable(self) -> bool:
        return self.type == TYPE_EXEC


_MODES = {
    TYPE_FILE: _stat.S_IFREG | 0o444,
    TYPE_EXEC: _stat.S_IFREG | 0o555,
    TYPE_DIR: _stat.S_IFDIR | 0o555,
    TYPE_SYMLINK: _stat.S_IFLNK | 0o777,
}


def _split(path: str) -> List[str]:
    return [p for p in path.split("/") if p]


class InitfsReader:
    """Read a revision-C archive held in memory, applying the §9 validity checks.

    The archive is `data[:initfs_size]`; bytes after it (e.g. page padding in RAM) are ignored.
    """

    def __init__(self, data: bytes, *, name: str = "initfs image") -> None:
        data = bytes(data)
        self.name = name
        n = len(data)
        if n < HEADER_SIZE:
            raise InitfsError(f"{name}: {n} bytes, shorter than the {HEADER_SIZE}-byte initfs header")
        if data[:8] != MAGIC:
            raise InitfsError(f"{name}: bad magic {data[:8]!r}, expected {MAGIC!r}")
        h = InitfsHeader.unpack(data)
        if h.page_size != PAGE_SIZE and n >= 0x2C:
            (ab_page,) = struct.unpack_from("<H", data, 0x2A)
            (ab_size,) = struct.unpack_from("<Q", data, 0x22)
            if ab_page == PAGE_SIZE and ab_size == n:
                raise InitfsError(
                    f"{name}: this is an older revision A/B archive (44-byte header); only revision C is supported"
                )
        if h.page_size != PAGE_SIZE:
            raise InitfsError(f"{name}: page_size is {h.page_size}, must be {PAGE_SIZE}")
        if h.initfs_size > n:
            raise InitfsError(f"{name}: header says initfs_size {h.initfs_size} but only {n} bytes are present")
        if h.initfs_size < HEADER_SIZE:
            raise InitfsError(f"{name}: initfs_size {h.initfs_size} is smaller than the header")
        if h.initfs_size > MAX_U32:
            raise InitfsError(f"{name}: initfs_size {h.initfs_size} is 4 GiB or more")
        if h.inode_table_offset < HEADER_SIZE:
            raise InitfsError(f"{name}: inode_table_offset {h.inode_table_offset} lies inside the header")
        end = h.inode_table_offset + INODE_SIZE * h.inode_count
        if end > h.initfs_size:
            raise InitfsError(
                f"{name}: inode table ({h.inode_count} inodes at {h.inode_table_offset:#x}) ends at {end:#x}, "
                f"past initfs_size {h.initfs_size:#x}"
            )
        if h.root_inode >= h.inode_count:
            raise InitfsError(f"{name}: root_inode {h.root_inode} >= inode_count {h.inode_count}")
        self.header = h
        self.data = data[: h.initfs_size]
        root = self.inode(h.root_inode)
        if root.type != TYPE_DIR:
            raise InitfsError(f"{name}: root inode {h.root_inode} is a {root.kind}, not a directory")

    # --- low level ---------------------------------------------------------------------------
    def inode(self, number: int) -> Inode:
        if not 0 <= number < self.header.inode_count:
            raise InitfsError(f"{self.name}: inode {number} out of range (inode_count {self.header.inode_count})")
        t, length, off = _INODE.unpack_from(self.data, self.header.inode_table_offset + INODE_SIZE * number)
        if t not in TYPE_NAMES:
            raise InitfsError(f"{self.name}: inode {number} has unknown type {t}")
        if off + length > len(self.data):
            raise InitfsError(
                f"{self.name}: inode {number} data ({length} bytes at {off:#x}) runs past initfs_size {len(self.data):#x}"
            )
        if length and off < PAGE_SIZE:  # page 0 is the header and zeros; the writer starts at the bootstrap page
            raise InitfsError(f"{self.name}: inode {number} data ({length} bytes at {off:#x}) overlaps the header page")
        if t == TYPE_DIR and length % DIRENT_SIZE:
            raise InitfsError(f"{self.name}: directory inode {number} has length {length}, not a multiple of {DIRENT_SIZE}")
        return Inode(number, t, length, off)

    def inode_data(self, ino: Inode) -> bytes:
        return self.data[ino.offset: ino.offset + ino.length]

    def entries(self, ino: Inode) -> List[Tuple[str, int]]:
        """(name, inode number) of a directory, in table order."""
        if ino.type != TYPE_DIR:
            raise InitfsError(f"{self.name}: inode {ino.number} is a {ino.kind}, not a directory")
        out = []
        seen = set()
        for i in range(ino.length // DIRENT_SIZE):
            child, name_len, name_off = _DIRENT.unpack_from(self.data, ino.offset + i * DIRENT_SIZE)
            if name_off + name_len > len(self.data):
                raise InitfsError(
                    f"{self.name}: entry {i} of directory inode {ino.number}: name ({name_len} bytes at {name_off:#x}) "
                    f"runs past initfs_size"
                )
            if name_len and name_off < PAGE_SIZE:
                raise InitfsError(f"{self.name}: entry {i} of directory inode {ino.number}: name at {name_off:#x} overlaps the header page")
            raw = self.data[name_off: name_off + name_len]
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InitfsError(f"{self.name}: entry {i} of directory inode {ino.number}: name {raw!r} is not UTF-8") from None
            if name in ("", ".", "..") or "/" in name or "\0" in name:
                raise InitfsError(f"{self.name}: entry {i} of directory inode {ino.number}: invalid name {name!r}")
            if name in seen:
                raise InitfsError(f"{self.name}: directory inode {ino.number} has two entries named {name!r}")
            if child >= self.header.inode_count:
                raise InitfsError(
                    f"{self.name}: entry {name!r} of directory inode {ino.number} names inode {child}, "
                    f"but there are only {self.header.inode_count}"
                )
            seen.add(name)
            out.append((name, child))
        return out

    def _stat_of(self, ino: Inode) -> InitfsStat:
        if ino.type == TYPE_DIR:
            size = sum(len(n.encode("utf-8")) + 1 for n, _ in self.entries(ino))
        else:
            size = ino.length
        return InitfsStat(ino.number, ino.type, _MODES[ino.type], size, ino.length, ino.offset)

    def _lookup(self, path: str, follow_last: bool) -> Inode:
        parts = _split(path)
        stack = [self.inode(self.header.root_inode)]
        hops = 0
        i = 0
        while i < len(parts):
            comp = parts[i]
            if comp == ".":
                i += 1
                continue
            if comp == "..":
                if len(stack) == 1:
                    raise InitfsError(f"{path}: '..' leads above the initfs root")
                stack.pop()
                i += 1
                continue
            cur = stack[-1]
            if cur.type != TYPE_DIR:
                raise InitfsError(f"{path}: not a directory at {comp!r}")
            found = None
            for name, child in self.entries(cur):
                if name == comp:
                    found = child
                    break
            if found is None:
                raise InitfsError(f"{path}: no such file or directory in the initfs")
            node = self.inode(found)
            last = i == len(parts) - 1
            if node.type == TYPE_SYMLINK and (follow_last or not last):
                hops += 1
                if hops > SYMLINK_HOPS:
                    raise InitfsError(f"{path}: too many levels of symbolic links")
                target = self.inode_data(node).decode("utf-8", "surrogateescape")
                if target.startswith("/"):
                    del stack[1:]
                parts = _split(target) + parts[i + 1:]
                i = 0
                continue
            stack.append(node)
            i += 1
        return stack[-1]

    # --- high level ----------------------------------------------------------------------------
    def stat(self, path: str, *, follow_symlinks: bool = False) -> InitfsStat:
        """Stat a path ('' or '/' = root). A final symlink is not followed unless asked."""
        return self._stat_of(self._lookup(path, follow_symlinks))

    def exists(self, path: str) -> bool:
        try:
            self._lookup(path, False)
        except InitfsError:
            return False
        return True

    def listdir(self, path: str = "") -> List[str]:
        """Names in a directory, in table order (the writer sorts them by name bytes)."""
        return [n for n, _ in self.entries(self._lookup(path, True))]

    def read(self, path: str) -> bytes:
        """Contents of a file (symlinks are followed)."""
        ino = self._lookup(path, True)
        if ino.type not in (TYPE_FILE, TYPE_EXEC):
            raise InitfsError(f"{path}: is a {ino.kind}, not a file")
        return self.inode_data(ino)

    def readlink(self, path: str) -> str:
        ino = self._lookup(path, False)
        if ino.type != TYPE_SYMLINK:
            raise InitfsError(f"{path}: is a {ino.kind}, not a symlink")
        raw = self.inode_data(ino)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InitfsError(f"{path}: symlink target {raw!r} is not UTF-8") from None

    def walk(self) -> Iterator[Tuple[str, InitfsStat]]:
        """(path, stat) of every entry below the root, depth-first pre-order in table order.
        A directory linked more than once (a loop or a shared subtree) is an error."""
        return self._walk_dir("", self.inode(self.header.root_inode), {self.header.root_inode})

    def _walk_dir(self, prefix: str, d: Inode, seen_dirs: set) -> Iterator[Tuple[str, InitfsStat]]:
        # Explicit stack of iterators so deep trees cannot hit Python's recursion limit.
        stack = [(prefix, iter(self.entries(d)))]
        while stack:
            pfx, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                continue
            name, num = nxt
            ino = self.inode(num)
            path = f"{pfx}/{name}" if pfx else name
            yield path, self._stat_of(ino)
            if ino.type == TYPE_DIR:
                if num in seen_dirs:
                    raise InitfsError(f"{self.name}: directory inode {num} is linked more than once (at /{path})")
                seen_dirs.add(num)
                stack.append((path, iter(self.entries(ino))))

    def check(self) -> None:
        """Full consumer-side check beyond §9: every entry readable, file data page-aligned,
        bootstrap present with a non-zero entry, header padding zero."""
        if len(self.data) < BOOTSTRAP_OFFSET + 4 or self.data[BOOTSTRAP_OFFSET:BOOTSTRAP_OFFSET + 4] != b"\x7fELF":
            raise InitfsError(f"{self.name}: no bootstrap ELF at offset {BOOTSTRAP_OFFSET:#x}")
        if self.header.bootstrap_entry == 0:
            raise InitfsError(f"{self.name}: bootstrap_entry is 0 (the kernel refuses to start it)")
        if any(self.data[HEADER_SIZE:PAGE_SIZE]):
            raise InitfsError(f"{self.name}: header page has non-zero bytes after the {HEADER_SIZE}-byte header")
        for path, st in self.walk():
            if st.type in (TYPE_FILE, TYPE_EXEC) and st.length and st.offset % PAGE_SIZE:
                raise InitfsError(f"{self.name}: /{path}: file data at {st.offset:#x} is not page-aligned (mmap needs it)")


def open_initfs(path: str) -> InitfsReader:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InitfsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data[:4] == qcow2.MAGIC:
        raise InitfsError(
            f"{path} is a qcow2 disk image, not an initfs: list the initfs inside it with "
            f"python3 -m redox_tools.image.inspect {path} --initfs"
        )
    return InitfsReader(data, name=path)


# =================================================================================================
# CLI
# =================================================================================================
def _ls_line(path: str, st: InitfsStat, reader: InitfsReader, full: str) -> str:
    line = f"{_stat.filemode(st.mode)} {st.size:>10} {st.inode:>5} {path}"
    if st.type == TYPE_SYMLINK:
        line += f" -> {reader.readlink(full)}"
    return line


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.formats.initfs", description="Redox initfs (RedoxFtw rev C) tool")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create", help="write an initfs from a manifest and a bootstrap ELF")
    c.add_argument("--manifest", required=True)
    c.add_argument("--bootstrap", required=True)
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE, help="size limit in bytes (default 64 MiB)")
    c.add_argument("--no-check-bootstrap", action="store_true", help="skip the bootstrap segment layout checks")
    ls = sub.add_parser("ls", help="list the archive (whole tree, or one directory)")
    ls.add_argument("image")
    ls.add_argument("path", nargs="?")
    ls.add_argument("-l", action="store_true", help="long listing: mode, size, inode, path[ -> target]")
    cat = sub.add_parser("cat", help="write a file's contents to stdout")
    cat.add_argument("image")
    cat.add_argument("path")
    info = sub.add_parser("info", help="print the header and run the full check")
    info.add_argument("image")
    args = ap.parse_args(argv)

    if args.cmd == "create":
        manifest = Manifest.load(args.manifest)
        try:
            with open(args.bootstrap, "rb") as f:
                boot = f.read()
        except OSError as exc:
            raise InitfsError(f"cannot read bootstrap {args.bootstrap}: {exc.strerror or exc}") from None
        write_initfs(manifest, boot, args.output, max_size=args.max_size,
                     check_bootstrap_layout=not args.no_check_bootstrap)
        return 0
    reader = open_initfs(args.image)
    if args.cmd == "ls":
        if args.path is None:
            for path, st in reader.walk():
                print(_ls_line(path, st, reader, path) if args.l else path)
        else:
            base = "/".join(_split(args.path))
            for name in reader.listdir(args.path):
                full = f"{base}/{name}" if base else name
                print(_ls_line(name, reader.stat(full), reader, full) if args.l else name)
    elif args.cmd == "cat":
        sys.stdout.buffer.write(reader.read(args.path))
        sys.stdout.buffer.flush()
    elif args.cmd == "info":
        h = reader.header
        print(f"initfs_size        {h.initfs_size}")
        print(f"inode_table_offset {h.inode_table_offset:#x}")
        print(f"inode_count        {h.inode_count}")
        print(f"root_inode         {h.root_inode}")
        print(f"bootstrap_entry    {h.bootstrap_entry:#x}")
        reader.check()
        print("check              ok")
    return 0


if __name__ == "__main__":
    run_main(main)
