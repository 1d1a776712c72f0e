from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import uuid
from typing import Any, Dict, List

import pytest

from redox_tools.formats import gpt
from redox_tools.image import diskimage
from redox_tools.image.diskimage import DiskImageError, create_disk_image, parse_size
from redox_tools.formats.fat import FatReader
from redox_tools.manifest import Entry, Manifest

MiB = 1 << 20
EFI_APP = b"MZ" + bytes(range(256)) * 40
PLUGINS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class StandIn:
    """A tiny stand-in for the RedoxFS writer: a header-like block + one block per file."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: List[Dict[str, Any]] = []
        self.fail = fail

    def size_needed(self, m: Manifest) -> int:
        return 4096 * (1 + sum(1 for e in m if e.kind == "file"))

    def __call__(self, out, manifest, *, offset, size, uuid=None, ctime=None):
        self.calls.append(dict(offset=offset, size=size, uuid=uuid, ctime=ctime))
        if self.fail:
            raise RuntimeError("writer blew up")
        out.seek(offset)
        out.write(b"RedoxFS\0" + struct.pack("<Q", 8) + uuid + struct.pack("<Q", size))
        for i, e in enumerate(e for e in manifest if e.kind == "file"):
            out.seek(offset + 4096 * (i + 1))
            out.write(manifest.read(e))


def make_root(tmp_path, extra=None) -> Manifest:
    tree = tmp_path / "tree"
    (tree / "usr/lib/boot").mkdir(parents=True, exist_ok=True)
    (tree / "usr/lib/boot/kernel").write_bytes(b"\x7fELF kernel")
    (tree / "usr/lib/boot/initfs").write_bytes(b"RedoxFtw initfs")
    (tree / "etc").mkdir(exist_ok=True)
    (tree / "etc/hostname").write_bytes(b"redox\n")
    for k, v in (extra or {}).items():
        (tree / k).write_bytes(v)
    return Manifest.from_tree(str(tree), relative_to=str(tmp_path))  # sources relative to tmp_path


def build(tmp_path, name="disk.img", size="64M", root=None, **kw):
    w = kw.pop("writer", None) or StandIn()
    out = tmp_path / name
    info = create_disk_image(
        str(out),
        root=root if root is not None else make_root(tmp_path),
        efi_app=kw.pop("efi_app", EFI_APP),
        size=size,
        redoxfs_writer=w,
        redoxfs_size_needed=w.size_needed,
        **kw,
    )
    return out, info, w


def test_parse_size():
    assert parse_size("512M") == 512 * MiB
    assert parse_size("1G") == 1 << 30
    assert parse_size("64MiB") == 64 * MiB
    assert parse_size("4096") == 4096
    assert parse_size(" 2 gib ") == 2 << 30
    assert parse_size("100MB") == 100 * 10**6
    assert parse_size(123) == 123
    for bad in ("", "M", "1.5G", "12X", "-1M", "0"):
        with pytest.raises(DiskImageError):
            parse_size(bad)


def test_layout_and_contents(tmp_path):
    out, info, w = build(tmp_path, source_date_epoch=1700000000)
    assert out.stat().st_size == 64 * MiB
    with open(out, "rb") as f:
        h, parts = gpt.read_gpt(f)
        assert [(p.name, p.first_lba, p.last_lba) for p in parts] == [
            ("BIOS", 34, 2047),
            ("EFI", 2048, 4095),
            ("REDOX", 4096, 129023),
        ]
        assert [p.type_guid for p in parts] == [gpt.BIOS_BOOT, gpt.EFI_SYSTEM, gpt.LINUX_FS]
        assert h.disk_guid == info.disk_guid
        r = FatReader(f, 1 * MiB, size=MiB)
        assert r.fat_type == 12
        assert r.volume_id == info.fat_volume_id
        assert r.files() == {"EFI/BOOT/BOOTX64.EFI": EFI_APP}
        assert r.stat("EFI/BOOT/BOOTX64.EFI").wrt_date == ((2023 - 1980) << 9) | (11 << 5) | 14
        f.seek(2 * MiB)
        assert f.read(8) == b"RedoxFS\0"
        assert f.read(0) == b"" and f.seek(0) == 0 and f.read(446) == bytes(446)
    assert w.calls == [dict(offset=2 * MiB, size=61 * MiB, uuid=info.redoxfs_uuid, ctime=1700000000)]
    assert info.redoxfs_offset == 2 * MiB and info.redoxfs_size == 61 * MiB
    assert list(tmp_path.iterdir()) != [] and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_bigger_esp(tmp_path):
    out, info, w = build(tmp_path, esp_mib=2)
    assert w.calls[0]["offset"] == 3 * MiB
    with open(out, "rb") as f:
        assert FatReader(f, MiB, size=2 * MiB).read("EFI/BOOT/BOOTX64.EFI") == EFI_APP


def test_deterministic_across_dirs(tmp_path):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    a, ia, _ = build(a_dir)
    b, ib, _ = build(b_dir)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert ia.disk_guid == ib.disk_guid and ia.redoxfs_uuid == ib.redoxfs_uuid
    # different content -> different ids
    c_dir = tmp_path / "c"
    c_dir.mkdir()
    _, ic, _ = build(c_dir, root=make_root(c_dir, {"etc/hostname": b"other\n"}))
    assert ic.disk_guid != ia.disk_guid and ic.redoxfs_uuid != ia.redoxfs_uuid
    assert len({ia.disk_guid, *[p.guid for p in ia.partitions]}) == 4


def test_explicit_ids(tmp_path):
    _, info, w = build(tmp_path, disk_guid="11111111-2222-3333-4444-555555555555", redoxfs_uuid=bytes(range(16)), fat_volume_id=0x12345678)
    assert info.disk_guid == uuid.UUID("11111111-2222-3333-4444-555555555555")
    assert w.calls[0]["uuid"] == bytes(range(16))
    with open(info.path, "rb") as f:
        f.seek(MiB + 39)
        assert f.read(4) == bytes.fromhex("78563412")


def test_sparse_512m(tmp_path):
    out, _, _ = build(tmp_path, size="512M")
    st = out.stat()
    assert st.st_size == 512 * MiB
    assert st.st_blocks * 512 < 1 * MiB, st.st_blocks


def test_missing_boot_files(tmp_path):
    root = make_root(tmp_path)
    no_initfs = Manifest([e for e in root if e.path != "usr/lib/boot/initfs"], root.base_dir)
    with pytest.raises(DiskImageError, match="no /usr/lib/boot/initfs"):
        build(tmp_path, root=no_initfs)
    build(tmp_path, root=no_initfs, require_boot_files=False)
    link = Manifest(
        [e for e in root if e.path != "usr/lib/boot/kernel"] + [Entry("usr/lib/boot/kernel", "symlink", 0o777, target="x")],
        root.base_dir,
    )
    with pytest.raises(DiskImageError, match="/usr/lib/boot/kernel is a symlink"):
        build(tmp_path, root=link)
    lib_link = Manifest(
        [e for e in root if not e.path.startswith("usr/lib")] + [Entry("usr/lib", "symlink", 0o777, target="x")], root.base_dir
    )
    with pytest.raises(DiskImageError, match="/usr/lib is a symlink"):
        build(tmp_path, root=lib_link)


def test_too_small_names_needed_size(tmp_path):
    class Big(StandIn):
        def size_needed(self, m):
            return 100 * MiB + 1

    with pytest.raises(DiskImageError, match=r"too small.*at least 104 MiB"):
        build(tmp_path, size="64M", writer=Big())
    with pytest.raises(DiskImageError, match="too small"):
        build(tmp_path, size="3M")
    assert list(p.name for p in tmp_path.iterdir()) == ["tree"]
    build(tmp_path, size="104M", writer=Big())


def test_esp_too_small_hint(tmp_path):
    with pytest.raises(DiskImageError, match="use --esp-size-mib 3"):
        build(tmp_path, efi_app=b"MZ" + bytes(2 * MiB))
    out, info, _ = build(tmp_path, efi_app=b"MZ" + bytes(2 * MiB), esp_mib=3)
    assert info.fat_type == 12


def test_bad_efi_and_failing_writer_leave_nothing(tmp_path):
    with pytest.raises(DiskImageError, match="MZ"):
        build(tmp_path, efi_app=b"\x7fELF")
    with pytest.raises(DiskImageError, match="cannot read the EFI"):
        build(tmp_path, efi_app=str(tmp_path / "missing.efi"))
    with pytest.raises(RuntimeError):
        build(tmp_path, writer=StandIn(fail=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]


def test_existing_output_replaced_atomically(tmp_path):
    out = tmp_path / "disk.img"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        build(tmp_path, writer=StandIn(fail=True))
    assert out.read_bytes() == b"old"
    build(tmp_path)
    assert out.stat().st_size == 64 * MiB


def test_cli_error_is_one_line(tmp_path):
    root = make_root(tmp_path)
    root = Manifest([e for e in root if e.path != "usr/lib/boot/kernel"], root.base_dir)
    mpath = tmp_path / "root.json"
    root.dump(str(mpath))
    efi = tmp_path / "BOOTX64.EFI"
    efi.write_bytes(EFI_APP)
    p = subprocess.run(
        [sys.executable, "-m", "redox_tools.image.diskimage", "create", "--manifest", str(mpath), "--efi", str(efi), "--size", "64M", "-o", str(tmp_path / "d.img")],
        cwd=PLUGINS,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: root manifest has no /usr/lib/boot/kernel: the bootloader loads it from RedoxFS "
        "(add it, or pass --no-require-boot-files for a non-bootable image)"
    ]
    assert not (tmp_path / "d.img").exists()


def test_manifest_digest_ignores_source_paths(tmp_path):
    a = make_root(tmp_path)
    b = Manifest.merge([a], base_dir="/elsewhere")
    assert diskimage.manifest_digest(a) == diskimage.manifest_digest(b)


def test_derived_ids_are_stable() -> None:
    """The ids derived from the inputs are part of every image's bytes: changing the seed's
    derivation (even its label) changes every image a user has already built or published."""
    from redox_tools.image.diskimage import derive_ids, input_seed
    from redox_tools.manifest import Manifest

    ids = derive_ids(input_seed(Manifest([]), b"EFI", 64 << 20, 1, 0, "BOOTX64.EFI"))
    assert ids.disk_guid == uuid.UUID("e0b53142-7250-4eca-8e44-b5fb9a0e9fa7")
    assert ids.redoxfs_uuid.hex() == "6526abb2ae4a496d844e5d05fd73c0e9"
    assert ids.fat_volume_id == 2054285071
