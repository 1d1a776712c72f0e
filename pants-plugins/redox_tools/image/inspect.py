"""Show what is inside a Redox disk image, a bare RedoxFS, a FAT volume or an initfs.

    python -m redox_tools.image.inspect IMG [--tree] [--initfs]

The kind of file is detected by magic: "RedoxFtw" at 0 (initfs), "RedoxFS\\0" at 0 (bare
RedoxFS), "EFI PART" at LBA 1 (GPT disk), else a FAT boot sector. A qcow2 image (what
`./pants package` writes) is read through a sparse raw copy in a temporary directory. For a disk it prints the
partitions, the ESP's files, the RedoxFS header of every partition holding one (and its tree
with --tree), and the initfs at /usr/lib/boot/initfs (summary; its listing with --initfs).
The RedoxFS and initfs readers are optional: without them a one-line note says what is
missing and the rest is still printed.

Library: `inspect_image(path, tree=False, initfs=False) -> str` (the same text).
"""
from __future__ import annotations

import argparse
import os
import struct
import uuid
from typing import Any, BinaryIO, List, Optional, Sequence, Tuple

from redox_tools import qcow2
from redox_tools.formats import fat, gpt
from redox_tools.errors import FormatError, ToolError, run_main

MiB = 1 << 20
REDOXFS_SIG = b"RedoxFS\0"
INITFS_MAGIC = b"RedoxFtw"
RFS_BLOCK = 4096
INITFS_PATH = "usr/lib/boot/initfs"
INITFS_MAX = 256 * MiB  # the largest initfs the bootloader loads; a bigger file is not read


class InspectError(FormatError):
    """A file inspect cannot make sense of."""


def _link_target(reader: Any, path: str) -> str:
    """" -> TARGET" of a symlink in a listing, or " -> (why it cannot be read)"."""
    try:
        return f" -> {reader.readlink(path)}"
    except ToolError as e:
        return f" -> ({e})"

def human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} B"


def _read(fh: BinaryIO, off: int, n: int) -> bytes:
    fh.seek(off)
    return fh.read(n)


# --------------------------------------------------------------------------------------------
# RedoxFS header (parsed here so a header can be shown even without the full reader)


def _rfs_header_fields(b: bytes) -> Optional[dict]:
    if len(b) < RFS_BLOCK or b[:8] != REDOXFS_SIG:
        return None
    version, = struct.unpack_from("<Q", b, 8)
    size, generation = struct.unpack_from("<QQ", b, 32)
    stored_hash, = struct.unpack_from("<Q", b, 4088)
    enc = b[4072:4088]
    valid: Optional[bool] = None
    try:
        from redox_tools.formats.seahash import seahash

        valid = seahash(b[:4072]) == stored_hash
    except ImportError:
        pass
    return dict(
        version=version,
        uuid=b[16:32],
        size=size,
        generation=generation,
        hash=stored_hash,
        hash_ok=valid,
        encrypted=enc != struct.pack("<Q", stored_hash) + bytes(8),
    )


def redoxfs_uuid_str(u: bytes) -> str:
    return str(uuid.UUID(bytes=bytes(u)))


def describe_redoxfs_header(fh: BinaryIO, offset: int) -> List[str]:
    h = _rfs_header_fields(_read(fh, offset, RFS_BLOCK))
    if h is None:
        return ["  no RedoxFS header"]
    ok = {True: "ok", False: "BAD", None: "unchecked (no seahash)"}[h["hash_ok"]]
    lines = [
        f"  uuid {redoxfs_uuid_str(h['uuid'])}, size {h['size']} bytes ({human(h['size'])}), "
        f"version {h['version']}, generation {h['generation']}, header hash {ok}"
        + (", ENCRYPTED" if h["encrypted"] else "")
    ]
    # the current header is the valid one with the largest generation in the 256-slot ring
    if h["hash_ok"]:
        ring = _read(fh, offset, 256 * RFS_BLOCK)
        best = (h["generation"], 0)
        for slot in range(1, len(ring) // RFS_BLOCK):
            blk = ring[slot * RFS_BLOCK : (slot + 1) * RFS_BLOCK]
            if blk[:8] != REDOXFS_SIG:
                continue
            o = _rfs_header_fields(blk)
            if o and o["hash_ok"] and o["generation"] > best[0]:
                best = (o["generation"], slot)
        if best[1]:
            lines.append(f"  current header: generation {best[0]} in ring slot {best[1]}")
    return lines


def _open_redoxfs(fh: BinaryIO, offset: int, size: Optional[int]) -> Tuple[Optional[Any], Optional[str]]:
    try:
        from redox_tools.redoxfs import RedoxFSReader  # type: ignore[attr-defined]
    except ImportError as e:
        return None, f"  (RedoxFS reader not available: {e}; tree and initfs not shown)"
    try:
        return RedoxFSReader(fh, offset=offset, size=size), None
    except ToolError as e:
        return None, f"  RedoxFS cannot be read: {e}"


def _rfs_walk(r: Any) -> List[str]:
    out = []
    for path, st in r.walk():
        if path in ("", "/"):
            continue
        path = "/" + str(path).lstrip("/")
        kind = getattr(st, "kind", "?")
        mode = st.filemode() if hasattr(st, "filemode") else f"{getattr(st, 'mode', 0) & 0o7777:04o}"
        line = f"  {mode} {getattr(st, 'uid', 0):>4} {getattr(st, 'gid', 0):>4} {getattr(st, 'size', 0):>10} {path}"
        if kind == "symlink" and hasattr(r, "readlink"):
            line += _link_target(r, path)
        out.append(line)
    return out


def describe_initfs(data: bytes, listing: bool, indent: str = "  ") -> List[str]:
    try:
        from redox_tools.formats.initfs import InitfsReader
    except ImportError as e:
        return [f"{indent}(initfs reader not available: {e})"]
    try:
        r = InitfsReader(data)
        h = r.header
        entries = list(r.walk())
    except ToolError as e:
        return [f"{indent}initfs cannot be read: {e}"]
    nfiles = sum(1 for _p, st in entries if st.kind == "file")
    lines = [
        f"{indent}{len(data)} bytes ({human(len(data))}), {h.inode_count} inodes, {nfiles} files, "
        f"bootstrap entry {h.bootstrap_entry:#x}"
    ]
    if listing:
        for path, st in entries:
            kind = {"file": "x" if st.executable else "-", "dir": "d", "symlink": "l"}.get(st.kind, "?")
            line = f"{indent}  {kind} {st.size:>10} /{path}"
            if st.kind == "symlink":
                line += _link_target(r, path)
            lines.append(line)
    return lines


def describe_redoxfs(fh: BinaryIO, offset: int, size: Optional[int], tree: bool, initfs: bool) -> List[str]:
    lines = describe_redoxfs_header(fh, offset)
    if lines == ["  no RedoxFS header"]:
        return lines
    r, note = _open_redoxfs(fh, offset, size)
    if r is None:
        return lines + [note or ""]
    try:
        if tree:
            lines.append("  tree:")
            lines += ["  " + x for x in _rfs_walk(r)]
        try:
            data = r.read(INITFS_PATH, limit=INITFS_MAX)
        except ToolError as e:
            lines.append(f"  /{INITFS_PATH}: {e}")
        else:
            lines.append(f"  initfs /{INITFS_PATH}:")
            lines += describe_initfs(data, initfs, indent="    ")
    except ToolError as e:
        lines.append(f"  RedoxFS cannot be read: {e}")
    return lines


def describe_fat(fh: BinaryIO, offset: int, size: Optional[int]) -> List[str]:
    try:
        r = fat.FatReader(fh, offset, size)
        vid = r.volume_id
        lines = [
            f"  FAT{r.fat_type}, {r.geometry.cluster_count} clusters of {r.geometry.cluster_bytes} bytes, "
            f"volume id {'%04X-%04X' % (vid >> 16, vid & 0xFFFF) if vid is not None else '-'}, label {r.label!r}"
        ]
        for p, e in r.walk():
            lines.append(f"  {'d' if e.is_dir else '-'} {e.size:>10} /{p}")
        return lines
    except fat.FatError as e:
        return [f"  FAT cannot be read: {e}"]


def inspect_image(path: str, *, tree: bool = False, initfs: bool = False) -> str:
    if qcow2.is_qcow2(path):
        with qcow2.raw_path(path) as raw:
            return f"{path}: qcow2 image\n" + inspect_image(raw, tree=tree, initfs=initfs).replace(raw, path)
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise InspectError(f"cannot open {path}: {e.strerror}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        head = _read(fh, 0, 1024)
        out: List[str] = []
        if head[:8] == INITFS_MAGIC:
            data = _read(fh, 0, size)
            out.append(f"{path}: initfs image")
            out += describe_initfs(data, True)
        elif head[:8] == REDOXFS_SIG:
            out.append(f"{path}: bare RedoxFS, {size} bytes")
            out += describe_redoxfs(fh, 0, size, tree, initfs)
        elif head[512:520] == gpt.SIGNATURE:
            out += _describe_disk(fh, path, size, tree, initfs)
        elif head[510:512] == b"\x55\xaa" and head[11:13] in (b"\x00\x02", b"\x00\x04", b"\x00\x08", b"\x00\x10"):
            out.append(f"{path}: FAT volume, {size} bytes")
            out += describe_fat(fh, 0, size)
        else:
            raise InspectError(f"{path}: not a GPT disk, RedoxFS, FAT volume or initfs (unknown magic {head[:8]!r})")
    return "\n".join(out) + "\n"


def _describe_disk(fh: BinaryIO, path: str, size: int, tree: bool, initfs: bool) -> List[str]:
    out = [f"{path}: GPT disk, {size} bytes ({human(size)})"]
    try:
        h, parts = gpt.read_gpt(fh, size)
    except gpt.GptError as e:
        out.append(f"  GPT problem: {e}; reading the primary table only")
        try:
            h, parts = gpt.read_gpt(fh, size, check_backup=False)
        except gpt.GptError as e2:
            out.append(f"  GPT cannot be read: {e2}")
            return out
    out.append(f"  disk GUID {str(h.disk_guid).upper()}, usable LBAs {h.first_usable}..{h.last_usable}")
    out.append(f"  {'#':>2} {'name':<8} {'type':<18} {'first LBA':>10} {'last LBA':>10} {'size':>10}  GUID")
    for p in parts:
        out.append(
            f"  {p.index + 1:>2} {p.name:<8} {p.type_name:<18} {p.first_lba:>10} {p.last_lba:>10} "
            f"{human(p.size_bytes):>10}  {str(p.guid).upper()}"
        )
    for p in parts:
        if p.type_guid == gpt.EFI_SYSTEM:
            out.append(f"ESP (partition {p.index + 1}, at {human(p.first_lba * 512)}):")
            out += describe_fat(fh, p.first_lba * 512, p.size_bytes)
    found = False
    for p in parts:
        if _read(fh, p.first_lba * 512, 8) == REDOXFS_SIG:
            found = True
            out.append(f"RedoxFS (partition {p.index + 1} {p.name}, at {human(p.first_lba * 512)}):")
            out += describe_redoxfs(fh, p.first_lba * 512, p.size_bytes, tree, initfs)
    if not found and _read(fh, 2 * MiB, 8) == REDOXFS_SIG:
        out.append("RedoxFS (whole disk at 2 MiB, not in a partition):")
        out += describe_redoxfs(fh, 2 * MiB, size - 2 * MiB, tree, initfs)
        found = True
    if not found:
        out.append("RedoxFS: none found (no partition starts with a RedoxFS header)")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.image.inspect", description=__doc__.split("\n\n")[0])
    ap.add_argument("image")
    ap.add_argument("--tree", action="store_true", help="list the RedoxFS tree")
    ap.add_argument("--initfs", action="store_true", help="list the initfs inside RedoxFS")
    a = ap.parse_args(argv)
    print(inspect_image(a.image, tree=a.tree, initfs=a.initfs), end="")
    return 0


if __name__ == "__main__":
    run_main(main)
