"""RedoxFS reader under hostile input: regression tests (issue 11, defects 1 and 6) and the
fixed-seed fuzz target (structure-aware mutations with every hash recomputed)."""
from __future__ import annotations

import io
import os
import struct

import pytest

from redox_tools.fuzz.harness import ACCEPTED, CLEAN, MEMORY, OTHER
from redox_tools.fuzz.redoxfs import RfsModel
from redox_tools.fuzz.targets import bounded, fuzz_redoxfs
from redox_tools.image.inspect import inspect_image
from redox_tools.manifest import Manifest
from redox_tools.redoxfs import RedoxFSError, RedoxFSReader, write_redoxfs
from redox_tools.redoxfs import vectors
from redox_tools.formats.seahash import seahash

MiB = 1 << 20


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> RfsModel:
    d = str(tmp_path_factory.mktemp("rfs"))
    m, kw, _sha = vectors.manifest_15_2(d)
    buf = io.BytesIO(bytes(kw["size"]))
    write_redoxfs(buf, m, offset=0, size=kw["size"], uuid=kw["uuid"], ctime=kw["ctime"])
    return RfsModel(buf.getvalue())


def node_block(img: bytes, path: str) -> int:
    fs = RedoxFSReader(io.BytesIO(img))
    return fs._node_ptr(fs.stat(path).id)[0] >> 8


@pytest.mark.parametrize("size", [1 << 40, 3968, 1 << 33])
def test_inline_size_beyond_inline_capacity_is_a_format_error(model: RfsModel, size: int) -> None:
    img = model.set_node_field(node_block(model.img, "/hello.txt"), "size", size)
    fs = RedoxFSReader(io.BytesIO(img))
    assert fs.stat("/hello.txt").inline  # the hashes are valid: only the size is hostile
    with pytest.raises(RedoxFSError, match="inline"):
        fs.read("/hello.txt", limit=1 << 62)
    assert not fs.check().ok


@pytest.mark.parametrize("size", [1 << 40, 8 << 30, (2 << 20) + 1])
def test_file_size_beyond_the_filesystem_is_refused_before_reading(model: RfsModel, size: int) -> None:
    img = model.set_node_field(node_block(model.img, "/usr/lib/boot/kernel"), "size", size)
    fs = RedoxFSReader(io.BytesIO(img))
    with pytest.raises(RedoxFSError, match="larger than the filesystem"):
        fs.iter_read("/usr/lib/boot/kernel", limit=1 << 62)  # refused up front, not while streaming
    with pytest.raises(RedoxFSError, match="larger than the filesystem"):
        fs.read("/usr/lib/boot/kernel", limit=1 << 62)


def test_reads_are_capped_by_the_container(model: RfsModel) -> None:
    # a header claiming 1 GiB on a 2 MiB image: a 1 MiB all-holes file fits the claim, not the image
    b = bytearray(model.set_node_field(node_block(model.img, "/usr/lib/boot/kernel"), "size", 4 << 20))
    struct.pack_into("<Q", b, 32, 1 << 30)
    h = seahash(bytes(b[:4072]))
    struct.pack_into("<QQ", b, 4072, h, 0)
    struct.pack_into("<Q", b, 4088, h)
    fs = RedoxFSReader(io.BytesIO(bytes(b)))
    with pytest.raises(RedoxFSError, match="larger than the filesystem"):
        fs.read("/usr/lib/boot/kernel", limit=1 << 62)
    with pytest.raises(RedoxFSError, match="exceeds its container"):
        RedoxFSReader(io.BytesIO(bytes(b)), size=len(b))


def _bare_rfs(tmp_path, initfs_size: int) -> str:
    tree = tmp_path / "tree"
    (tree / "usr/lib/boot").mkdir(parents=True)
    (tree / "usr/lib/boot/initfs").write_bytes(b"RedoxFtw" + bytes(5000))
    root = Manifest.from_tree(str(tree))
    buf = io.BytesIO(bytes(8 * MiB))
    write_redoxfs(buf, root, offset=0, size=8 * MiB)
    m = RfsModel(buf.getvalue())
    img = m.set_node_field(node_block(m.img, "/usr/lib/boot/initfs"), "size", initfs_size)
    out = tmp_path / "rfs.img"
    out.write_bytes(img)
    return str(out)


def test_inspect_does_not_read_an_initfs_the_image_cannot_hold(tmp_path) -> None:
    text = inspect_image(_bare_rfs(tmp_path, 100 << 20))  # under the 256 MiB cap, over the image
    assert "/usr/lib/boot/initfs: node" in text and "larger than the filesystem" in text


def test_inspect_caps_the_initfs_at_its_maximum(tmp_path, monkeypatch) -> None:
    from redox_tools.image import inspect

    monkeypatch.setattr(inspect, "INITFS_MAX", 4096)  # the 256 MiB cap, scaled down
    text = inspect_image(_bare_rfs(tmp_path, 5008))
    assert "above the read limit 4096" in text


def test_inspect_notices_a_redoxfs_larger_than_its_partition(tmp_path) -> None:
    from redox_tools.image.diskimage import create_disk_image
    from redox_tools.image.diskimage_test import make_root

    out = tmp_path / "disk.img"
    create_disk_image(str(out), root=make_root(tmp_path), efi_app=b"MZ" + bytes(10), size="16M")
    text = inspect_image(str(out))
    start = 2 * MiB if "at 2 MiB):" in text else None
    assert start is not None and "header hash ok" in text
    with open(out, "r+b") as f:  # every header in the ring now claims the whole disk
        for slot in range(256):
            f.seek(start + slot * 4096)
            h = bytearray(f.read(4096))
            if h[:8] != b"RedoxFS\0":
                continue
            struct.pack_into("<Q", h, 32, os.path.getsize(out) - start)
            hh = seahash(bytes(h[:4072]))
            struct.pack_into("<QQQ", h, 4072, hh, 0, hh)
            f.seek(start + slot * 4096)
            f.write(h)
    text = inspect_image(str(out), tree=True)
    assert "header hash ok" in text
    assert "exceeds its container" in text and " /etc/hostname" not in text


def test_fuzz_redoxfs_reader_fixed_seed() -> None:
    """300 structure-aware mutations, every hash recomputed: RedoxFSError only, and no case
    grows the process by more than twice the image (the old reader took 2^40-byte sizes at
    their word)."""
    tally = bounded(fuzz_redoxfs, 300, 7, judge=False)
    assert [tally.counts[c] for c in (OTHER, MEMORY)] == [0, 0], tally.examples[:5]
    assert tally.counts[ACCEPTED] > 30 and tally.counts[CLEAN] > 100


def test_the_memory_bound_catches_a_runaway_read() -> None:
    from redox_tools.fuzz.harness import Tally, arm, isolated, run_case

    def target() -> Tally:
        t = Tally("x")
        arm()
        run_case(t, "big", lambda: bytes(1 << 30) and None, (RedoxFSError,))
        run_case(t, "small", lambda: bytes(1 << 20) and None, (RedoxFSError,))
        return t

    t = isolated(target, 64 << 20)
    assert (t.counts[MEMORY], t.counts[ACCEPTED]) == (1, 1)
