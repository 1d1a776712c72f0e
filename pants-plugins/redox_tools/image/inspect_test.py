from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from redox_tools.formats import fat
from redox_tools.image.diskimage_test import PLUGINS, build, make_root
from redox_tools.image.inspect import InspectError, inspect_image
from redox_tools.manifest import Manifest

MiB = 1 << 20


def have(mod: str, name: str) -> bool:
    try:
        m = __import__(mod, fromlist=[name])
        return hasattr(m, name)
    except ImportError:
        return False


HAVE_RFS = have("redox_tools.redoxfs", "write_redoxfs") and have("redox_tools.redoxfs", "RedoxFSReader")
HAVE_INITFS = have("redox_tools.formats.initfs", "build_initfs")


def tiny_elf(entry: int = 0x401000) -> bytes:
    h = bytearray(64)
    h[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<HHIQ", h, 16, 2, 0x3E, 1, entry)
    return bytes(h)


def test_standin_disk(tmp_path):
    out, info, _ = build(tmp_path)
    text = inspect_image(str(out))
    assert "GPT disk, 67108864 bytes (64 MiB)" in text
    assert str(info.disk_guid).upper() in text
    assert "   1 BIOS     BIOS boot                  34       2047" in text
    assert "   2 EFI      EFI system               2048       4095      1 MiB" in text
    assert "   3 REDOX    Linux filesystem         4096     129023     61 MiB" in text
    assert "FAT12, 2003 clusters of 512 bytes" in text
    assert "/EFI/BOOT/BOOTX64.EFI" in text
    assert "RedoxFS (partition 3 REDOX, at 2 MiB):" in text
    assert "header hash BAD" in text  # the stand-in writes no real header


def test_no_redoxfs_reader_is_one_line_note(tmp_path, monkeypatch):
    out, _, _ = build(tmp_path)
    with open(out, "r+b") as f:  # blank the fake header: "none found" path
        f.seek(2 * MiB)
        f.write(bytes(8))
    assert "RedoxFS: none found" in inspect_image(str(out))
    monkeypatch.setitem(sys.modules, "redox_tools.formats.initfs", None)
    from redox_tools.image.inspect import describe_initfs

    assert describe_initfs(b"RedoxFtw", True) == [
        "  (initfs reader not available: import of redox_tools.formats.initfs halted; None in sys.modules)"
    ]


def test_bare_fat(tmp_path):
    img = tmp_path / "esp.img"
    fat.make_fat_image(str(img), size=MiB, files={"EFI/BOOT/BOOTX64.EFI": b"MZ", "a long name.txt": b"x"}, volume_id=0x12345678)
    text = inspect_image(str(img))
    assert text.splitlines()[0] == f"{img}: FAT volume, 1048576 bytes"
    assert "volume id 1234-5678" in text and "/a long name.txt" in text


def test_garbage_and_cli(tmp_path):
    g = tmp_path / "junk.bin"
    g.write_bytes(b"hello" * 1000)
    with pytest.raises(InspectError, match="unknown magic"):
        inspect_image(str(g))
    p = subprocess.run([sys.executable, "-m", "redox_tools.image.inspect", str(g)], cwd=PLUGINS, capture_output=True, text=True)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error: ")
    p = subprocess.run([sys.executable, "-m", "redox_tools.image.inspect", str(tmp_path / "nope")], cwd=PLUGINS, capture_output=True, text=True)
    assert p.returncode == 2 and "cannot open" in p.stderr


@pytest.mark.skipif(not HAVE_INITFS, reason="initfs writer not available")
def test_bare_initfs(tmp_path):
    from redox_tools.formats.initfs import build_initfs

    tree = tmp_path / "t"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin/init").write_bytes(b"#!init")
    (tree / "etc").mkdir()
    (tree / "etc/motd").write_bytes(b"hi")
    img = tmp_path / "initfs.img"
    img.write_bytes(build_initfs(Manifest.from_tree(str(tree)), tiny_elf(), check_bootstrap_layout=False))
    text = inspect_image(str(img))
    assert "initfs image" in text and "bootstrap entry 0x401000" in text
    assert "/bin/init" in text and "/etc/motd" in text


@pytest.mark.skipif(not (HAVE_RFS and HAVE_INITFS), reason="RedoxFS/initfs writers not available")
def test_real_disk_tree_and_initfs(tmp_path):
    from redox_tools.image.diskimage import create_disk_image
    from redox_tools.formats.initfs import build_initfs
    from redox_tools.redoxfs import write_redoxfs

    it = tmp_path / "it"
    (it / "etc/init.d").mkdir(parents=True)
    (it / "etc/init.d/00_base").write_bytes(b"start stuff")
    initfs_bytes = build_initfs(Manifest.from_tree(str(it)), tiny_elf(), check_bootstrap_layout=False)
    make_root(tmp_path)
    (tmp_path / "tree/usr/lib/boot/initfs").write_bytes(initfs_bytes)
    root = Manifest.from_tree(str(tmp_path / "tree"))
    out = tmp_path / "disk.img"
    info = create_disk_image(str(out), root=root, efi_app=b"MZ" + bytes(10), size="16M")
    text = inspect_image(str(out), tree=True, initfs=True)
    assert "header hash ok" in text and "size 13631488 bytes (13 MiB)" in text
    assert f"uuid {'%s' % __import__('uuid').UUID(bytes=info.redoxfs_uuid)}" in text
    assert " /usr/lib/boot/kernel" in text and " /etc/hostname" in text
    assert "initfs /usr/lib/boot/initfs:" in text and "/etc/init.d/00_base" in text
    # a bare RedoxFS file
    bare = tmp_path / "rfs.img"
    with open(bare, "w+b") as f:
        f.truncate(4 * MiB)
        write_redoxfs(f, root, offset=0, size=4 * MiB)
    text = inspect_image(str(bare), tree=True)
    assert "bare RedoxFS" in text and " /usr/lib/boot/initfs" in text and "bootstrap entry 0x401000" in text
