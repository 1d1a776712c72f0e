"""The FAT writer checked by independent tools: fsck.fat (dosfstools) and mtools."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from redox_tools.formats import fat
from redox_tools.formats.fat import FatReader

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("fsck.fat", "mdir", "mtype", "mkfs.fat")), reason="dosfstools/mtools not installed"
)

ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLS_NO_VFAT="0")


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, env=ENV)


def assert_fsck_clean(out: str, img: str) -> None:
    """After its boot-sector dump, a clean `fsck.fat -n -v` prints only its check headings and
    the summary line; any other line is a complaint."""
    lines = out.splitlines()
    start = lines.index("Checking for unused clusters.")
    for line in lines[start + 1 :]:
        ok = line in ("Checking free cluster summary.", "") or (line.startswith(img + ":") and "clusters" in line)
        assert ok, out


def files_for(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(300 * 1024))
    return {
        "EFI/BOOT/BOOTX64.EFI": b"MZ" + os.urandom(40000),
        "redox-live.iso": b"live" * 1000,
        "Some Dir/with a long name.data": b"z" * 3000,
        "NOTES.TXT": b"",
        "A/B/C/DEEP.BIN": str(big),
    }


@pytest.mark.parametrize(
    "size,ftype",
    [(MiB, None), (2 * MiB, None), (5 * MiB, None), (16 * MiB, None), (64 * MiB, None), (40 * MiB, 32), (520 * MiB, None)],
)
def test_fsck_and_mtools_agree(tmp_path, size, ftype):
    files = files_for(tmp_path)
    img = str(tmp_path / "esp.img")
    geo = fat.make_fat_image(img, size=size, files=files, fat_type=ftype, source_date_epoch=1700000000)
    if size == 520 * MiB:
        assert geo.fat_type == 32
    p = run("fsck.fat", "-n", "-v", img)
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode == 0, out
    assert_fsck_clean(out, img)
    assert f"{geo.fat_type if geo.fat_type != 32 else 28} bit entries" in out or f"{geo.fat_type} bit entries" in out
    p = run("mdir", "-i", img, "::/EFI/BOOT")
    assert p.returncode == 0 and b"BOOTX64  EFI" in p.stdout, p.stdout + p.stderr
    p = run("mdir", "-i", img, "::/")
    assert b"redox-live.iso" in p.stdout and b"1980" not in p.stdout and b"2023-11-14" in p.stdout
    for path in ("EFI/BOOT/BOOTX64.EFI", "redox-live.iso", "Some Dir/with a long name.data", "A/B/C/DEEP.BIN"):
        want = files[path] if isinstance(files[path], bytes) else open(files[path], "rb").read()
        p = run("mtype", "-i", img, "::/" + path)
        assert p.returncode == 0 and p.stdout == want, (path, p.stderr)
    with open(img, "rb") as f:
        got = FatReader(f).files()
    assert got["A/B/C/DEEP.BIN"] == open(files["A/B/C/DEEP.BIN"], "rb").read()


def test_reader_reads_mkfs_fat_volumes(tmp_path):
    """Round trip the other way: volumes made by mkfs.fat + mcopy, read by FatReader."""
    src = tmp_path / "payload.bin"
    payload = os.urandom(70000)
    src.write_bytes(payload)
    for ftype, blocks in ((12, 1024), (16, 32768), (32, 65536)):
        img = str(tmp_path / f"mk{ftype}.img")
        subprocess.run(["mkfs.fat", "-F", str(ftype), "-C", img, str(blocks)], check=True, capture_output=True)
        subprocess.run(["mmd", "-i", img, "::/EFI", "::/EFI/BOOT"], check=True, env=ENV)
        subprocess.run(["mcopy", "-i", img, str(src), "::/EFI/BOOT/BOOTX64.EFI"], check=True, env=ENV)
        subprocess.run(["mcopy", "-i", img, str(src), "::/A long file name.bin"], check=True, env=ENV)
        with open(img, "rb") as f:
            r = FatReader(f)
            assert r.fat_type == ftype
            assert r.read("EFI/BOOT/BOOTX64.EFI") == payload
            assert r.read("A long file name.bin") == payload
