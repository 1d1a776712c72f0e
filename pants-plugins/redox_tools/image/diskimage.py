"""Assemble a bootable Redox GPT disk image (docs/formats/disk-image.md §1–§5).

    create_disk_image(out_path, root=manifest, efi_app="bootloader.efi", size="512M")

Layout: protective MBR + GPT with three partitions — BIOS (34..2047, left zero for UEFI-only
images), EFI (FAT ESP of `esp_mib` MiB holding \\EFI\\BOOT\\BOOTX64.EFI) and REDOX (RedoxFS of
the root manifest, from 2 MiB with the default 1 MiB ESP). The file is created sparse:
truncated to `size`, and only non-zero sectors/blocks are written. It is written under a
temporary name and renamed at the end; on any error no output file is left.

Determinism: disk GUID, partition GUIDs, the FAT volume id and the RedoxFS UUID are derived
from a sha256 over the inputs (the manifest's content-describing fields, the EFI app bytes,
the size, the ESP size and the source date epoch) unless given explicitly.

CLI:
    python -m redox_tools.image.diskimage create --manifest ROOT.json --efi BOOTX64.EFI --size 512M
        -o disk.img [--esp-size-mib 1] [--source-date-epoch N] [--no-require-boot-files]
        [--efi-name BOOTX64.EFI] [--disk-guid GUID] [--redoxfs-uuid UUID]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from redox_tools.formats import fat, gpt
from redox_tools.errors import FormatError, ToolError, run_main
from redox_tools.manifest import FILE, Manifest
from redox_tools.safeio import atomic_output

MiB = 1 << 20
BOOT_FILES = ("usr/lib/boot/kernel", "usr/lib/boot/initfs")
DEFAULT_EFI_NAME = "BOOTX64.EFI"
MAX_ESP_MIB = 4096

RedoxfsWriter = Callable[..., Any]
SizeNeeded = Callable[[Manifest], int]


class DiskImageError(FormatError):
    """A disk image that cannot be assembled as asked (size, missing boot files, ...)."""


# --------------------------------------------------------------------------------------------
# Sizes

_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 10**3,
    "m": 1 << 20, "mib": 1 << 20, "mb": 10**6,
    "g": 1 << 30, "gib": 1 << 30, "gb": 10**9,
    "t": 1 << 40, "tib": 1 << 40, "tb": 10**12,
}


def parse_size(text: Union[str, int]) -> int:
    """'512M', '1G', '64MiB', '4096' -> bytes. K/M/G/T and KiB/MiB/GiB/TiB are binary units,
    KB/MB/GB/TB decimal; a bare number is bytes."""
    if isinstance(text, int):
        if text <= 0:
            raise DiskImageError(f"size {text} must be positive")
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise DiskImageError(f"cannot parse size {text!r} (examples: 512M, 1G, 64MiB, 1048576)")
    n = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if n <= 0:
        raise DiskImageError(f"size {text!r} must be positive")
    return n


def _mib(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n / MiB:.2f} MiB"


# --------------------------------------------------------------------------------------------
# Derived identifiers


@dataclass(frozen=True)
class DiskIds:
    disk_guid: uuid.UUID
    partition_guids: Tuple[uuid.UUID, uuid.UUID, uuid.UUID]
    fat_volume_id: int
    redoxfs_uuid: bytes  # 16 bytes, stored order


def manifest_digest(root: Manifest) -> str:
    """sha256 over what the manifest says about the image (not host source paths/origins)."""
    keys = ("path", "kind", "mode", "uid", "gid", "mtime", "sha256", "size", "target")
    rows = [{k: getattr(e, k) for k in keys} for e in root]
    return hashlib.sha256(json.dumps(rows, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def derive_ids(seed: bytes) -> DiskIds:
    def sub(label: str) -> bytes:
        return hashlib.sha256(seed + b"\0" + label.encode()).digest()

    def guid(label: str) -> uuid.UUID:
        return uuid.UUID(bytes=sub(label)[:16], version=4)

    return DiskIds(
        disk_guid=guid("disk"),
        partition_guids=(guid("part-bios"), guid("part-efi"), guid("part-redox")),
        fat_volume_id=int.from_bytes(sub("fat-volume-id")[:4], "little"),
        redoxfs_uuid=guid("redoxfs").bytes,
    )


def input_seed(root: Manifest, efi_bytes: bytes, size: int, esp_mib: int, source_date_epoch: int, efi_name: str) -> bytes:
    h = hashlib.sha256(b"redox_tools.diskimage v1\0")
    h.update(manifest_digest(root).encode() + b"\0")
    h.update(hashlib.sha256(efi_bytes).digest())
    h.update(f"\0{size}\0{esp_mib}\0{source_date_epoch}\0{efi_name}".encode())
    return h.digest()


# --------------------------------------------------------------------------------------------
# Checks


def check_boot_files(root: Manifest) -> None:
    """The bootloader reads these two from RedoxFS; they must be regular files, reached through
    real directories (not symlinks)."""
    for path in BOOT_FILES:
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = root.get("/".join(parts[:i]))
            if d is not None and d.kind != "dir":
                raise DiskImageError(
                    f"root manifest: /{'/'.join(parts[:i])} is a {d.kind} (from {d.origin or '?'}); "
                    f"the bootloader needs a real directory there to find /{path}"
                )
        e = root.get(path)
        if e is None:
            raise DiskImageError(
                f"root manifest has no /{path}: the bootloader loads it from RedoxFS "
                f"(add it, or pass --no-require-boot-files for a non-bootable image)"
            )
        if e.kind != FILE:
            raise DiskImageError(f"root manifest: /{path} is a {e.kind} (from {e.origin or '?'}), not a regular file")


def _default_redoxfs() -> Tuple[RedoxfsWriter, SizeNeeded]:
    try:
        from redox_tools.redoxfs import size_needed, write_redoxfs  # type: ignore[attr-defined]
    except ImportError as e:
        raise DiskImageError(f"the RedoxFS writer (redox_tools.redoxfs) is not available: {e}") from None
    return write_redoxfs, size_needed


def _esp_min_mib(files: dict, start: int) -> Optional[int]:
    for mib in range(start, MAX_ESP_MIB + 1):
        try:
            fat.plan_fat(mib * MiB, files)
            return mib
        except fat.FatError:
            continue
    return None


# --------------------------------------------------------------------------------------------
# Assembly


@dataclass(frozen=True)
class DiskImageInfo:
    path: str
    size: int
    partitions: List[gpt.Partition]
    disk_guid: uuid.UUID
    redoxfs_uuid: bytes
    redoxfs_offset: int
    redoxfs_size: int
    redoxfs_needed: int
    fat_volume_id: int
    fat_type: int


def create_disk_image(
    out_path: str,
    *,
    root: Manifest,
    efi_app: Union[str, bytes, "os.PathLike[str]"],
    size: Union[int, str],
    esp_mib: int = 1,
    source_date_epoch: int = 0,
    disk_guid: Optional[Union[str, uuid.UUID]] = None,
    redoxfs_uuid: Optional[bytes] = None,
    fat_volume_id: Optional[int] = None,
    require_boot_files: bool = True,
    efi_name: str = DEFAULT_EFI_NAME,
    redoxfs_writer: Optional[RedoxfsWriter] = None,
    redoxfs_size_needed: Optional[SizeNeeded] = None,
) -> DiskImageInfo:
    """Write the whole disk image to `out_path` (temp file + rename). See the module docstring.

    `redoxfs_writer(out, manifest, *, offset, size, uuid, ctime)` and
    `redoxfs_size_needed(manifest) -> bytes` default to redox_tools.redoxfs."""
    size = parse_size(size)
    if size % gpt.LBA:
        raise DiskImageError(f"disk size {size} is not a multiple of 512 bytes")
    if not isinstance(esp_mib, int) or esp_mib < 1:
        raise DiskImageError(f"ESP size {esp_mib!r} MiB must be a positive whole number")
    if isinstance(efi_app, (bytes, bytearray)):
        efi_bytes = bytes(efi_app)
    else:
        try:
            with open(efi_app, "rb") as f:
                efi_bytes = f.read()
        except OSError as e:
            raise DiskImageError(f"cannot read the EFI application {os.fspath(efi_app)!r}: {e.strerror}") from None
    if not efi_bytes:
        raise DiskImageError("the EFI application is empty")
    if efi_bytes[:2] != b"MZ":
        raise DiskImageError("the EFI application does not start with 'MZ' (not a PE/COFF image)")
    if require_boot_files:
        check_boot_files(root)
    if redoxfs_writer is None or redoxfs_size_needed is None:
        w, n = _default_redoxfs()
        redoxfs_writer = redoxfs_writer or w
        redoxfs_size_needed = redoxfs_size_needed or n

    needed = int(redoxfs_size_needed(root))
    try:
        layout = gpt.redox_layout(size, esp_mib)
    except gpt.GptError:
        layout = None
    min_size = gpt.redox_min_disk_size(needed, esp_mib)
    if layout is None or (layout[2][2] - layout[2][1] + 1) * gpt.LBA < needed:
        raise DiskImageError(
            f"image size {_mib(size)} is too small: the RedoxFS needs {needed} bytes "
            f"({_mib(-(-needed // MiB) * MiB)}); the disk needs at least {min_size // MiB} MiB "
            f"(--size {min_size // MiB}M)"
        )

    esp_files = {f"EFI/BOOT/{efi_name}": efi_bytes}
    try:
        fat.plan_fat(esp_mib * MiB, esp_files)
    except fat.FatError as e:
        m = _esp_min_mib(esp_files, esp_mib + 1)
        hint = f"; use --esp-size-mib {m}" if m else ""
        raise DiskImageError(f"ESP of {esp_mib} MiB cannot hold {efi_name} ({len(efi_bytes)} bytes): {e}{hint}") from None

    ids = derive_ids(input_seed(root, efi_bytes, size, esp_mib, source_date_epoch, efi_name))
    dguid = gpt.as_guid(disk_guid, "disk GUID") if disk_guid is not None else ids.disk_guid
    rfs_uuid = redoxfs_uuid if redoxfs_uuid is not None else ids.redoxfs_uuid
    if len(rfs_uuid) != 16:
        raise DiskImageError(f"RedoxFS UUID must be 16 bytes, got {len(rfs_uuid)}")
    volid = fat_volume_id if fat_volume_id is not None else ids.fat_volume_id
    types = (gpt.BIOS_BOOT, gpt.EFI_SYSTEM, gpt.LINUX_FS)
    parts = [
        gpt.Partition(name, types[i], ids.partition_guids[i], first, last) for i, (name, first, last) in enumerate(layout)
    ]
    esp = parts[1]
    rfs = parts[2]
    rfs_off, rfs_size = rfs.first_lba * gpt.LBA, rfs.size_bytes

    with atomic_output(out_path) as f:  # exclusive temp file: never writes through a planted link
        f.truncate(size)
        gpt.write_gpt(f, size, parts, dguid)
        geo = fat.write_fat(
            f,
            offset=esp.first_lba * gpt.LBA,
            size=esp.size_bytes,
            files=esp_files,
            volume_id=volid,
            source_date_epoch=source_date_epoch,
        )
        redoxfs_writer(f, root, offset=rfs_off, size=rfs_size, uuid=rfs_uuid, ctime=source_date_epoch)
        f.flush()
        if f.seek(0, os.SEEK_END) != size:
            raise DiskImageError(f"internal error: a writer changed the image length (now {f.tell()}, want {size})")
    return DiskImageInfo(
        out_path, size, parts, dguid, rfs_uuid, rfs_off, rfs_size, needed, volid, geo.fat_type
    )


def image_sha256(path: str) -> str:
    """sha256 of a (sparse) file's full contents without reading its holes from disk."""
    h = hashlib.sha256()
    zero = bytes(1 << 20)
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                data_at = os.lseek(fd, pos, getattr(os, "SEEK_DATA", 3))
            except OSError:  # ENXIO: only a hole remains (or SEEK_DATA unsupported -> read)
                data_at = size if hasattr(os, "SEEK_DATA") else pos
            while pos < data_at:
                n = min(len(zero), data_at - pos)
                h.update(zero[:n])
                pos += n
            if pos >= size:
                break
            try:
                hole_at = os.lseek(fd, pos, getattr(os, "SEEK_HOLE", 4))
            except OSError:
                hole_at = size
            f.seek(pos)
            while pos < hole_at:
                b = f.read(min(1 << 20, hole_at - pos))
                if not b:
                    raise DiskImageError(f"{path} shrank while being hashed")
                h.update(b)
                pos += len(b)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# CLI


def _uuid_bytes(text: str) -> bytes:
    try:
        return uuid.UUID(text).bytes
    except ValueError:
        raise DiskImageError(f"{text!r} is not a UUID") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.image.diskimage", description="Redox GPT disk image assembly")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create", help="write a bootable GPT disk image")
    c.add_argument("--manifest", required=True, help="root manifest JSON")
    c.add_argument("--efi", required=True, help="the UEFI bootloader (copied to \\EFI\\BOOT\\<efi-name>)")
    c.add_argument("--size", required=True, help="whole disk size: 512M, 1G, 64MiB, bytes")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--esp-size-mib", type=int, default=1)
    c.add_argument(
        "--source-date-epoch",
        type=int,
        default=None,
        help="timestamp for FAT entries and RedoxFS ctime (default: $SOURCE_DATE_EPOCH or 0)",
    )
    c.add_argument("--no-require-boot-files", action="store_true", help="allow a root without kernel/initfs")
    c.add_argument("--efi-name", default=DEFAULT_EFI_NAME)
    c.add_argument("--disk-guid", default=None, help="default: derived from the inputs")
    c.add_argument("--redoxfs-uuid", default=None, help="default: derived from the inputs")
    a = ap.parse_args(argv)
    epoch = a.source_date_epoch
    if epoch is None:
        env = os.environ.get("SOURCE_DATE_EPOCH", "0")
        try:
            epoch = int(env)
        except ValueError:
            raise ToolError(f"SOURCE_DATE_EPOCH={env!r} is not an integer") from None
    root = Manifest.load(a.manifest)
    info = create_disk_image(
        a.output,
        root=root,
        efi_app=a.efi,
        size=a.size,
        esp_mib=a.esp_size_mib,
        source_date_epoch=epoch,
        disk_guid=a.disk_guid,
        redoxfs_uuid=_uuid_bytes(a.redoxfs_uuid) if a.redoxfs_uuid else None,
        require_boot_files=not a.no_require_boot_files,
        efi_name=a.efi_name,
    )
    print(
        f"{info.path}: {_mib(info.size)}, disk GUID {info.disk_guid}, ESP FAT{info.fat_type}, "
        f"RedoxFS {uuid.UUID(bytes=info.redoxfs_uuid)} {_mib(info.redoxfs_size)} at {_mib(info.redoxfs_offset)} "
        f"({info.redoxfs_needed} bytes needed)"
    )
    return 0


if __name__ == "__main__":
    run_main(main)
