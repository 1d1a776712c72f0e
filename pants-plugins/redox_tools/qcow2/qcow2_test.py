"""redox_tools.qcow2: raw <-> qcow2, checked against the real qemu-img (qemu-utils)."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from redox_tools import qcow2
from redox_tools.qcow2 import CLUSTER_SIZE, Qcow2Error, from_raw, plan, to_raw

PLUGINS = Path(__file__).resolve().parent.parent.parent
QEMU_IMG = shutil.which("qemu-img")
MiB = 1 << 20
needs_qemu_img = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img (qemu-utils) not installed")

# Data at the start, across a cluster boundary, in the middle, at the very end (a partial last
# cluster: the size is not a multiple of 64 KiB), and a written-but-zero cluster.
SIZE = 5 * MiB + 1536
WRITES: Dict[int, bytes] = {
    0: b"\xeb\x3c\x90MBR" + b"\x01" * 500,
    CLUSTER_SIZE - 3: b"span",
    3 * MiB + 12345: os.urandom(100_000),
    SIZE - 7: b"the end",
}


def make_raw(path: Path, writes: Dict[int, bytes] = WRITES, size: int = SIZE, dense: bool = False) -> bytes:
    data = bytearray(size)
    for off, chunk in writes.items():
        data[off : off + len(chunk)] = chunk
    with open(path, "wb") as f:
        if dense:
            f.write(data)
        else:
            f.truncate(size)
            for off, chunk in writes.items():
                f.seek(off)
                f.write(chunk)
            f.seek(2 * MiB)
            f.write(bytes(CLUSTER_SIZE))  # allocated zeros: must not become a data cluster
    return bytes(data)


def qemu_img(*args: str) -> str:
    assert QEMU_IMG
    p = subprocess.run([QEMU_IMG, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.returncode == 0, p.stdout
    return p.stdout


def test_round_trip_keeps_every_byte_and_only_data_clusters(tmp_path: Path) -> None:
    raw = tmp_path / "disk.img"
    expected = make_raw(raw)
    layout = from_raw(str(raw), str(tmp_path / "disk.qcow2"))
    nonzero = [c for c in range(-(-SIZE // CLUSTER_SIZE)) if any(expected[c * CLUSTER_SIZE : (c + 1) * CLUSTER_SIZE])]
    assert list(layout.data_offsets) == nonzero
    assert os.path.getsize(tmp_path / "disk.qcow2") == layout.total_clusters * CLUSTER_SIZE
    out = tmp_path / "back.img"
    assert to_raw(str(tmp_path / "disk.qcow2"), str(out)) == SIZE
    assert out.read_bytes() == expected
    assert os.stat(out).st_blocks * 512 < 1 * MiB  # written sparse


def test_output_depends_only_on_the_bytes(tmp_path: Path) -> None:
    make_raw(tmp_path / "sparse.img")
    make_raw(tmp_path / "dense.img", dense=True)
    from_raw(str(tmp_path / "sparse.img"), str(tmp_path / "a.qcow2"))
    from_raw(str(tmp_path / "dense.img"), str(tmp_path / "b.qcow2"))
    from_raw(str(tmp_path / "sparse.img"), str(tmp_path / "c.qcow2"))
    a = (tmp_path / "a.qcow2").read_bytes()
    assert a == (tmp_path / "b.qcow2").read_bytes() == (tmp_path / "c.qcow2").read_bytes()


@needs_qemu_img
def test_qemu_img_reads_it_clean_and_identical(tmp_path: Path) -> None:
    raw = tmp_path / "disk.img"
    make_raw(raw)
    img = tmp_path / "disk.qcow2"
    from_raw(str(raw), str(img))
    check = qemu_img("check", str(img))
    assert "No errors were found" in check, check
    assert "leak" not in check
    assert "Images are identical" in qemu_img("compare", "-f", "raw", "-F", "qcow2", str(raw), str(img))
    qemu_img("convert", "-f", "qcow2", "-O", "raw", str(img), str(tmp_path / "by-qemu.img"))
    assert (tmp_path / "by-qemu.img").read_bytes() == raw.read_bytes()


@needs_qemu_img
def test_reads_what_qemu_img_writes(tmp_path: Path) -> None:
    raw = tmp_path / "disk.img"
    expected = make_raw(raw)
    for compat in ("0.10", "1.1"):  # qcow2 versions 2 and 3
        img = tmp_path / f"qemu-{compat}.qcow2"
        qemu_img("convert", "-f", "raw", "-O", "qcow2", "-o", f"compat={compat}", str(raw), str(img))
        out = tmp_path / f"back-{compat}.img"
        to_raw(str(img), str(out))
        assert out.read_bytes() == expected


def test_plan_counts_its_own_refcount_blocks() -> None:
    # 40 000 data clusters need two refcount blocks (32 768 16-bit counts each).
    layout = plan(8 << 30, list(range(0, 80_000, 2)))
    assert layout.refcount_blocks == 2
    assert layout.l1_entries == 16  # 8 GiB / 512 MiB per L2 table
    # header, refcount table, L1, 2 refcount blocks, 10 L2 tables (8192 clusters each), data
    assert len(layout.l2_offsets) == 10 and layout.total_clusters == 1 + 1 + 1 + 2 + 10 + 40_000
    with pytest.raises(Qcow2Error, match="multiple of 512"):
        plan(1000, [])


def test_metadata_refcounts_every_cluster_once() -> None:
    layout = plan(64 * MiB, [0, 5, 1023])
    meta = qcow2.metadata(layout)
    counts = struct.unpack_from(f">{layout.total_clusters}H", meta, layout.refcount_blocks_offset)
    assert counts == (1,) * layout.total_clusters
    assert struct.unpack_from(">H", meta, layout.refcount_blocks_offset + 2 * layout.total_clusters) == (0,)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "redox_tools.qcow2", *args],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PLUGINS)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def one_error(p: subprocess.CompletedProcess) -> str:
    errors: List[str] = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert p.returncode == 2 and len(errors) == 1 and "Traceback" not in p.stderr, p.stderr
    return errors[0]


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "not.qcow2").write_bytes(b"\0" * 4096)
    assert "not.qcow2: not a qcow2 image" in one_error(cli("raw", str(tmp_path / "not.qcow2"), str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()
    assert "no such file" in one_error(cli("from-raw", str(tmp_path / "missing.img"), "-o", str(tmp_path / "x")))
    raw = tmp_path / "disk.img"
    make_raw(raw)
    img = tmp_path / "disk.qcow2"
    from_raw(str(raw), str(img))
    # A compressed cluster (bit 62 of its L2 entry) is refused, naming the file.
    layout = plan(SIZE, sorted(from_raw(str(raw), str(img)).data_offsets))
    l2 = next(iter(layout.l2_offsets.values()))
    with open(img, "r+b") as f:
        f.seek(l2)
        (entry,) = struct.unpack(">Q", f.read(8))
        f.seek(l2)
        f.write(struct.pack(">Q", entry | qcow2.COMPRESSED))
    assert "compressed clusters" in one_error(cli("raw", str(img), str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()


def test_cli_round_trip(tmp_path: Path) -> None:
    raw = tmp_path / "disk.img"
    expected = make_raw(raw)
    assert cli("from-raw", str(raw), "-o", str(tmp_path / "d.qcow2")).returncode == 0
    p = cli("info", str(tmp_path / "d.qcow2"))
    assert p.returncode == 0 and f"virtual size {SIZE}" in p.stdout, p.stderr
    assert cli("raw", str(tmp_path / "d.qcow2"), str(tmp_path / "back.img")).returncode == 0
    assert (tmp_path / "back.img").read_bytes() == expected
