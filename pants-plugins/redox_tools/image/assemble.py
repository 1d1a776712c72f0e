"""Assemble images from staged trees: root manifest -> initfs or GPT disk image.

Run by the image rules inside a sandbox (and by hand):

    python -m redox_tools.image.assemble initfs --tree ORIGIN=DIR ... --bootstrap ELF -o initfs.img
    python -m redox_tools.image.assemble disk --tree ORIGIN=DIR ... [--file /IMAGE/PATH=HOSTFILE[:MODE]] ...
        [--overlay MANIFEST.json] --efi BOOTX64.EFI --size 512M -o disk.img [--format raw|qcow2]
        [--manifest-out root.json] [--drop-drivers NAME,...]

Each `--tree` is a package's staged tree (its origin, e.g. the Pants address, names it in
conflict errors). Trees are merged into one root manifest: the same path installed differently
by two packages is an error naming both. Ownership is root:root and every time is the source
date epoch, whatever the host says.

An `--overlay` is a root manifest (JSON, sources relative to its own directory) whose entries
replace the packages' entries at the same paths, owners and modes included: the module system's
generated files (/etc/passwd, homes owned by their users, ...), written after the packages like
upstream's installer writes its config files.

`--drop-drivers` leaves drivers out of the merged trees (`redox_tools.image.driver_filter`): their
programs and their pcid/xhcid config entries (a system's `hardware.drivers`).

`--format qcow2` writes the disk image as qcow2 (`redox_tools.qcow2`): the sparse raw image is
written next to the output first and converted, so only the data leaves the process.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

from redox_tools import qcow2
from redox_tools.formats import initfs
from redox_tools.image import diskimage, driver_filter
from redox_tools.errors import ManifestError, ToolError, run_main
from redox_tools.redoxfs.native import NativeRedoxFS
from redox_tools.manifest import DEFAULT_EXEC_MODE, DEFAULT_FILE_MODE, FILE, Entry, Manifest, normalize_path, sha256_file


def parse_tree(arg: str) -> Tuple[str, str]:
    origin, sep, path = arg.partition("=")
    if not sep or not origin or not path:
        raise ToolError(f"--tree {arg!r}: expected ORIGIN=DIR")
    return origin, path


def parse_file(arg: str) -> Tuple[str, str, Optional[int]]:
    dest, sep, rest = arg.partition("=")
    if not sep or not dest or not rest:
        raise ToolError(f"--file {arg!r}: expected /IMAGE/PATH=HOSTFILE[:MODE]")
    src, _, mode = rest.partition(":")
    try:
        return dest, src, int(mode, 8) if mode else None
    except ValueError:
        raise ToolError(f"--file {arg!r}: mode {mode!r} is not octal") from None


def root_manifest(
    trees: Sequence[str],
    files: Sequence[str],
    mtime: int,
    overlays: Sequence[str] = (),
    drop_drivers: Sequence[str] = (),
    work_dir: str = ".drivers",
) -> Manifest:
    parts: List[Manifest] = []
    for arg in trees:
        origin, path = parse_tree(arg)
        parts.append(Manifest.from_tree(path, origin=origin, mtime=mtime))
    extra: List[Entry] = []
    for arg in files:
        dest, src, mode = parse_file(arg)
        if not os.path.isfile(src):
            raise ManifestError(f"--file {dest}: {src} is not a file")
        digest, size = sha256_file(src)
        if mode is None:
            mode = DEFAULT_EXEC_MODE if os.access(src, os.X_OK) else DEFAULT_FILE_MODE
        extra.append(
            Entry(normalize_path(dest), FILE, mode, 0, 0, mtime, source=os.path.abspath(src), sha256=digest,
                  size=size, origin=f"--file {dest}")
        )
    parts.append(Manifest(extra))
    merged = Manifest.merge(parts)
    if drop_drivers:  # before the overlays: a file the configuration writes is kept as written
        merged = driver_filter.drop_drivers(merged, drop_drivers, work_dir)
    for path in overlays:
        overlay = Manifest.merge([Manifest.load(path)])
        replaced = {e.path for e in overlay}
        merged = Manifest([*(e for e in merged if e.path not in replaced), *overlay], merged.base_dir)
    return merged.complete(mtime=mtime)


def portable(manifest: Manifest, base: str) -> Manifest:
    """The manifest with content sources relative to `base`, so the written JSON does not depend
    on where the build ran (a sandbox path would make two identical builds differ)."""
    return Manifest(
        (replace(e, source=os.path.relpath(e.source, base)) if e.source else e for e in manifest), base
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redox_tools.image.assemble", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tree", action="append", default=[], help="ORIGIN=DIR: a staged tree")
    common.add_argument("--file", action="append", default=[], help="/IMAGE/PATH=HOSTFILE[:MODE]")
    common.add_argument("--overlay", action="append", default=[], help="a manifest whose entries replace the packages' ones")
    common.add_argument(
        "--drop-drivers", default="", help="NAME,...: drivers (programs + pcid/xhcid config entries) to leave out"
    )
    common.add_argument("--source-date-epoch", type=int, default=int(os.environ.get("SOURCE_DATE_EPOCH", "0")))
    common.add_argument("--manifest-out", help="also write the root manifest (JSON) here")
    common.add_argument("-o", "--output", required=True)

    p_initfs = sub.add_parser("initfs", parents=[common], help="build an initfs image")
    p_initfs.add_argument("--bootstrap", required=True, help="the bootstrap ELF")

    p_disk = sub.add_parser("disk", parents=[common], help="build a GPT disk image")
    p_disk.add_argument("--efi", required=True, help="UEFI application for /EFI/BOOT/BOOTX64.EFI")
    p_disk.add_argument("--size", default="512M")
    p_disk.add_argument("--esp-size-mib", type=int, default=1)
    p_disk.add_argument("--no-require-boot-files", action="store_true")
    p_disk.add_argument("--format", choices=("raw", "qcow2"), default="raw", help="image file format")
    p_disk.add_argument(
        "--redoxfs-writer",
        help="the native RedoxFS writer (packages/host/redoxfs-write) to write RedoxFS with; "
        "default: the Python writer in this process (the same bytes)",
    )

    args = parser.parse_args(argv)
    if os.path.dirname(args.output):
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
    drop = sorted({n for n in args.drop_drivers.split(",") if n})
    manifest = root_manifest(
        args.tree, args.file, args.source_date_epoch, args.overlay, drop, f"{args.output}.drivers.d"
    )
    if args.manifest_out:
        portable(manifest, os.getcwd()).dump(args.manifest_out)
    if args.cmd == "initfs":
        with open(args.bootstrap, "rb") as f:
            bootstrap = f.read()
        initfs.write_initfs(manifest, bootstrap, args.output)
    else:
        raw = args.output if args.format == "raw" else f"{args.output}.raw.tmp"
        native = NativeRedoxFS(args.redoxfs_writer) if args.redoxfs_writer else None
        diskimage.create_disk_image(
            raw,
            root=manifest,
            efi_app=args.efi,
            size=args.size,
            esp_mib=args.esp_size_mib,
            source_date_epoch=args.source_date_epoch,
            require_boot_files=not args.no_require_boot_files,
            redoxfs_writer=native.write if native else None,
            redoxfs_size_needed=native.size_needed if native else None,
        )
        if raw != args.output:
            try:
                qcow2.from_raw(raw, args.output)
            finally:
                os.unlink(raw)
    return 0


if __name__ == "__main__":
    run_main(main)
