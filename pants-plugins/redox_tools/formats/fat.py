"""FAT12/16/32 writer and reader for EFI system partitions (docs/formats/disk-image.md §5.2).

Writer: `write_fat(out, offset=..., size=..., files={...})` formats a FAT volume of `size` bytes
at byte `offset` of an open, seekable binary file (mode r+b / w+b). The region must read as
zeros already (a freshly truncated, sparse file): only sectors holding non-zero bytes are
written, so holes stay holes. Pass `assume_zeroed=False` to write every metadata sector.

* FAT type and cluster size follow the rules of the fatfs crate that upstream's installer
  uses (below 4 MiB FAT12-sized clusters, below 512 MiB FAT16 rules, else FAT32 rules; then
  the first of FAT32, FAT16, FAT12 whose cluster-count range fits). The default 1 MiB ESP
  gives the exact boot sector of §5.2/§11 (with volume_id=0x12345678).
* Names are stored as upper-case 8.3 entries when they upper-case into a valid 8.3 name;
  otherwise a VFAT long-name entry set plus a derived `BASIS~N` alias is written (lfn=True).
* Every timestamp is the same fixed value: 1980-01-01 00:00:00 by default, or
  `source_date_epoch` (UTC, clamped to the FAT range 1980..2107).
* Volume id: `volume_id` or the first 4 bytes of a sha256 over the inputs.
* Layout is deterministic: directories and files are allocated contiguously in sorted
  pre-order.

Reader: `FatReader(fh, offset=0, size=None)` with `listdir`, `stat`, `read`, `walk`. On any
malformed volume it raises `FatError` only.

CLI:
    python -m redox_tools.formats.fat create -o ESP.img --size 1M [--volume-id HEX] [--label L]
        [--source-date-epoch N] DEST=SRC ...
    python -m redox_tools.formats.fat ls IMG [--offset N]
    python -m redox_tools.formats.fat cat IMG PATH [--offset N]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import struct
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from redox_tools import qcow2
from redox_tools.errors import FormatError, run_main
from redox_tools.safeio import atomic_output

SECTOR = 512
KiB = 1024
MiB = 1024 * 1024
GiB = 1024 * MiB

FAT12, FAT16, FAT32 = 12, 16, 32
# Cluster-count ranges that define the FAT type (Microsoft FAT specification).
MAX_CLUSTERS = {FAT12: 4084, FAT16: 65524, FAT32: 0x0FFFFFF4}
MIN_CLUSTERS = {FAT12: 1, FAT16: 4085, FAT32: 65525}
EOC = {FAT12: 0xFFF, FAT16: 0xFFFF, FAT32: 0x0FFFFFFF}
EOC_MIN = {FAT12: 0xFF8, FAT16: 0xFFF8, FAT32: 0x0FFFFFF8}
BAD = {FAT12: 0xFF7, FAT16: 0xFFF7, FAT32: 0x0FFFFFF7}

ATTR_READ_ONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LFN = 0x0F

MEDIA = 0xF8
SECTORS_PER_TRACK = 32
HEADS = 64
DEFAULT_OEM = b"MSWIN4.1"
DEFAULT_LABEL = "NO NAME"
FAT_EPOCH = 315532800  # 1980-01-01T00:00:00Z
FAT_LAST = 4354819198  # 2107-12-31T23:59:58Z

SHORT_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'()-@^_`{}~")
LFN_FORBIDDEN = frozenset('"*/:<>?\\|')
# Bytes no short name may hold (dosfstools' bad_name(), plus '.', which only "." and ".." use).
SHORT_FORBIDDEN = frozenset(b'"*/:<>?\\|.') | frozenset(range(0x20)) | {0x7F}
# Deepest path (in components) the writer writes and the reader reads: one limit for both.
MAX_DEPTH = 64

FileSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]


class FatError(FormatError):
    """A FAT volume that cannot be written as asked, or a malformed one being read."""


# --------------------------------------------------------------------------------------------
# Boot code: the classic "not a bootable disk" stub mkfs.fat places in the boot sector.
# Hand-assembled (16-bit real mode, loaded at 0x7C00). `msg` is the absolute address of the
# message, i.e. 0x7C00 + offset of the code + len(code).
def _boot_stub(code_offset: int) -> bytes:
    code_len = 29
    msg = 0x7C00 + code_offset + code_len
    code = b"".join(
        [
            b"\x0e",  # push cs
            b"\x1f",  # pop ds
            b"\xbe" + struct.pack("<H", msg),  # mov si, msg
            b"\xac",  # next: lodsb
            b"\x22\xc0",  # and al, al
            b"\x74\x0b",  # jz key (+11)
            b"\x56",  # push si
            b"\xb4\x0e",  # mov ah, 0x0e   (teletype output)
            b"\xbb\x07\x00",  # mov bx, 0x0007
            b"\xcd\x10",  # int 0x10
            b"\x5e",  # pop si
            b"\xeb\xf0",  # jmp next (-16)
            b"\x32\xe4",  # key: xor ah, ah
            b"\xcd\x16",  # int 0x16        (wait for a key)
            b"\xcd\x19",  # int 0x19        (reboot via bootstrap loader)
            b"\xeb\xfe",  # jmp $
        ]
    )
    assert len(code) == code_len
    message = (
        b"This is not a bootable disk.  Please insert a bootable floppy and\r\n"
        b"press any key to try again ... \r\n\x00"
    )
    return code + message


# --------------------------------------------------------------------------------------------
# Geometry


@dataclass(frozen=True)
class FatGeometry:
    fat_type: int
    total_sectors: int
    sectors_per_cluster: int
    reserved_sectors: int
    num_fats: int
    root_entries: int  # 0 on FAT32
    sectors_per_fat: int
    bytes_per_sector: int = SECTOR
    root_cluster: int = 2  # FAT32 only

    @property
    def root_dir_sectors(self) -> int:
        return (self.root_entries * 32 + self.bytes_per_sector - 1) // self.bytes_per_sector

    @property
    def fat_start(self) -> int:
        return self.reserved_sectors

    @property
    def root_dir_start(self) -> int:
        return self.reserved_sectors + self.num_fats * self.sectors_per_fat

    @property
    def data_start(self) -> int:
        return self.root_dir_start + self.root_dir_sectors

    @property
    def cluster_count(self) -> int:
        return (self.total_sectors - self.data_start) // self.sectors_per_cluster

    @property
    def cluster_bytes(self) -> int:
        return self.sectors_per_cluster * self.bytes_per_sector

    @property
    def size(self) -> int:
        return self.total_sectors * self.bytes_per_sector

    def cluster_offset(self, cluster: int) -> int:
        """Byte offset of a data cluster from the start of the volume."""
        return (self.data_start + (cluster - 2) * self.sectors_per_cluster) * self.bytes_per_sector

    def fat_entries_capacity(self) -> int:
        return self.sectors_per_fat * self.bytes_per_sector * 8 // self.fat_type


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def default_cluster_bytes(total_bytes: int, fat_type: Optional[int] = None) -> int:
    """Cluster size by fatfs' rules for a volume of `total_bytes` (512 B .. 32 KiB)."""
    if fat_type is None:
        fat_type = FAT12 if total_bytes < 4 * MiB else FAT16 if total_bytes < 512 * MiB else FAT32
    if fat_type == FAT12:
        b = _next_pow2(total_bytes) // MiB * 512
    elif fat_type == FAT16:
        if total_bytes <= 16 * MiB:
            b = KiB
        elif total_bytes <= 128 * MiB:
            b = 2 * KiB
        else:
            b = _next_pow2(total_bytes) // (64 * MiB) * KiB
    else:
        if total_bytes <= 260 * MiB:
            b = 512
        elif total_bytes <= 8 * GiB:
            b = 4 * KiB
        else:
            b = _next_pow2(total_bytes) // (2 * GiB) * KiB
    return min(max(b, SECTOR), 32 * KiB)


def _fat_bytes(fat_type: int, entries: int) -> int:
    return (entries * fat_type + 7) // 8


def _layout(total_sectors: int, spc: int, fat_type: int, num_fats: int, root_entries: int) -> Optional[FatGeometry]:
    reserved = 32 if fat_type == FAT32 else 1
    root_entries = 0 if fat_type == FAT32 else root_entries
    root_sectors = (root_entries * 32 + SECTOR - 1) // SECTOR
    avail = total_sectors - reserved - root_sectors
    if avail <= num_fats + spc:
        return None
    # Smallest FAT that covers every cluster that remains after the FATs are placed.
    spf = 1
    for _ in range(64):
        clusters = (avail - num_fats * spf) // spc
        if clusters < 1:
            return None
        need = (_fat_bytes(fat_type, clusters + 2) + SECTOR - 1) // SECTOR
        if need <= spf:
            break
        spf = need
    while spf > 1:
        clusters = (avail - num_fats * (spf - 1)) // spc
        if (_fat_bytes(fat_type, clusters + 2) + SECTOR - 1) // SECTOR <= spf - 1:
            spf -= 1
        else:
            break
    geo = FatGeometry(fat_type, total_sectors, spc, reserved, num_fats, root_entries, spf)
    n = geo.cluster_count
    if not MIN_CLUSTERS[fat_type] <= n <= MAX_CLUSTERS[fat_type]:
        return None
    return geo


def fat_geometry(
    size: int,
    *,
    fat_type: Optional[int] = None,
    cluster_bytes: Optional[int] = None,
    num_fats: int = 2,
    root_entries: int = 512,
) -> FatGeometry:
    """The volume layout `write_fat` uses for `size` bytes."""
    if size % SECTOR or size <= 0:
        raise FatError(f"FAT volume size {size} is not a positive multiple of {SECTOR} bytes")
    total = size // SECTOR
    if total > 0xFFFFFFFF:
        raise FatError(f"FAT volume size {size} exceeds the 2^32-sector limit")
    if fat_type not in (None, FAT12, FAT16, FAT32):
        raise FatError(f"unknown FAT type {fat_type!r} (expected 12, 16 or 32)")
    if cluster_bytes is None:
        cluster_bytes = default_cluster_bytes(size, fat_type)
    if cluster_bytes % SECTOR or cluster_bytes > 64 * KiB or cluster_bytes & (cluster_bytes - 1):
        raise FatError(f"cluster size {cluster_bytes} must be a power of two between 512 and 65536")
    if not 1 <= num_fats <= 255:
        raise FatError(f"number of FATs {num_fats} must be 1..255")
    if not 16 <= root_entries <= 0xFFF0 or root_entries % 16:
        raise FatError(f"root directory entries {root_entries} must be a multiple of 16 in 16..65520")
    spc = cluster_bytes // SECTOR
    types = [fat_type] if fat_type is not None else [FAT32, FAT16, FAT12]
    for t in types:
        geo = _layout(total, spc, t, num_fats, root_entries)
        if geo is not None:
            return geo
    want = f"FAT{fat_type}" if fat_type else "any FAT type"
    raise FatError(
        f"a {size}-byte volume with {cluster_bytes}-byte clusters does not fit {want} "
        f"(too small or cluster count out of range)"
    )


# --------------------------------------------------------------------------------------------
# Names


def _short_name_of(name: str) -> Optional[bytes]:
    """The 11-byte 8.3 name if `name` upper-cases into a valid 8.3 name, else None."""
    if name in (".", "..") or not name.isascii():
        return None
    up = name.upper()
    base, dot, ext = up.partition(".")
    if not base or len(base) > 8 or len(ext) > 3 or "." in ext or (dot and not ext):
        return None
    raw = (base + ext).encode("ascii")
    if any(c not in SHORT_CHARS for c in raw):
        return None
    out = base.encode().ljust(8, b" ") + ext.encode().ljust(3, b" ")
    if out[0] == 0xE5:
        out = b"\x05" + out[1:]
    return out


def _check_long_name(name: str, path: str) -> None:
    if name in (".", ".."):
        raise FatError(f"{path!r}: '.' and '..' cannot be file names")
    if name.endswith((".", " ")):
        raise FatError(f"{path!r}: FAT names may not end in a dot or space")
    bad = [c for c in name if c in LFN_FORBIDDEN or ord(c) < 0x20]
    if bad:
        raise FatError(f"{path!r}: character {bad[0]!r} is not allowed in FAT names")
    try:  # a non-UTF-8 file name arrives as lone surrogates (surrogateescape)
        units = name.encode("utf-16-le")
    except UnicodeEncodeError:
        raise FatError(f"{path!r}: name is not valid Unicode (a non-UTF-8 file name?)") from None
    if len(units) // 2 > 255:
        raise FatError(f"{path!r}: name longer than 255 UTF-16 units")


def _basis_name(name: str) -> Tuple[str, str]:
    def clean(s: str) -> str:
        out = []
        for c in s.upper():
            if c == " ":
                continue
            b = c.encode("ascii", "replace") if c.isascii() else b"_"
            out.append(c if len(b) == 1 and b[0] in SHORT_CHARS else "_")
        return "".join(out)

    stripped = name.lstrip(".")
    if "." in stripped:
        base, ext = stripped.rsplit(".", 1)
    else:
        base, ext = stripped, ""
    base = clean(base.replace(".", "")) or "_"
    return base, clean(ext)[:3]


def lfn_checksum(short: bytes) -> int:
    s = 0
    for b in short:
        s = (((s & 1) << 7) + (s >> 1) + b) & 0xFF
    return s


def _lfn_entries(name: str, short: bytes) -> List[bytes]:
    units = name.encode("utf-16-le")
    n = len(units) // 2
    if n % 13:
        units += b"\x00\x00"
        n += 1
        pad = (13 - n % 13) % 13
        units += b"\xff\xff" * pad
    chunks = [units[i : i + 26] for i in range(0, len(units), 26)]
    csum = lfn_checksum(short)
    entries = []
    for i, ch in enumerate(chunks):
        seq = i + 1
        if i == len(chunks) - 1:
            seq |= 0x40
        entries.append(
            bytes([seq]) + ch[0:10] + bytes([ATTR_LFN, 0, csum]) + ch[10:22] + b"\x00\x00" + ch[22:26]
        )
    return list(reversed(entries))


# --------------------------------------------------------------------------------------------
# Writer


@dataclass
class _Node:
    name: str
    path: str
    is_dir: bool
    source: Optional[FileSource] = None
    size: int = 0
    children: Dict[str, "_Node"] = field(default_factory=dict)
    short: bytes = b""
    lfn: List[bytes] = field(default_factory=list)
    first_cluster: int = 0
    clusters: int = 0


def _fat_datetime(epoch: Optional[int]) -> Tuple[int, int, int]:
    """(date, time, tenths) for a POSIX time, clamped to FAT's range. None = 1980-01-01."""
    t = FAT_EPOCH if epoch is None else min(max(int(epoch), FAT_EPOCH), FAT_LAST)
    tm = time.gmtime(t)
    date = ((tm.tm_year - 1980) << 9) | (tm.tm_mon << 5) | tm.tm_mday
    tod = (tm.tm_hour << 11) | (tm.tm_min << 5) | (min(tm.tm_sec, 59) // 2)
    return date, tod, (min(tm.tm_sec, 59) % 2) * 100


def _source_size(src: FileSource, path: str) -> int:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return len(src)
    try:
        st = os.stat(src)
    except OSError as e:
        raise FatError(f"{path!r}: cannot read source {os.fspath(src)!r}: {e.strerror}") from None
    if not os.path.isfile(src):
        raise FatError(f"{path!r}: source {os.fspath(src)!r} is not a regular file")
    return st.st_size


def _build_tree(files: Mapping[str, FileSource], lfn: bool) -> _Node:
    root = _Node("", "", True)
    for path in sorted(files):
        parts = [p for p in path.replace("\\", "/").split("/") if p]
        if not parts:
            raise FatError(f"{path!r}: empty file path")
        if len(parts) > MAX_DEPTH:
            raise FatError(f"{path!r}: {len(parts)} levels deep; the limit is {MAX_DEPTH} (what is written must read back)")
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            _check_long_name(part, path)
            key = part.upper()
            child = node.children.get(key)
            sub = "/".join(parts[: i + 1])
            if child is None:
                child = _Node(part, sub, not last)
                if last:
                    child.source = files[path]
                    child.size = _source_size(child.source, path)
                node.children[key] = child
            elif last or not child.is_dir:
                raise FatError(
                    f"{path!r} collides with {child.path!r} (FAT names are case-insensitive; "
                    f"a path cannot be both a file and a directory)"
                )
            node = child
    _assign_names(root, lfn)
    return root


def _assign_names(d: _Node, lfn: bool) -> None:
    taken = set()
    kids = [d.children[k] for k in sorted(d.children)]
    for c in kids:  # 8.3-valid names first: they own their short names
        s = _short_name_of(c.name)
        if s is not None:
            c.short = s
            taken.add(s)
    for c in kids:
        if not c.short:
            if not lfn:
                raise FatError(f"{c.path!r}: {c.name!r} is not an 8.3 name and long names are disabled")
            base, ext = _basis_name(c.name)
            for n in range(1, 1000000):
                tail = f"~{n}"
                cand = (base[: 8 - len(tail)] + tail).encode().ljust(8, b" ") + ext.encode().ljust(3, b" ")
                if cand not in taken:
                    break
            else:  # pragma: no cover - a million aliases in one directory
                raise FatError(f"{c.path!r}: no free short alias")
            c.short = cand
            c.lfn = _lfn_entries(c.name, cand)
            taken.add(cand)
        if c.is_dir:
            _assign_names(c, lfn)


def _dir_entry_count(d: _Node, is_root: bool) -> int:
    n = 0 if is_root else 2
    for c in d.children.values():
        n += 1 + len(c.lfn)
    return n


def _dirent(short: bytes, attr: int, cluster: int, size: int, stamp: Tuple[int, int, int]) -> bytes:
    date, tod, tenths = stamp
    return struct.pack(
        "<11sBBBHHHHHHHI", short, attr, 0, tenths, tod, date, date, cluster >> 16, tod, date, cluster & 0xFFFF, size
    )


@dataclass(frozen=True)
class FatPlan:
    geometry: FatGeometry
    clusters_used: int
    bytes_used: int


def _walk_nodes(d: _Node) -> Iterator[_Node]:
    for k in sorted(d.children):
        c = d.children[k]
        yield c
        if c.is_dir:
            yield from _walk_nodes(c)


def _allocate(root: _Node, geo: FatGeometry, root_extra: int = 0) -> int:
    """Assign contiguous clusters in sorted pre-order; return the next free cluster.
    `root_extra`: entries the root holds besides the files (the volume label)."""
    cb = geo.cluster_bytes
    nxt = 2

    def alloc(node: _Node, nbytes: int) -> None:
        nonlocal nxt
        node.clusters = (nbytes + cb - 1) // cb
        node.first_cluster = nxt if node.clusters else 0
        nxt += node.clusters

    def visit(d: _Node, is_root: bool) -> None:
        if not is_root or geo.fat_type == FAT32:
            alloc(d, max(1, _dir_entry_count(d, is_root) + (root_extra if is_root else 0)) * 32)
        for k in sorted(d.children):
            c = d.children[k]
            if c.is_dir:
                visit(c, False)
            else:
                alloc(c, c.size)

    root_n = _dir_entry_count(root, True) + root_extra
    if geo.fat_type != FAT32 and root_n > geo.root_entries:
        raise FatError(f"the root directory needs {root_n} entries but holds {geo.root_entries}")
    visit(root, True)
    for n in _walk_nodes(root):
        if n.is_dir and _dir_entry_count(n, False) > 65536:
            raise FatError(f"directory {n.path!r} has more than 65536 entries")
    return nxt


def plan_fat(
    size: int, files: Mapping[str, FileSource], *, fat_type: Optional[int] = None, lfn: bool = True, label: str = DEFAULT_LABEL
) -> FatPlan:
    """Check that `files` fit a `size`-byte volume (FatError naming the shortfall if not)."""
    geo = fat_geometry(size, fat_type=fat_type)
    root = _build_tree(files, lfn)
    nxt = _allocate(root, geo, _label_extra(label))
    used = nxt - 2
    if used > geo.cluster_count:
        total = sum(n.size for n in _walk_nodes(root) if not n.is_dir)
        raise FatError(
            f"the files ({total} bytes in {len(files)} file(s)) need {used} clusters of {geo.cluster_bytes} bytes, "
            f"but the {size // MiB if size % MiB == 0 else size}{' MiB' if size % MiB == 0 else '-byte'} "
            f"FAT{geo.fat_type} volume has only {geo.cluster_count}"
        )
    return FatPlan(geo, used, used * geo.cluster_bytes)


def _write_nonzero(out: BinaryIO, offset: int, data: bytes, assume_zeroed: bool) -> None:
    """Write `data` at `offset`, skipping all-zero 512-byte sectors when the target is zeroed."""
    if not assume_zeroed:
        out.seek(offset)
        out.write(data)
        return
    mv = memoryview(data)
    n = len(data)
    zero = bytes(SECTOR)
    i = 0
    while i < n:
        while i < n and mv[i : i + SECTOR] == zero[: min(SECTOR, n - i)]:
            i += SECTOR
        if i >= n:
            break
        j = i
        while j < n and mv[j : j + SECTOR] != zero[: min(SECTOR, n - j)]:
            j += SECTOR
        j = min(j, n)
        out.seek(offset + i)
        out.write(mv[i:j])
        i = j


def _hash_inputs(root: _Node, size: int, label: str, epoch: Optional[int]) -> bytes:
    # The label is frozen (it predates the move to redox_tools.formats): changing it changes every
    # derived volume id, and so every image's bytes.
    h = hashlib.sha256(b"redox_tools.fat v1\0")
    h.update(f"{size}\0{label}\0{epoch}\0".encode())
    for n in _walk_nodes(root):
        h.update(n.path.encode("utf-8", "surrogatepass") + b"\0")
        if not n.is_dir:
            h.update(b"%d\0" % n.size)
            for chunk in _iter_source(n):
                h.update(chunk)
    return h.digest()


def _iter_source(n: _Node, chunk: int = 1 << 20) -> Iterator[bytes]:
    src = n.source
    if isinstance(src, (bytes, bytearray, memoryview)):
        if len(src):
            yield bytes(src)
        return
    assert src is not None
    got = 0
    try:
        with open(src, "rb") as f:
            while got < n.size:
                b = f.read(min(chunk, n.size - got))
                if not b:
                    break
                got += len(b)
                yield b
    except OSError as e:
        raise FatError(f"{n.path!r}: cannot read source {os.fspath(src)!r}: {e.strerror}") from None
    if got != n.size:
        raise FatError(f"{n.path!r}: source {os.fspath(src)!r} changed size while being written")


def _label_extra(label: str) -> int:
    return 0 if _label_bytes(label) == _label_bytes(DEFAULT_LABEL) else 1


def _label_bytes(label: str) -> bytes:
    try:
        raw = label.upper().encode("ascii")
    except UnicodeEncodeError:
        raise FatError(f"volume label {label!r} must be ASCII") from None
    if len(raw) > 11 or any(c not in SHORT_CHARS and c != 0x20 for c in raw):
        raise FatError(f"volume label {label!r}: at most 11 characters from A-Z 0-9 space and !#$%&'()-@^_`{{}}~")
    return raw.ljust(11, b" ")


def boot_sector(geo: FatGeometry, *, volume_id: int, label: bytes, oem: bytes = DEFAULT_OEM, hidden_sectors: int = 0) -> bytes:
    """The 512-byte boot sector (BPB + boot stub) for `geo`."""
    bs = bytearray(SECTOR)
    total16 = geo.total_sectors if geo.total_sectors < 0x10000 and geo.fat_type != FAT32 else 0
    total32 = 0 if total16 else geo.total_sectors
    struct.pack_into(
        "<3s8sHBHBHHBHHHII",
        bs,
        0,
        b"\xeb\x58\x90" if geo.fat_type == FAT32 else b"\xeb\x3c\x90",
        oem.ljust(8, b" ")[:8],
        geo.bytes_per_sector,
        geo.sectors_per_cluster,
        geo.reserved_sectors,
        geo.num_fats,
        geo.root_entries,
        total16,
        MEDIA,
        0 if geo.fat_type == FAT32 else geo.sectors_per_fat,
        SECTORS_PER_TRACK,
        HEADS,
        hidden_sectors,
        total32,
    )
    fstype = b"FAT%d   " % geo.fat_type
    if geo.fat_type == FAT32:
        struct.pack_into("<IHHIHH12s", bs, 36, geo.sectors_per_fat, 0, 0, geo.root_cluster, 1, 6, b"")
        ext = 64
    else:
        ext = 36
    struct.pack_into("<BBBI11s8s", bs, ext, 0x80 if geo.fat_type == FAT32 else 0, 0, 0x29, volume_id, label, fstype)
    stub = _boot_stub(ext + 26)
    bs[ext + 26 : ext + 26 + len(stub)] = stub
    bs[510:512] = b"\x55\xaa"
    return bytes(bs)


def _fsinfo(free: int, next_free: int) -> bytes:
    s = bytearray(SECTOR)
    struct.pack_into("<I", s, 0, 0x41615252)
    struct.pack_into("<IIII", s, 484, 0x61417272, free, next_free, 0)
    struct.pack_into("<I", s, 508, 0xAA550000)
    return bytes(s)


def _encode_fat(geo: FatGeometry, nodes: Sequence[_Node], root_first: int, root_clusters: int) -> bytes:
    t = geo.fat_type
    cap = geo.fat_entries_capacity()
    eoc = EOC[t]
    ent = array("I", bytes(4 * cap)) if t != FAT16 else array("H", bytes(2 * cap))
    ent[0] = (0x0FFFFF00 if t == FAT32 else 0xFFFF00 & EOC[t]) | MEDIA
    ent[1] = eoc
    chains = [(n.first_cluster, n.clusters) for n in nodes if n.clusters]
    if root_clusters:
        chains.append((root_first, root_clusters))
    for first, count in chains:
        if count > 1:
            ent[first : first + count - 1] = array(ent.typecode, range(first + 1, first + count))
        ent[first + count - 1] = eoc
    # Entries that exist in the FAT sectors but past the last cluster are marked end-of-chain,
    # as upstream's formatter does, so nothing ever allocates them.
    for c in range(geo.cluster_count + 2, cap):
        ent[c] = eoc
    if t == FAT32:
        return ent.tobytes() if sys.byteorder == "little" else _swap(ent)
    if t == FAT16:
        return ent.tobytes() if sys.byteorder == "little" else _swap(ent)
    out = bytearray(geo.sectors_per_fat * SECTOR)
    for i in range(0, cap - 1, 2):
        a, b = ent[i], ent[i + 1]
        if a or b:
            j = i * 3 // 2
            out[j] = a & 0xFF
            out[j + 1] = ((a >> 8) & 0x0F) | ((b & 0x0F) << 4)
            out[j + 2] = b >> 4
    if cap % 2:
        a = ent[cap - 1]
        j = (cap - 1) * 3 // 2
        out[j] = a & 0xFF
        out[j + 1] = (out[j + 1] & 0xF0) | ((a >> 8) & 0x0F)
    return bytes(out)


def _swap(a: array) -> bytes:  # pragma: no cover - big-endian hosts only
    b = array(a.typecode, a)
    b.byteswap()
    return b.tobytes()


def _dir_bytes(d: _Node, parent_cluster: int, is_root: bool, stamp: Tuple[int, int, int], label_entry: Optional[bytes]) -> bytes:
    parts = []
    if is_root and label_entry is not None:
        parts.append(_dirent(label_entry, ATTR_VOLUME_ID, 0, 0, stamp))
    if not is_root:
        parts.append(_dirent(b".          ", ATTR_DIRECTORY, d.first_cluster, 0, stamp))
        parts.append(_dirent(b"..         ", ATTR_DIRECTORY, parent_cluster, 0, stamp))
    for k in sorted(d.children):
        c = d.children[k]
        parts.extend(c.lfn)
        attr = ATTR_DIRECTORY if c.is_dir else ATTR_ARCHIVE
        parts.append(_dirent(c.short, attr, c.first_cluster, 0 if c.is_dir else c.size, stamp))
    return b"".join(parts)


def write_fat(
    out: BinaryIO,
    *,
    offset: int = 0,
    size: int,
    files: Mapping[str, FileSource],
    volume_id: Optional[int] = None,
    label: str = DEFAULT_LABEL,
    source_date_epoch: Optional[int] = None,
    fat_type: Optional[int] = None,
    oem: bytes = DEFAULT_OEM,
    hidden_sectors: int = 0,
    lfn: bool = True,
    assume_zeroed: bool = True,
) -> FatGeometry:
    """Format a FAT volume of `size` bytes at `offset` in `out` holding `files`.

    `files` maps '/'-separated volume paths ("EFI/BOOT/BOOTX64.EFI") to bytes or a host file
    path; parent directories are implied. Returns the geometry used.
    """
    if offset < 0 or offset % SECTOR:
        raise FatError(f"FAT volume offset {offset} is not a non-negative multiple of {SECTOR}")
    if volume_id is not None and not 0 <= volume_id <= 0xFFFFFFFF:
        raise FatError(f"volume id {volume_id:#x} does not fit in 32 bits")
    if not 0 <= hidden_sectors <= 0xFFFFFFFF:
        raise FatError(f"hidden sectors {hidden_sectors} does not fit in 32 bits")
    label_raw = _label_bytes(label)
    plan = plan_fat(size, files, fat_type=fat_type, lfn=lfn, label=label)
    geo = plan.geometry
    root = _build_tree(files, lfn)
    nxt = _allocate(root, geo, _label_extra(label))
    nodes = list(_walk_nodes(root))
    if volume_id is None:
        volume_id = int.from_bytes(_hash_inputs(root, size, label, source_date_epoch)[:4], "little")
    stamp = _fat_datetime(source_date_epoch)
    label_entry = label_raw if label_raw != _label_bytes(DEFAULT_LABEL) else None

    bs = boot_sector(geo, volume_id=volume_id, label=label_raw, oem=oem, hidden_sectors=hidden_sectors)
    _write_nonzero(out, offset, bs, assume_zeroed)
    if geo.fat_type == FAT32:
        info = _fsinfo(geo.cluster_count - (nxt - 2), nxt)
        _write_nonzero(out, offset + SECTOR, info, assume_zeroed)
        _write_nonzero(out, offset + 6 * SECTOR, bs, assume_zeroed)
        _write_nonzero(out, offset + 7 * SECTOR, info, assume_zeroed)
        if not assume_zeroed:
            # Other reserved sectors must be zero too.
            for s in list(range(2, 6)) + list(range(8, geo.reserved_sectors)):
                _write_nonzero(out, offset + s * SECTOR, bytes(SECTOR), False)

    root_first = root.first_cluster if geo.fat_type == FAT32 else 0
    fat = _encode_fat(geo, nodes, root_first, root.clusters if geo.fat_type == FAT32 else 0)
    for i in range(geo.num_fats):
        _write_nonzero(out, offset + (geo.fat_start + i * geo.sectors_per_fat) * SECTOR, fat, assume_zeroed)

    # Directories.
    def emit_dir(d: _Node, parent_cluster: int, is_root: bool) -> None:
        data = _dir_bytes(d, parent_cluster, is_root, stamp, label_entry)
        if is_root and geo.fat_type != FAT32:
            region = data.ljust(geo.root_dir_sectors * SECTOR, b"\0")
            _write_nonzero(out, offset + geo.root_dir_start * SECTOR, region, assume_zeroed)
        else:
            region = data.ljust(d.clusters * geo.cluster_bytes, b"\0")
            _write_nonzero(out, offset + geo.cluster_offset(d.first_cluster), region, assume_zeroed)
        for k in sorted(d.children):
            c = d.children[k]
            if c.is_dir:
                emit_dir(c, 0 if is_root else d.first_cluster, False)

    emit_dir(root, 0, True)

    # File contents.
    for n in nodes:
        if n.is_dir or not n.clusters:
            continue
        pos = offset + geo.cluster_offset(n.first_cluster)
        for chunk in _iter_source(n):
            _write_nonzero(out, pos, chunk, assume_zeroed)
            pos += len(chunk)
        if not assume_zeroed:
            slack = n.clusters * geo.cluster_bytes - n.size
            if slack:
                _write_nonzero(out, pos, bytes(slack), False)
    return geo


def make_fat_image(path: str, *, size: int, files: Mapping[str, FileSource], **kw: object) -> FatGeometry:
    """Write a standalone FAT image file (sparse), via a temporary name renamed at the end."""
    with atomic_output(path) as f:  # exclusive temp file: never writes through a planted link
        f.truncate(size)
        geo = write_fat(f, offset=0, size=size, files=files, **kw)  # type: ignore[arg-type]
    return geo


# --------------------------------------------------------------------------------------------
# Reader


@dataclass(frozen=True)
class FatEntry:
    name: str  # long name if present, else the 8.3 name
    short_name: str
    is_dir: bool
    size: int
    first_cluster: int
    attr: int
    wrt_date: int
    wrt_time: int


def _decode_short(raw: bytes, nt_case: int) -> str:
    raw = bytes(raw)
    if raw[0] == 0x05:
        raw = b"\xe5" + raw[1:]
    base = raw[:8].rstrip(b" ").decode("latin-1")
    ext = raw[8:11].rstrip(b" ").decode("latin-1")
    if nt_case & 0x08:
        base = base.lower()
    if nt_case & 0x10:
        ext = ext.lower()
    return f"{base}.{ext}" if ext else base


class FatReader:
    """Read-only access to a FAT12/16/32 volume at `offset` of a binary file."""

    MAX_DEPTH = MAX_DEPTH

    def __init__(self, fh: BinaryIO, offset: int = 0, size: Optional[int] = None) -> None:
        self.fh = fh
        self.offset = offset
        bs = self._read(0, 512)
        if bs[510:512] != b"\x55\xaa":
            raise FatError("no boot sector signature 55 AA at byte 510: not a FAT volume")
        (bps, spc, reserved, nfats, root_entries, tot16, media, spf16) = struct.unpack_from("<HBHBHHBH", bs, 11)
        tot32, = struct.unpack_from("<I", bs, 32)
        if bps not in (512, 1024, 2048, 4096):
            raise FatError(f"bytes per sector {bps} is not 512, 1024, 2048 or 4096")
        if spc == 0 or spc & (spc - 1):
            raise FatError(f"sectors per cluster {spc} is not a power of two")
        if reserved == 0:
            raise FatError("reserved sector count is 0")
        if nfats == 0:
            raise FatError("number of FATs is 0")
        total = tot16 or tot32
        if total == 0:
            raise FatError("total sector count is 0")
        spf = spf16
        fat32 = spf16 == 0
        root_cluster = 0
        if fat32:
            spf, = struct.unpack_from("<I", bs, 36)
            root_cluster, = struct.unpack_from("<I", bs, 44)
            if root_entries:
                raise FatError("FAT32 volume (sectors per FAT16 = 0) with a fixed root directory")
        if spf == 0:
            raise FatError("sectors per FAT is 0")
        root_sectors = (root_entries * 32 + bps - 1) // bps
        data_start = reserved + nfats * spf + root_sectors
        if data_start >= total:
            raise FatError(f"metadata ({data_start} sectors) does not fit in the volume ({total} sectors)")
        clusters = (total - data_start) // spc
        if clusters == 0:
            raise FatError("volume has no data clusters")
        ftype = FAT12 if clusters <= MAX_CLUSTERS[FAT12] else FAT16 if clusters <= MAX_CLUSTERS[FAT16] else FAT32
        if (ftype == FAT32) != fat32:
            raise FatError(f"cluster count {clusters} means FAT{ftype} but the BPB layout says otherwise")
        if clusters > MAX_CLUSTERS[FAT32]:
            raise FatError(f"cluster count {clusters} is too large for FAT32")
        if _fat_bytes(ftype, clusters + 2) > spf * bps:
            raise FatError(f"FAT of {spf} sectors is too small for {clusters} clusters")
        if fat32 and not 2 <= root_cluster <= clusters + 1:
            raise FatError(f"FAT32 root cluster {root_cluster} is out of range")
        if size is not None and total * bps > size:
            raise FatError(f"volume ({total * bps} bytes) is larger than its container ({size} bytes)")
        self.geometry = FatGeometry(ftype, total, spc, reserved, nfats, root_entries, spf, bps, root_cluster or 2)
        self.fat_type = ftype
        self.media = media
        ext = 64 if fat32 else 36
        self.volume_id: Optional[int] = None
        self.label: Optional[str] = None
        if bs[ext + 2] in (0x28, 0x29):
            self.volume_id, = struct.unpack_from("<I", bs, ext + 3)
            if bs[ext + 2] == 0x29:
                self.label = bytes(bs[ext + 7 : ext + 18]).decode("latin-1").rstrip()
        self._fat_cache: Dict[int, bytes] = {}
        self._checked = False
        self._boot = bs

    # raw access --------------------------------------------------------------------------
    def _read(self, off: int, n: int) -> bytes:
        try:
            self.fh.seek(self.offset + off)
            data = self.fh.read(n)
        except (OSError, ValueError, OverflowError) as e:
            raise FatError(f"cannot read {n} bytes at volume offset {off}: {e}") from None
        if len(data) != n:
            raise FatError(f"volume truncated: wanted {n} bytes at offset {off}, got {len(data)}")
        return data

    def _fat_entry(self, cluster: int) -> int:
        g = self.geometry
        bps = g.bytes_per_sector
        pos = cluster * g.fat_type // 8  # FAT12: floor(cluster * 1.5)
        base = g.fat_start * bps
        sec = pos // bps

        def byte(i: int) -> int:
            s = i // bps
            b = self._fat_cache.get(s)
            if b is None:
                if len(self._fat_cache) > 4096:
                    self._fat_cache.clear()
                b = self._read(base + s * bps, bps)
                self._fat_cache[s] = b
            return b[i % bps]

        del sec
        if g.fat_type == FAT12:
            v = byte(pos) | (byte(pos + 1) << 8)
            return v >> 4 if cluster & 1 else v & 0xFFF
        if g.fat_type == FAT16:
            return byte(pos) | (byte(pos + 1) << 8)
        return (byte(pos) | (byte(pos + 1) << 8) | (byte(pos + 2) << 16) | (byte(pos + 3) << 24)) & 0x0FFFFFFF

    def chain(self, first: int, limit: Optional[int] = None) -> List[int]:
        """Clusters of a chain starting at `first`. A chain that loops, or goes on past `limit`
        clusters, is an error (never silently cut short)."""
        g = self.geometry
        t = g.fat_type
        out: List[int] = []
        seen: Set[int] = set()
        c = first
        maxc = g.cluster_count + 1
        while True:
            if not 2 <= c <= maxc:
                raise FatError(f"cluster chain from {first} reaches invalid cluster {c:#x}")
            if c in seen:
                raise FatError(f"cluster chain from {first} loops back to cluster {c} (circular chain)")
            seen.add(c)
            out.append(c)
            if limit is not None and len(out) >= limit:
                if self._fat_entry(c) >= EOC_MIN[t]:
                    return out
                raise FatError(f"cluster chain from {first} goes on past {limit} clusters (the most its owner can use)")
            nxt = self._fat_entry(c)
            if nxt >= EOC_MIN[t]:
                return out
            if nxt == BAD[t]:
                raise FatError(f"cluster chain from {first} runs into bad cluster mark at {c}")
            if nxt == 0:
                raise FatError(f"cluster chain from {first} runs into free cluster at {c}")
            c = nxt

    # directories --------------------------------------------------------------------------
    def _dir_raw(self, first_cluster: Optional[int]) -> bytes:
        g = self.geometry
        if first_cluster is None:  # fixed FAT12/16 root
            return self._read(g.root_dir_start * g.bytes_per_sector, g.root_entries * 32)
        most = -(-(65536 * 32) // g.cluster_bytes)  # a directory holds at most 65536 entries
        parts = []
        for c in self.chain(first_cluster, limit=most):
            parts.append(self._read(g.cluster_offset(c), g.cluster_bytes))
        return b"".join(parts)

    def _entries(self, first_cluster: Optional[int]) -> List[FatEntry]:
        raw = self._dir_raw(first_cluster)
        out: List[FatEntry] = []
        lfn_parts: Dict[int, bytes] = {}
        lfn_sum: Optional[int] = None
        for i in range(0, len(raw) - 31, 32):
            e = raw[i : i + 32]
            if e[0] == 0:
                if any(raw[j] for j in range(i + 32, len(raw), 32)):  # fsck.fat reads on and complains
                    raise FatError(f"directory entry {i // 32 + 1}: an entry after the end-of-directory marker")
                break
            if e[0] == 0xE5:
                lfn_parts, lfn_sum = {}, None
                continue
            attr = e[11]
            if attr & 0x3F == ATTR_LFN:
                seq = e[0] & 0x1F
                if e[0] & 0x40:
                    lfn_parts = {}
                lfn_parts[seq] = e[1:11] + e[14:26] + e[28:32]
                lfn_sum = e[13]
                continue
            short = e[0:11]
            name = None
            if lfn_parts and lfn_sum == lfn_checksum(short) and sorted(lfn_parts) == list(range(1, len(lfn_parts) + 1)):
                units = b"".join(lfn_parts[k] for k in sorted(lfn_parts))
                for j in range(0, len(units), 2):
                    if units[j : j + 2] == b"\0\0":
                        units = units[:j]
                        break
                name = units.decode("utf-16-le", "replace")
            lfn_parts, lfn_sum = {}, None
            if attr & ATTR_VOLUME_ID:
                continue
            dots = short in (b".          ", b"..         ")
            if not dots and ((short[0] != 0x05 and short[0] in SHORT_FORBIDDEN) or any(b in SHORT_FORBIDDEN for b in short[1:])):
                raise FatError(f"directory entry {i // 32}: short name {bytes(short)!r} has a character FAT forbids")
            if name is not None and (name in (".", "..") or any(ch in LFN_FORBIDDEN or ord(ch) < 0x20 for ch in name)):
                raise FatError(f"directory entry {i // 32}: long name {name!r} has a character FAT forbids (or is . / ..)")
            (nt, hi, wtime, wdate, lo, fsize) = struct.unpack_from("<B7xHHHHI", e, 12)
            sname = _decode_short(short, nt)
            if sname in (".", ".."):
                continue
            out.append(
                FatEntry(name or sname, sname, bool(attr & ATTR_DIRECTORY), fsize, (hi << 16 | lo) if self.fat_type == FAT32 else lo, attr, wdate, wtime)
            )
        return out

    def _root_cluster(self) -> Optional[int]:
        return self.geometry.root_cluster if self.fat_type == FAT32 else None

    def _lookup(self, path: str) -> Optional[FatEntry]:
        """Entry for `path`, or None for the root directory."""
        parts = [p for p in path.replace("\\", "/").split("/") if p]
        if len(parts) > self.MAX_DEPTH:
            raise FatError(f"path {path!r} is deeper than {self.MAX_DEPTH} levels")
        self.check()
        cur: Optional[FatEntry] = None
        for i, part in enumerate(parts):
            if cur is not None and not cur.is_dir:
                raise FatError(f"{'/'.join(parts[:i])} is not a directory")
            entries = self._entries(self._root_cluster() if cur is None else self._dir_first(cur))
            want = part.upper()
            found = [e for e in entries if e.name.upper() == want or e.short_name.upper() == want]
            if not found:
                raise FatError(f"no such file or directory: /{'/'.join(parts[: i + 1])}")
            cur = found[0]
        return cur

    def _dir_first(self, e: FatEntry) -> Optional[int]:
        if e.first_cluster == 0:  # '..' style pointer to the root
            return self._root_cluster()
        return e.first_cluster

    def listdir(self, path: str = "/") -> List[str]:
        e = self._lookup(path)
        if e is not None and not e.is_dir:
            raise FatError(f"{path} is not a directory")
        return [x.name for x in self._entries(self._root_cluster() if e is None else self._dir_first(e))]

    def entries(self, path: str = "/") -> List[FatEntry]:
        e = self._lookup(path)
        if e is not None and not e.is_dir:
            raise FatError(f"{path} is not a directory")
        return self._entries(self._root_cluster() if e is None else self._dir_first(e))

    def stat(self, path: str) -> Optional[FatEntry]:
        """The entry for `path`; None for the root directory."""
        return self._lookup(path)

    def read(self, path: str) -> bytes:
        e = self._lookup(path)
        if e is None or e.is_dir:
            raise FatError(f"{path} is a directory")
        return self.read_entry(e)

    def read_entry(self, e: FatEntry) -> bytes:
        g = self.geometry
        if e.size == 0:
            return b""
        need = (e.size + g.cluster_bytes - 1) // g.cluster_bytes
        if need > g.cluster_count:
            raise FatError(f"{e.name}: size {e.size} exceeds the volume")
        clusters = self.chain(e.first_cluster, limit=need)
        if len(clusters) < need:
            raise FatError(f"{e.name}: cluster chain has {len(clusters)} clusters, size {e.size} needs {need}")
        parts = []
        left = e.size
        i = 0
        while i < len(clusters):  # merge contiguous runs into one read
            j = i
            while j + 1 < len(clusters) and clusters[j + 1] == clusters[j] + 1:
                j += 1
            n = min(left, (j - i + 1) * g.cluster_bytes)
            parts.append(self._read(g.cluster_offset(clusters[i]), n))
            left -= n
            i = j + 1
        return b"".join(parts)

    def walk(self) -> Iterator[Tuple[str, FatEntry]]:
        """Every entry below the root as ('/'-joined path, entry), depth-first in directory order."""
        seen = set()

        self.check()

        def rec(first: Optional[int], prefix: str, depth: int) -> Iterator[Tuple[str, FatEntry]]:
            for e in self._entries(first):
                p = f"{prefix}/{e.name}" if prefix else e.name
                if depth + 1 > self.MAX_DEPTH:
                    raise FatError(f"directory tree deeper than {self.MAX_DEPTH} levels at /{p}")
                yield p, e
                if e.is_dir:
                    d = self._dir_first(e)
                    if d in seen or d is None or d == self._root_cluster():
                        raise FatError(f"directory {p} loops back to an ancestor")
                    seen.add(d)
                    yield from rec(d, p, depth + 1)

        yield from rec(self._root_cluster(), "", 0)

    def check(self) -> None:
        """Check the whole volume once (bounded by its cluster count), like fsck.fat: every
        chain ends (no loop, no free or bad cluster inside), no cluster belongs to two files
        (cross-links), a file's chain matches its size, directories have size 0 and start with
        "." and "..", no allocated cluster is lost (owned by nothing), names are legal."""
        if self._checked:
            return
        g = self.geometry
        self._check_header()
        owner: Dict[int, str] = {}

        def claim(clusters: List[int], who: str) -> None:
            for c in clusters:
                other = owner.get(c)
                if other is not None:
                    raise FatError(f"/{who} and /{other} share cluster {c} (cross-linked)")
                owner[c] = who

        root = self._root_cluster()
        if root is not None:
            claim(self.chain(root), "")
        todo: List[Tuple[Optional[int], str, int]] = [(root, "", 0)]
        while todo:
            first, prefix, depth = todo.pop()
            names: Set[str] = set()
            for e in self._entries(first):
                p = f"{prefix}/{e.name}" if prefix else e.name
                if e.name.upper() in names:
                    raise FatError(f"/{p}: two entries with this name")
                names.add(e.name.upper())
                if depth + 1 > self.MAX_DEPTH:
                    raise FatError(f"directory tree deeper than {self.MAX_DEPTH} levels at /{p}")
                if e.is_dir:
                    if e.size != 0:
                        raise FatError(f"/{p}: a directory with a non-zero size ({e.size}): not a directory")
                    if e.first_cluster == 0:
                        raise FatError(f"/{p}: directory without a cluster")
                    claim(self.chain(e.first_cluster), p)
                    head = self._read(g.cluster_offset(e.first_cluster), 64)
                    if head[0:11] != b".          " or head[32:43] != b"..         ":
                        raise FatError(f"/{p}: directory does not start with '.' and '..' entries")
                    todo.append((e.first_cluster, p, depth + 1))
                elif e.size or e.first_cluster:
                    need = -(-e.size // g.cluster_bytes)
                    if need > g.cluster_count:
                        raise FatError(f"/{p}: size {e.size} exceeds the volume")
                    if e.first_cluster == 0:
                        raise FatError(f"/{p}: size {e.size} but no cluster")
                    try:
                        chain = self.chain(e.first_cluster, limit=need)
                    except FatError as exc:
                        raise FatError(f"/{p}: {exc}") from None
                    if len(chain) != need:
                        raise FatError(f"/{p}: cluster chain has {len(chain)} clusters, size {e.size} needs {need}")
                    claim(chain, p)
        t = g.fat_type
        for c in range(2, g.cluster_count + 2):
            v = self._fat_entry(c)
            if v != 0 and v != BAD[t] and c not in owner:
                raise FatError(f"cluster {c} is allocated (FAT entry {v:#x}) but belongs to no file (lost chain)")
        self._checked = True

    def _check_header(self) -> None:
        """What fsck.fat checks before the tree: FAT copies equal, FAT[0] carries the media
        byte, the dirty bit is clear, the boot-sector label is legal and matches the root's."""
        g = self.geometry
        bps = g.bytes_per_sector
        first = self._read(g.fat_start * bps, g.sectors_per_fat * bps)
        for k in range(1, g.num_fats):
            if self._read((g.fat_start + k * g.sectors_per_fat) * bps, g.sectors_per_fat * bps) != first:
                raise FatError(f"FAT copy {k + 1} differs from the first")
        want0 = (EOC[g.fat_type] & ~0xFF) | self.media
        if self._fat_entry(0) != want0:
            raise FatError(f"FAT entry 0 is {self._fat_entry(0):#x}, expected {want0:#x} (media byte {self.media:#x})")
        ext = 64 if g.fat_type == FAT32 else 36
        bs = self._boot
        if bs[ext + 1] & 1:
            raise FatError("the dirty bit is set: the volume was not cleanly unmounted")
        if bs[ext + 2] != 0x29:
            raise FatError(f"extended boot signature {bs[ext + 2]:#x} is not 0x29")
        raw = bytes(bs[ext + 7 : ext + 18])
        if any(c < 0x20 or c in b'"*+,./:;<=>?[\\]|' or 0x61 <= c <= 0x7A or c == 0x7F for c in raw):
            raise FatError(f"boot-sector volume label {raw!r} has a character FAT forbids")
        root_label = None
        for e in self._raw_root_labels():
            root_label = e
        if raw != (root_label or b"NO NAME    "):
            raise FatError(f"boot-sector volume label {raw!r} differs from the root directory's ({root_label or b'NO NAME    '!r})")

    def _raw_root_labels(self) -> Iterator[bytes]:
        raw = self._dir_raw(self._root_cluster())
        for i in range(0, len(raw) - 31, 32):
            e = raw[i : i + 32]
            if e[0] == 0:
                return
            if e[0] != 0xE5 and e[11] & 0x3F != ATTR_LFN and e[11] & ATTR_VOLUME_ID:
                yield bytes(e[0:11])

    def files(self) -> Dict[str, bytes]:
        """All regular files as {path: content} (for tests)."""
        return {p: self.read_entry(e) for p, e in self.walk() if not e.is_dir}


# --------------------------------------------------------------------------------------------
# CLI


def _parse_int_size(s: str) -> int:
    from redox_tools.image.diskimage import parse_size  # lazy: diskimage imports this module

    return parse_size(s)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.formats.fat", description="FAT (ESP) writer and reader")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create", help="write a standalone FAT image")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--size", required=True, help="volume size, e.g. 1M, 64MiB, 1048576")
    c.add_argument("--volume-id", type=lambda s: int(s, 16), default=None, help="hex; default: hash of inputs")
    c.add_argument("--label", default=DEFAULT_LABEL)
    c.add_argument("--source-date-epoch", type=int, default=None)
    c.add_argument("--fat-type", type=int, choices=(12, 16, 32), default=None)
    c.add_argument("files", nargs="*", metavar="DEST=SRC")
    for name in ("ls", "cat"):
        p = sub.add_parser(name)
        p.add_argument("image", help="a FAT volume, or a disk image (raw or qcow2) with --offset")
        if name == "cat":
            p.add_argument("path")
        p.add_argument("--offset", type=int, default=0)
    a = ap.parse_args(argv)
    if a.cmd == "create":
        files: Dict[str, FileSource] = {}
        for spec in a.files:
            dest, eq, src = spec.partition("=")
            if not eq:
                raise FatError(f"file argument {spec!r} must be DEST=SRC")
            files[dest] = src
        geo = make_fat_image(
            a.output,
            size=_parse_int_size(a.size),
            files=files,
            volume_id=a.volume_id,
            label=a.label,
            source_date_epoch=a.source_date_epoch,
            fat_type=a.fat_type,
        )
        print(f"{a.output}: FAT{geo.fat_type}, {geo.cluster_count} clusters of {geo.cluster_bytes} bytes")
        return 0
    with qcow2.open_disk(a.image, FatError) as fh:
        r = FatReader(fh, a.offset)
        if a.cmd == "ls":
            print(f"FAT{r.fat_type} volume id {r.volume_id or 0:08x} label {r.label!r}")
            for path, ent in r.walk():
                print(f"{'d' if ent.is_dir else '-'} {ent.size:>10} /{path}")
        else:
            sys.stdout.buffer.write(r.read(a.path))
    return 0


if __name__ == "__main__":
    run_main(main)
