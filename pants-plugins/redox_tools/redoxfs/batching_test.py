"""The batched paths of the RedoxFS writer: multi-array seahash, batched name hashes, the
end-of-file probe on reads, and the holes left for all-zero data pages."""
from __future__ import annotations

import hashlib
import io
import os

import numpy as np
import pytest

import redox_tools.seahash as sh
from redox_tools.manifest import DIR, FILE, Entry, Manifest
from redox_tools.redoxfs import write_redoxfs
from redox_tools.redoxfs.format import BLOCK_SIZE, RedoxFSError, name_hash, name_hashes
from redox_tools.redoxfs.reader import RedoxFSReader
from redox_tools.redoxfs.writer import _Node, _read_file
from redox_tools.seahash import seahash, seahash_arrays, seahash_many, seahash_rows

LENGTHS = [0, 1, 7, 8, 16, 24, 31, 32, 33, 40, 64, 65, 100, 129, 4096, 4104, 8192]


@pytest.mark.parametrize("group_rows,chunk_steps", [(3, 1), (5, 3), (16, 2), (1024, 32)])
def test_seahash_arrays_matches_scalar(monkeypatch: pytest.MonkeyPatch, group_rows: int, chunk_steps: int) -> None:
    monkeypatch.setattr(sh, "GROUP_ROWS", group_rows)
    monkeypatch.setattr(sh, "CHUNK_STEPS", chunk_steps)
    rng = np.random.default_rng(group_rows * 100 + chunk_steps)
    for _ in range(6):
        arrays = [
            rng.integers(0, 256, size=(int(rng.integers(0, 9)), int(rng.choice(LENGTHS))), dtype=np.uint8)
            for _ in range(int(rng.integers(1, 6)))
        ]
        for a, h in zip(arrays, seahash_arrays(arrays)):
            assert h.tolist() == [seahash(r.tobytes()) for r in a]
        for a in arrays:
            assert seahash_rows(a).tolist() == [seahash(r.tobytes()) for r in a]


def test_seahash_arrays_non_contiguous_rows() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, size=(12, 4096 + 64), dtype=np.uint8)
    rows = base[::2, 32 : 32 + 4096]
    (h,) = seahash_arrays([rows])
    assert h.tolist() == [seahash(r.tobytes()) for r in rows]


def test_seahash_many_and_name_hashes() -> None:
    rng = np.random.default_rng(4)
    items = [rng.integers(0, 256, size=int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 260, size=300)]
    items += [b"bin", b"usr", bytearray(b"kernel"), memoryview(b"initfs")]
    assert seahash_many(items) == [seahash(i) for i in items]
    names = [bytes(i) for i in items]
    assert name_hashes(names) == [name_hash(n) for n in names]
    assert seahash_many([b"a", b"bc"]) == [seahash(b"a"), seahash(b"bc")]
    assert seahash_many([]) == []


def _file_node(path: str, size: int) -> _Node:
    n = _Node("f", b"f", FILE, 0o100644, 0, 0, 0, 0)
    n.src = path
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
