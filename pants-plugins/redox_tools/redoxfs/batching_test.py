"""The batched paths of the RedoxFS writer: seahash of arrays, batched name hashes, the
end-of-file probe on reads, and the holes left for all-zero data pages."""
from __future__ import annotations

import hashlib
import io
import os

import numpy as np
import pytest

from redox_tools.manifest import DIR, FILE, Entry, Manifest
from redox_tools.redoxfs import write_redoxfs
from redox_tools.redoxfs.format import BLOCK_SIZE, RedoxFSError, name_hash, name_hashes
from redox_tools.redoxfs.reader import RedoxFSReader
from redox_tools.redoxfs.writer import _Node, _read_file
from redox_tools.formats.seahash import seahash, seahash_arrays, seahash_many, seahash_reference


def test_seahash_arrays_non_contiguous_rows() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, size=(12, 4096 + 64), dtype=np.uint8)
    rows = base[::2, 32 : 32 + 4096]
    (h,) = seahash_arrays([rows])
    assert h.tolist() == [seahash_reference(r.tobytes()) for r in rows]


def test_seahash_many_and_name_hashes() -> None:
    rng = np.random.default_rng(4)
    items = [rng.integers(0, 256, size=int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 260, size=300)]
    items += [b"bin", b"usr", bytearray(b"kernel"), memoryview(b"initfs")]
    assert seahash_many(items) == [seahash_reference(i) for i in items]
    names = [bytes(i) for i in items]
    assert name_hashes(names) == [name_hash(n) for n in names]
    assert seahash_many([b"a", b"bc"]) == [seahash(b"a"), seahash(b"bc")]
    assert seahash_many([]) == []


def _file_node(path: str, size: int) -> _Node:
    n = _Node(Entry(path="f", kind=FILE, mode=0o644, source=path, sha256="0" * 64, size=size), b"f", FILE, 0o100644, 0)
    n.size = size
    return n


def test_read_probe_detects_growth_and_shrink(tmp_path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x" * 5000)
    buf = bytearray(5000)
    _read_file(_file_node(str(p), 5000), memoryview(buf), 0, True)
    assert bytes(buf) == b"x" * 5000
    # grew past the planned size
    with pytest.raises(RedoxFSError, match="changed size"):
        _read_file(_file_node(str(p), 4000), memoryview(bytearray(4000)), 0, True)
    # not the last piece: no probe
    _read_file(_file_node(str(p), 9000), memoryview(bytearray(4000)), 0, False)
    # shorter than planned
    with pytest.raises(RedoxFSError, match="shorter"):
        _read_file(_file_node(str(p), 6000), memoryview(bytearray(6000)), 0, True)
    with pytest.raises(RedoxFSError, match="cannot read"):
        _read_file(_file_node(str(tmp_path / "missing"), 10), memoryview(bytearray(10)), 0, True)


def test_zero_pages_stay_holes_and_match_a_plain_write(tmp_path) -> None:
    rng = np.random.default_rng(9)
    src = tmp_path / "src"
    src.mkdir()
    parts = {
        "zeros": bytes(300_000),
        "mixed": rng.integers(0, 256, 9000, dtype=np.uint8).tobytes() + bytes(50_000) + b"tail",
        "first_word_zero": bytes(8) + rng.integers(1, 256, 4088, dtype=np.uint8).tobytes() + bytes(8) + b"z" * 100,
        "big": rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes() + bytes(600_000) + b"end",
    }
    for name, data in parts.items():
        (src / name).write_bytes(data)
    entries = [
        Entry(path=name, kind=FILE, mode=0o644, source=str(src / name), size=len(data),
              sha256=hashlib.sha256(data).hexdigest())
        for name, data in parts.items()
    ]
    entries.append(Entry(path="d", kind=DIR, mode=0o755))
    man = Manifest(entries, base_dir=str(tmp_path))
    size = 8 << 20
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(size)
    with open(img, "r+b") as f:
        write_redoxfs(f, man, offset=0, size=size, ctime=1)
    # a BytesIO target takes the path that writes every page: the same bytes
    bio = io.BytesIO(bytes(size))
    write_redoxfs(bio, man, offset=0, size=size, ctime=1)
    data = img.read_bytes()
    assert data == bio.getvalue()
    allocated = os.stat(img).st_blocks * 512
    content_pages = sum(-(-len(d) // BLOCK_SIZE) for d in parts.values())
    assert allocated < content_pages * BLOCK_SIZE  # the zero pages were not written
    fs = RedoxFSReader(io.BytesIO(data))
    for name, d in parts.items():
        assert fs.read("/" + name) == d
