"""qcow2 (version 3) images from raw disk images and back, byte-reproducibly.

Disk images leave the build as qcow2 so that the Pants store, and dist/, hold the data, not the
holes: a 512 MiB image with a few MiB of files is a few MiB of qcow2. QEMU (`format=qcow2`) and
Cloud Hypervisor (which detects qcow2 itself) boot the qcow2 directly; `raw` gives back the
exact raw image (sparse) for `dd` to a USB stick.

    python -m redox_tools.qcow2 from-raw disk.img -o disk.qcow2
    python -m redox_tools.qcow2 raw disk.qcow2 disk.img     # or: qemu-img convert -O raw disk.qcow2 disk.img
    python -m redox_tools.qcow2 info disk.qcow2

The writer's output depends only on the raw image's bytes (no times, no host data): every
64 KiB guest cluster holding a non-zero byte is stored, in guest order, after the metadata
(header, refcount table, L1 table, refcount blocks, L2 tables); all-zero clusters are left
unallocated (they read as zeros). Written here rather than by `qemu-img convert -O qcow2`,
whose output may differ between qemu-img releases (the build machines do not all have the same
one). `qemu-img check` finds no error or leak in it. The reader accepts what
this writer and qemu-img write for a standalone image: versions 2 and 3, no backing file, no
encryption, no compressed clusters, no external data file.
"""
from __future__ import annotations

import contextlib
import os
import stat
import struct
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Callable, Dict, Iterator, List, Tuple

from redox_tools.errors import FormatError

MAGIC = b"QFI\xfb"
CLUSTER_BITS = 16
CLUSTER_SIZE = 1 << CLUSTER_BITS
REFCOUNT_ORDER = 4  # 16-bit refcounts: what QEMU writes and what Cloud Hypervisor reads
HEADER_V3_LENGTH = 104
COPIED = 1 << 63  # L1/L2 flag: refcount is exactly 1
COMPRESSED = 1 << 62
ZERO_FLAG = 1  # L2 flag (v3): the cluster reads as zeros
OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00
_ZERO = bytes(CLUSTER_SIZE)

# magic, version, backing_file_offset, backing_file_size, cluster_bits, size, crypt_method,
# l1_size, l1_table_offset, refcount_table_offset, refcount_table_clusters, nb_snapshots,
# snapshots_offset; then (v3) incompatible, compatible, autoclear features, refcount_order,
# header_length.
_HEADER_V2 = struct.Struct(">4sIQIIQIIQQIIQ")
_HEADER_V3 = struct.Struct(">QQQII")


class Qcow2Error(FormatError):
    """A qcow2 file this module cannot read, or a raw image it cannot convert."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _data_clusters(f: BinaryIO, size: int) -> Iterator[int]:
    """Indices of the guest clusters of raw image `f` that hold a non-zero byte, in order.

    Only the file's data extents are read (SEEK_DATA/SEEK_HOLE), so a sparse 512 MiB image with
    a few MiB of data costs a few MiB of reading.
    """
    fd = f.fileno()
    pos = 0
    last = -1
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        cluster = start // CLUSTER_SIZE
        while cluster * CLUSTER_SIZE < end:
            if cluster != last:
                chunk = os.pread(fd, CLUSTER_SIZE, cluster * CLUSTER_SIZE)
                if chunk != _ZERO[: len(chunk)]:
                    yield cluster
                last = cluster
            cluster += 1
        pos = end


@dataclass(frozen=True)
class Layout:
    """Where everything of one qcow2 file goes, in clusters (deterministic from the inputs)."""

    virtual_size: int
    l1_entries: int
    refcount_table_offset: int
    refcount_table_clusters: int
    l1_offset: int
    refcount_blocks_offset: int
    refcount_blocks: int
    l2_offsets: Dict[int, int]  # L1 index -> file offset of its L2 table
    data_offsets: Dict[int, int]  # guest cluster -> file offset
    total_clusters: int


def plan(virtual_size: int, clusters: List[int]) -> Layout:
    """The layout for a `virtual_size` image whose non-zero guest clusters are `clusters`."""
    if virtual_size <= 0 or virtual_size % 512:
        raise Qcow2Error(f"image size {virtual_size} is not a positive multiple of 512 bytes")
    l2_entries = CLUSTER_SIZE // 8
    l1_entries = _ceil_div(_ceil_div(virtual_size, CLUSTER_SIZE), l2_entries)
    l1_clusters = _ceil_div(l1_entries * 8, CLUSTER_SIZE)
    l2_tables = sorted({c // l2_entries for c in clusters})
    per_block = CLUSTER_SIZE * 8 // (1 << REFCOUNT_ORDER)
    fixed = 1 + l1_clusters + len(l2_tables) + len(clusters)
    rt_clusters, blocks = 1, 1
    while True:  # the refcount structures count themselves
        total = fixed + rt_clusters + blocks
        need_blocks = _ceil_div(total, per_block)
        need_rt = _ceil_div(need_blocks * 8, CLUSTER_SIZE)
        if (need_blocks, need_rt) == (blocks, rt_clusters):
            break
        blocks, rt_clusters = max(blocks, need_blocks), max(rt_clusters, need_rt)
    cursor = 1
    rt_offset = cursor * CLUSTER_SIZE
    cursor += rt_clusters
    l1_offset = cursor * CLUSTER_SIZE
    cursor += l1_clusters
    rb_offset = cursor * CLUSTER_SIZE
    cursor += blocks
    l2_offsets = {}
    for index in l2_tables:
        l2_offsets[index] = cursor * CLUSTER_SIZE
        cursor += 1
    data_offsets = {}
    for c in clusters:
        data_offsets[c] = cursor * CLUSTER_SIZE
        cursor += 1
    return Layout(virtual_size, l1_entries, rt_offset, rt_clusters, l1_offset, rb_offset, blocks,
                  l2_offsets, data_offsets, cursor)


def header_bytes(layout: Layout) -> bytes:
    v2 = _HEADER_V2.pack(
        MAGIC, 3, 0, 0, CLUSTER_BITS, layout.virtual_size, 0, layout.l1_entries, layout.l1_offset,
        layout.refcount_table_offset, layout.refcount_table_clusters, 0, 0,
    )
    # Followed by zeros: the end-of-header-extensions marker (type 0, length 0).
    return v2 + _HEADER_V3.pack(0, 0, 0, REFCOUNT_ORDER, HEADER_V3_LENGTH)


def metadata(layout: Layout) -> bytes:
    """Clusters 0 up to the first data cluster: header, refcount table, L1, refcount blocks, L2s."""
    cs = CLUSTER_SIZE
    buf = bytearray(cs * (layout.total_clusters - len(layout.data_offsets)))
    header = header_bytes(layout)
    buf[: len(header)] = header
    per_block = cs * 8 // (1 << REFCOUNT_ORDER)
    for b in range(layout.refcount_blocks):
        block_offset = layout.refcount_blocks_offset + b * cs
        struct.pack_into(">Q", buf, layout.refcount_table_offset + 8 * b, block_offset)
        first = b * per_block
        count = min(per_block, layout.total_clusters - first)
        struct.pack_into(f">{count}H", buf, block_offset, *([1] * count))
    l2_entries = cs // 8
    for index, offset in layout.l2_offsets.items():
        struct.pack_into(">Q", buf, layout.l1_offset + 8 * index, offset | COPIED)
    for cluster, offset in layout.data_offsets.items():
        l2 = layout.l2_offsets[cluster // l2_entries]
        struct.pack_into(">Q", buf, l2 + 8 * (cluster % l2_entries), offset | COPIED)
    return bytes(buf)


def from_raw(raw_path: str, out_path: str) -> Layout:
    """Write `raw_path` as qcow2 to `out_path` (replaced atomically); returns the layout."""
    with open(raw_path, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        layout = plan(size, list(_data_clusters(src, size)))
        tmp = f"{out_path}.tmp.{os.getpid()}"
        try:
            with open(tmp, "wb") as out:
                out.write(metadata(layout))
                for cluster in layout.data_offsets:
                    chunk = os.pread(src.fileno(), CLUSTER_SIZE, cluster * CLUSTER_SIZE)
                    out.write(chunk.ljust(CLUSTER_SIZE, b"\0"))
            os.replace(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return layout


@dataclass(frozen=True)
class Header:
    version: int
    cluster_bits: int
    virtual_size: int
    l1_entries: int
    l1_offset: int
    refcount_order: int


def read_header(f: BinaryIO, name: str) -> Header:
    raw = f.read(_HEADER_V2.size + _HEADER_V3.size)
    if len(raw) < _HEADER_V2.size or raw[:4] != MAGIC:
        raise Qcow2Error(f"{name}: not a qcow2 image (no QFI\\xfb magic)")
    (_, version, backing_offset, _, cluster_bits, size, crypt, l1_entries, l1_offset, _, _, _, _) = (
        _HEADER_V2.unpack_from(raw)
    )
    refcount_order = 4
    if version not in (2, 3):
        raise Qcow2Error(f"{name}: qcow2 version {version} is not supported (2 or 3)")
    if version == 3:
        if len(raw) < _HEADER_V2.size + _HEADER_V3.size:
            raise Qcow2Error(f"{name}: truncated qcow2 v3 header")
        incompatible, _, _, refcount_order, _ = _HEADER_V3.unpack_from(raw, _HEADER_V2.size)
        # bit 0 dirty, 1 corrupt, 2 external data file, 3 compression type, 4 extended L2
        if incompatible & ~0b1:
            raise Qcow2Error(f"{name}: qcow2 incompatible features {incompatible:#x} are not supported")
    if backing_offset:
        raise Qcow2Error(f"{name}: has a backing file; convert it with qemu-img instead")
    if crypt:
        raise Qcow2Error(f"{name}: is encrypted")
    if not 9 <= cluster_bits <= 21:
        raise Qcow2Error(f"{name}: cluster_bits {cluster_bits} out of range")
    return Header(version, cluster_bits, size, l1_entries, l1_offset, refcount_order)


def guest_clusters(path: str) -> Tuple[Header, List[Tuple[int, int]]]:
    """(header, [(guest offset, file offset)]) of every allocated non-zero cluster of `path`."""
    with open(path, "rb") as f:
        h = read_header(f, path)
        cs = 1 << h.cluster_bits
        file_size = os.fstat(f.fileno()).st_size
        l2_entries = cs // 8
        f.seek(h.l1_offset)
        l1_raw = f.read(8 * h.l1_entries)
        if len(l1_raw) != 8 * h.l1_entries:
            raise Qcow2Error(f"{path}: L1 table beyond the end of the file")
        out: List[Tuple[int, int]] = []
        for i, entry in enumerate(struct.unpack(f">{h.l1_entries}Q", l1_raw)):
            l2_offset = entry & OFFSET_MASK
            if not l2_offset:
                continue
            f.seek(l2_offset)
            l2_raw = f.read(cs)
            if len(l2_raw) != cs:
                raise Qcow2Error(f"{path}: L2 table at {l2_offset} beyond the end of the file")
            for j, e in enumerate(struct.unpack(f">{l2_entries}Q", l2_raw)):
                if e & COMPRESSED:
                    raise Qcow2Error(f"{path}: compressed clusters are not supported; use qemu-img convert")
                offset = e & OFFSET_MASK
                if not offset or (h.version == 3 and e & ZERO_FLAG):
                    continue
                guest = (i * l2_entries + j) * cs
                if guest >= h.virtual_size:
                    raise Qcow2Error(f"{path}: cluster mapped beyond the virtual size")
                if offset + cs > file_size and offset >= file_size:
                    raise Qcow2Error(f"{path}: data cluster at {offset} beyond the end of the file")
                out.append((guest, offset))
        return h, out


def to_raw(path: str, out_path: str) -> int:
    """Write the raw image of qcow2 `path` to `out_path`; returns the virtual size.

    A regular file is written sparse (only non-zero clusters), under a temporary name renamed
    at the end; a block device (a USB stick) gets every byte, zeros included, since it holds
    whatever was there before.
    """
    h, mapped = guest_clusters(path)
    cs = 1 << h.cluster_bits
    device = os.path.exists(out_path) and stat.S_ISBLK(os.stat(out_path).st_mode)
    tmp = None if device else f"{out_path}.tmp.{os.getpid()}"
    try:
        with open(path, "rb") as src:
            fd = os.open(tmp or out_path, os.O_WRONLY | (0 if device else os.O_CREAT | os.O_TRUNC), 0o644)
            try:
                if device:
                    by_guest = dict(mapped)
                    for guest in range(0, h.virtual_size, cs):
                        n = min(cs, h.virtual_size - guest)
                        off = by_guest.get(guest)
                        chunk = os.pread(src.fileno(), n, off) if off is not None else b""
                        os.pwrite(fd, chunk.ljust(n, b"\0"), guest)
                    os.fsync(fd)
                else:
                    os.ftruncate(fd, h.virtual_size)
                    for guest, off in mapped:
                        n = min(cs, h.virtual_size - guest)
                        chunk = os.pread(src.fileno(), n, off).ljust(n, b"\0")
                        if chunk.count(0) != n:
                            os.pwrite(fd, chunk, guest)
            finally:
                os.close(fd)
        if tmp:
            os.replace(tmp, out_path)
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    return h.virtual_size


def is_qcow2(path: str) -> bool:
    """Whether `path` starts with the qcow2 magic (False when it cannot be read: the caller's own
    open says why)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


@contextlib.contextmanager
def raw_path(path: str) -> Iterator[str]:
    """`path` itself, or for a qcow2 image a sparse raw copy of its disk in a temporary
    directory (removed on exit): a reader of raw disk images takes either."""
    if not is_qcow2(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="redox-qcow2-") as tmp:
        raw = os.path.join(tmp, "disk.img")
        to_raw(path, raw)
        yield raw


@contextlib.contextmanager
def open_disk(path: str, error: Callable[[str], Exception]) -> Iterator[BinaryIO]:
    """The disk of `path` (raw, or a qcow2 image's through `raw_path`) open for reading; a file
    that cannot be opened raises `error("cannot open PATH: why")`, the caller's own error."""
    with raw_path(path) as raw:
        try:
            fh = open(raw, "rb")
        except OSError as e:
            raise error(f"cannot open {path}: {e.strerror}") from None
        with fh:
            yield fh
