"""Disk images checked by independent tools: sgdisk, fsck.fat, mtools; and with the real
RedoxFS writer when it is importable."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from redox_tools.image import diskimage
from redox_tools.image.diskimage_test import EFI_APP, PLUGINS, StandIn, build, make_root
from redox_tools.formats.fat_integration_test import assert_fsck_clean

MiB = 1 << 20
ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")

needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("sgdisk", "fsck.fat", "mdir", "mtype")), reason="gdisk/dosfstools/mtools missing"
)


def real_redoxfs_available() -> bool:
    try:
        from redox_tools.redoxfs import size_needed, write_redoxfs  # noqa: F401
    except ImportError:
        return False
    return True


def check_with_tools(img: str, tmp_path, esp_mib: int = 1) -> None:
    p = subprocess.run(["sgdisk", "-v", img], capture_output=True, text=True)
    assert p.returncode == 0 and "No problems found" in p.stdout, p.stdout + p.stderr
    p = subprocess.run(["sgdisk", "-p", img], capture_output=True, text=True)
    assert "BIOS" in p.stdout and "EFI" in p.stdout and "REDOX" in p.stdout
    assert "EF00" in p.stdout and "EF02" in p.stdout and "8300" in p.stdout
    esp = str(tmp_path / "esp-extract.img")
    with open(img, "rb") as src, open(esp, "wb") as dst:
        src.seek(MiB)
        dst.write(src.read(esp_mib * MiB))
    p = subprocess.run(["fsck.fat", "-n", "-v", esp], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert_fsck_clean(p.stdout + p.stderr, esp)
    raw = subprocess.run(["mdir", "-i", f"{img}@@1M", "::/EFI/BOOT"], capture_output=True, env=ENV)
    assert raw.returncode == 0 and b"BOOTX64  EFI" in raw.stdout, raw.stdout + raw.stderr
    raw = subprocess.run(["mtype", "-i", f"{img}@@1M", "::/EFI/BOOT/BOOTX64.EFI"], capture_output=True, env=ENV)
    assert raw.returncode == 0 and raw.stdout == EFI_APP


@needs_tools
@pytest.mark.parametrize("size,esp_mib", [("64M", 1), ("512M", 1), ("100M", 4)])
def test_standin_image_passes_tools(tmp_path, size, esp_mib):
    out, info, _ = build(tmp_path, size=size, esp_mib=esp_mib)
    check_with_tools(str(out), tmp_path, esp_mib)


def _cli_build(tmp_path, sub: str) -> str:
    d = tmp_path / sub
    d.mkdir()
    root = make_root(d)
    mpath = d / "root.json"
    root.dump(str(mpath))
    efi = d / "BOOTX64.EFI"
    efi.write_bytes(EFI_APP)
    out = d / "disk.img"
    subprocess.run(
        [sys.executable, "-m", "redox_tools.image.diskimage", "create", "--manifest", str(mpath), "--efi", str(efi),
         "--size", "512M", "-o", str(out), "--source-date-epoch", "1700000000"],
        cwd=PLUGINS, check=True, capture_output=True,
    )
    return str(out)


@needs_tools
@pytest.mark.skipif(not real_redoxfs_available(), reason="redox_tools.redoxfs writer not importable yet")
def test_real_redoxfs_cli_build_deterministic_sparse_and_valid(tmp_path):
    a = _cli_build(tmp_path, "a")
    b = _cli_build(tmp_path, "b")
    assert diskimage.image_sha256(a) == diskimage.image_sha256(b)
    st = os.stat(a)
    assert st.st_size == 512 * MiB and st.st_blocks * 512 < 8 * MiB, st.st_blocks
    check_with_tools(a, tmp_path)
    with open(a, "rb") as f:
        f.seek(2 * MiB)
        assert f.read(8) == b"RedoxFS\0"
    try:
        from redox_tools.redoxfs import RedoxFSReader
    except ImportError:
        return
    with open(a, "rb") as f:
        r = RedoxFSReader(f, offset=2 * MiB)
        assert r.read("usr/lib/boot/kernel") == b"\x7fELF kernel"
        assert r.read("usr/lib/boot/initfs") == b"RedoxFtw initfs"


@needs_tools
def test_standin_deterministic_two_dirs(tmp_path):
    w = StandIn()
    outs = []
    for sub in ("x", "y"):
        d = tmp_path / sub
        d.mkdir()
        out, _, _ = build(d, size="512M", writer=w)
        outs.append(diskimage.image_sha256(str(out)))
    assert outs[0] == outs[1]
    small, _, _ = build(tmp_path / "x", name="small.img", size="8M", writer=w)
    assert diskimage.image_sha256(str(small)) == hashlib.sha256(small.read_bytes()).hexdigest()
    assert diskimage.parse_size("512M") == 512 * MiB
