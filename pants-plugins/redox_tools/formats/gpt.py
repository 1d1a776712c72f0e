"""GPT (protective MBR, primary + backup headers and partition arrays) writer and reader.

Follows docs/formats/disk-image.md §1–§3: 512-byte logical blocks, 128 entries of 128 bytes,
CRC-32 (zlib) over the 92-byte header and the 16 KiB array, GUIDs in mixed-endian order.

    redox_layout(disk_size, esp_mib=1) -> [("BIOS", 34, 2047), ("EFI", 2048, ...), ("REDOX", ...)]
    write_gpt(out, disk_size, partitions, disk_guid)      # writes into an open r+b file
    read_gpt(fh, disk_size=None) -> (GptHeader, [Partition, ...])   # checks signature + CRCs

Writing skips all-zero sectors: the target must be a freshly truncated (sparse) file, or pass
`assume_zeroed=False`.

CLI: python -m redox_tools.formats.gpt IMG   (prints the partition table)
"""
from __future__ import annotations

import argparse
import os
import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Dict, List, Optional, Sequence, Tuple, Union

from redox_tools import qcow2
from redox_tools.errors import FormatError, run_main

LBA = 512
MiB = 1024 * 1024
SIGNATURE = b"EFI PART"
REVISION = 0x00010000
HEADER_SIZE = 92
NUM_ENTRIES = 128
ENTRY_SIZE = 128
ARRAY_BYTES = NUM_ENTRIES * ENTRY_SIZE  # 16384
ARRAY_LBAS = ARRAY_BYTES // LBA  # 32
FIRST_USABLE = 2 + ARRAY_LBAS  # 34
MAX_ARRAY_BYTES = 1 << 20  # reader limit for foreign tables

BIOS_BOOT = uuid.UUID("21686148-6449-6E6F-744E-656564454649")
EFI_SYSTEM = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
LINUX_FS = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
TYPE_NAMES = {BIOS_BOOT: "BIOS boot", EFI_SYSTEM: "EFI system", LINUX_FS: "Linux filesystem"}

GuidLike = Union[uuid.UUID, str, bytes]


class GptError(FormatError):
    """A GPT that cannot be written as asked, or a malformed one being read."""


def as_guid(g: GuidLike, what: str = "GUID") -> uuid.UUID:
    if isinstance(g, uuid.UUID):
        return g
    try:
        if isinstance(g, (bytes, bytearray)):
            return uuid.UUID(bytes=bytes(g))
        return uuid.UUID(str(g))
    except ValueError:
        raise GptError(f"{what} {g!r} is not a GUID") from None


@dataclass(frozen=True)
class Partition:
    name: str
    type_guid: uuid.UUID
    guid: uuid.UUID
    first_lba: int
    last_lba: int
    attributes: int = 0
    index: int = -1  # position in the array (reader); ignored by the writer

    @property
    def size_bytes(self) -> int:
        return (self.last_lba - self.first_lba + 1) * LBA

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type_guid, str(self.type_guid).upper())


@dataclass(frozen=True)
class GptHeader:
    revision: int
    header_size: int
    header_crc: int
    my_lba: int
    alternate_lba: int
    first_usable: int
    last_usable: int
    disk_guid: uuid.UUID
    array_lba: int
    num_entries: int
    entry_size: int
    array_crc: int


# --------------------------------------------------------------------------------------------
# Layout


def last_lba(disk_size: int) -> int:
    return disk_size // LBA - 1


def redox_layout(disk_size: int, esp_mib: int = 1) -> List[Tuple[str, int, int]]:
    """[(name, first LBA, last LBA)] of BIOS, EFI and REDOX as the Redox installer lays them out."""
    if esp_mib < 1:
        raise GptError(f"ESP size {esp_mib} MiB must be at least 1")
    p3_first = 2048 + esp_mib * 2048
    p3_last = ((disk_size - FIRST_USABLE * LBA) // MiB) * 2048 - 1 if disk_size >= FIRST_USABLE * LBA else -1
    if p3_last < p3_first:
        need = (2 + esp_mib + 1) * MiB
        raise GptError(
            f"disk of {disk_size} bytes is too small for the Redox layout with a {esp_mib} MiB ESP "
            f"(needs at least {need // MiB} MiB)"
        )
    return [("BIOS", 34, 2047), ("EFI", 2048, p3_first - 1), ("REDOX", p3_first, p3_last)]


def redox_min_disk_size(redoxfs_bytes: int, esp_mib: int = 1) -> int:
    """Smallest whole-MiB disk size whose REDOX partition holds `redoxfs_bytes`."""
    mib = -(-max(redoxfs_bytes, 1) // MiB)
    return (2 + esp_mib + mib) * MiB


# --------------------------------------------------------------------------------------------
# Encoding


def protective_mbr(disk_size: int) -> bytes:
    mbr = bytearray(LBA)
    count = min(-(-disk_size // LBA) - 1, 0xFFFFFFFF)
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, count)
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def encode_entry(p: Partition) -> bytes:
    name = p.name.encode("utf-16-le")
    if len(name) > 72:
        raise GptError(f"partition name {p.name!r} is longer than 36 UTF-16 code units")
    return (
        p.type_guid.bytes_le
        + p.guid.bytes_le
        + struct.pack("<QQQ", p.first_lba, p.last_lba, p.attributes)
        + name.ljust(72, b"\0")
    )


def encode_header(
    *, my_lba: int, alternate_lba: int, last_usable: int, disk_guid: uuid.UUID, array_lba: int, array_crc: int
) -> bytes:
    def pack(crc: int) -> bytes:
        return struct.pack(
            "<8sIIIIQQQQ16sQIII",
            SIGNATURE,
            REVISION,
            HEADER_SIZE,
            crc,
            0,
            my_lba,
            alternate_lba,
            FIRST_USABLE,
            last_usable,
            disk_guid.bytes_le,
            array_lba,
            NUM_ENTRIES,
            ENTRY_SIZE,
            array_crc,
        )

    crc = zlib.crc32(pack(0)) & 0xFFFFFFFF
    return pack(crc).ljust(LBA, b"\0")


def _write_nonzero(out: BinaryIO, offset: int, data: bytes, assume_zeroed: bool) -> None:
    zero = bytes(LBA)
    for i in range(0, len(data), LBA):
        chunk = data[i : i + LBA]
        if assume_zeroed and chunk == zero[: len(chunk)]:
            continue
        out.seek(offset + i)
        out.write(chunk)


def gpt_structures(disk_size: int, partitions: Sequence[Partition], disk_guid: GuidLike) -> List[Tuple[int, bytes]]:
    """[(byte offset, bytes)] of the MBR, both headers and both arrays for `partitions`."""
    if disk_size % LBA:
        raise GptError(f"disk size {disk_size} is not a multiple of {LBA} bytes")
    last = last_lba(disk_size)
    last_usable = last - 1 - ARRAY_LBAS
    if last_usable < FIRST_USABLE:
        raise GptError(f"disk of {disk_size} bytes is too small for a GPT")
    if len(partitions) > NUM_ENTRIES:
        raise GptError(f"{len(partitions)} partitions exceed the {NUM_ENTRIES} entries of the array")
    dg = as_guid(disk_guid, "disk GUID")
    parts = sorted(partitions, key=lambda p: p.first_lba)
    for p in partitions:
        if not FIRST_USABLE <= p.first_lba <= p.last_lba <= last_usable:
            raise GptError(
                f"partition {p.name!r} LBAs {p.first_lba}..{p.last_lba} are outside the usable range "
                f"{FIRST_USABLE}..{last_usable} of a {disk_size}-byte disk"
            )
        if p.type_guid.int == 0:
            raise GptError(f"partition {p.name!r} has the all-zero type GUID (means unused)")
    for a, b in zip(parts, parts[1:]):
        if b.first_lba <= a.last_lba:
            raise GptError(f"partitions {a.name!r} and {b.name!r} overlap")
    guids = [p.guid for p in partitions]
    if len(set(guids)) != len(guids):
        raise GptError("partition GUIDs are not unique")
    array = b"".join(encode_entry(p) for p in partitions).ljust(ARRAY_BYTES, b"\0")
    acrc = zlib.crc32(array) & 0xFFFFFFFF
    primary = encode_header(my_lba=1, alternate_lba=last, last_usable=last_usable, disk_guid=dg, array_lba=2, array_crc=acrc)
    backup = encode_header(
        my_lba=last, alternate_lba=1, last_usable=last_usable, disk_guid=dg, array_lba=last - ARRAY_LBAS, array_crc=acrc
    )
    return [
        (0, protective_mbr(disk_size)),
        (LBA, primary),
        (2 * LBA, array),
        ((last - ARRAY_LBAS) * LBA, array),
        (last * LBA, backup),
    ]


def write_gpt(
    out: BinaryIO,
    disk_size: int,
    partitions: Sequence[Partition],
    disk_guid: GuidLike,
    *,
    assume_zeroed: bool = True,
) -> None:
    """Write protective MBR (bytes 446..511 only; 0..445 untouched), GPT headers and arrays."""
    for off, data in gpt_structures(disk_size, partitions, disk_guid):
        if off == 0:
            out.seek(446)
            out.write(data[446:])
        else:
            _write_nonzero(out, off, data, assume_zeroed)


# --------------------------------------------------------------------------------------------
# Reader


def _read_at(fh: BinaryIO, off: int, n: int) -> bytes:
    try:
        fh.seek(off)
        data = fh.read(n)
    except (OSError, ValueError, OverflowError) as e:
        raise GptError(f"cannot read {n} bytes at offset {off}: {e}") from None
    if len(data) != n:
        raise GptError(f"image truncated: wanted {n} bytes at offset {off}, got {len(data)}")
    return data


def _file_size(fh: BinaryIO) -> int:
    try:
        return fh.seek(0, os.SEEK_END)
    except (OSError, ValueError) as e:
        raise GptError(f"cannot determine image size: {e}") from None


def parse_header(raw: bytes, where: str) -> GptHeader:
    if raw[:8] != SIGNATURE:
        raise GptError(f"{where}: no 'EFI PART' signature")
    (rev, hsize, hcrc, _res, my, alt, fu, lu, dg, alba, n, esz, acrc) = struct.unpack_from("<IIIIQQQQ16sQIII", raw, 8)
    if not HEADER_SIZE <= hsize <= LBA:
        raise GptError(f"{where}: header size {hsize} is outside {HEADER_SIZE}..{LBA}")
    check = bytearray(raw[:hsize])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(bytes(check)) & 0xFFFFFFFF != hcrc:
        raise GptError(f"{where}: header CRC32 mismatch")
    if esz < 128 or esz & (esz - 1):
        raise GptError(f"{where}: entry size {esz} is not a power of two >= 128")
    if n * esz > MAX_ARRAY_BYTES or n == 0:
        raise GptError(f"{where}: {n} entries of {esz} bytes is not a sane partition array")
    return GptHeader(rev, hsize, hcrc, my, alt, fu, lu, uuid.UUID(bytes_le=dg), alba, n, esz, acrc)


def _check_protective_mbr(mbr: bytes) -> None:
    """One 0xEE entry starting at LBA 1, the other three MBR entries empty (no hybrid MBR)."""
    entries = [mbr[446 + 16 * i : 462 + 16 * i] for i in range(4)]
    ee = [i for i, e in enumerate(entries) if e[4] == 0xEE]
    if len(ee) != 1:
        raise GptError(f"the MBR has {len(ee)} protective (type 0xEE) entries, a GPT disk needs exactly one")
    start, = struct.unpack_from("<I", entries[ee[0]], 8)
    if start != 1:
        raise GptError(f"the protective MBR entry starts at LBA {start}, not 1")
    others = [i + 1 for i, e in enumerate(entries) if i != ee[0] and e != bytes(16)]
    if others:
        raise GptError(f"the protective MBR has other partition entries ({', '.join(map(str, others))}): a hybrid MBR")


def _read_array(fh: BinaryIO, h: GptHeader, where: str, total_lbas: int) -> bytes:
    nbytes = h.num_entries * h.entry_size
    if h.array_lba + -(-nbytes // LBA) > total_lbas or h.array_lba < 1:
        raise GptError(f"{where}: partition array at LBA {h.array_lba} lies outside the disk")
    arr = _read_at(fh, h.array_lba * LBA, nbytes)
    if zlib.crc32(arr) & 0xFFFFFFFF != h.array_crc:
        raise GptError(f"{where}: partition array CRC32 mismatch")
    return arr


def read_gpt(fh: BinaryIO, disk_size: Optional[int] = None, *, check_backup: bool = True) -> Tuple[GptHeader, List[Partition]]:
    """Read and verify a GPT (signature, header and array CRCs, entry bounds, overlaps; the
    backup header/array too unless `check_backup=False`). Raises GptError only."""
    size = _file_size(fh) if disk_size is None else disk_size
    total = size // LBA
    if total < 3:
        raise GptError(f"image of {size} bytes is too small to hold a GPT")
    mbr = _read_at(fh, 0, LBA)
    if mbr[510:512] != b"\x55\xaa":
        raise GptError("LBA 0 has no 55 AA signature: no protective MBR")
    _check_protective_mbr(mbr)
    h = parse_header(_read_at(fh, LBA, LBA), "primary GPT header")
    if h.my_lba != 1:
        raise GptError(f"primary GPT header says it is at LBA {h.my_lba}, not 1")
    if not h.first_usable <= h.last_usable + 1 or h.last_usable >= total:
        raise GptError(f"usable LBA range {h.first_usable}..{h.last_usable} does not fit a {total}-LBA disk")
    array_lbas = -(-h.num_entries * h.entry_size // LBA)
    if h.array_lba < 2 or h.array_lba + array_lbas > h.first_usable:
        raise GptError(
            f"primary partition array (LBA {h.array_lba}, {array_lbas} LBAs) extends past the first usable LBA {h.first_usable}"
        )
    if h.alternate_lba <= h.last_usable:
        raise GptError(f"last usable LBA {h.last_usable} reaches the backup GPT header at LBA {h.alternate_lba}")
    arr = _read_array(fh, h, "primary GPT", total)
    if check_backup:
        if h.alternate_lba >= total or h.alternate_lba < 2:
            raise GptError(f"backup GPT header LBA {h.alternate_lba} lies outside the {total}-LBA disk")
        b = parse_header(_read_at(fh, h.alternate_lba * LBA, LBA), "backup GPT header")
        if b.my_lba != h.alternate_lba or b.alternate_lba != 1:
            raise GptError("backup GPT header LBAs do not point back to the primary")
        if (b.disk_guid, b.first_usable, b.last_usable, b.num_entries, b.entry_size, b.array_crc) != (
            h.disk_guid, h.first_usable, h.last_usable, h.num_entries, h.entry_size, h.array_crc,
        ):
            raise GptError("backup GPT header disagrees with the primary")
        if not (h.last_usable < b.array_lba and b.array_lba + array_lbas <= b.my_lba):
            raise GptError(
                f"backup partition array (LBA {b.array_lba}, {array_lbas} LBAs) overlaps the usable range "
                f"(last usable {h.last_usable}) or the backup header (LBA {b.my_lba})"
            )
        if _read_array(fh, b, "backup GPT", total) != arr:
            raise GptError("backup partition array differs from the primary")
    parts: List[Partition] = []
    for i in range(h.num_entries):
        e = arr[i * h.entry_size : i * h.entry_size + 128]
        if e[:16] == bytes(16):
            continue
        first, last, attrs = struct.unpack_from("<QQQ", e, 32)
        raw_name = e[56:128]
        for j in range(0, 72, 2):
            if raw_name[j : j + 2] == b"\0\0":
                raw_name = raw_name[:j]
                break
        name = raw_name.decode("utf-16-le", "replace")
        p = Partition(name, uuid.UUID(bytes_le=e[:16]), uuid.UUID(bytes_le=e[16:32]), first, last, attrs, i)
        if not h.first_usable <= first <= last <= h.last_usable:
            raise GptError(f"partition {i} ({name!r}) LBAs {first}..{last} lie outside the usable range")
        parts.append(p)
    seen: Dict[uuid.UUID, Partition] = {}
    for p in parts:
        if p.guid in seen:
            raise GptError(f"partitions {seen[p.guid].index} and {p.index} have the same unique GUID {p.guid}")
        seen[p.guid] = p
    ordered = sorted(parts, key=lambda p: p.first_lba)
    for a, c in zip(ordered, ordered[1:]):
        if c.first_lba <= a.last_lba:
            raise GptError(f"partitions {a.index} ({a.name!r}) and {c.index} ({c.name!r}) overlap")
    return h, parts


# --------------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.formats.gpt", description="print a GPT partition table")
    ap.add_argument("image", help="a raw disk image or a qcow2 one (read through a temporary raw copy)")
    a = ap.parse_args(argv)
    with qcow2.open_disk(a.image, GptError) as fh:
        h, parts = read_gpt(fh)
    print(f"disk GUID {h.disk_guid}, usable LBAs {h.first_usable}..{h.last_usable}")
    for p in parts:
        print(f"{p.index + 1:>3} {p.name:<12} {p.type_name:<18} {p.first_lba:>10} {p.last_lba:>10} {p.size_bytes:>14}")
    return 0


if __name__ == "__main__":
    run_main(main)
