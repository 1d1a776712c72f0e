from __future__ import annotations

import hashlib
import io
import os
from typing import Tuple

import pytest

from redox_tools.manifest import FILE, SYMLINK, Entry, Manifest
from redox_tools.redoxfs import RedoxFSError, RedoxFSReader, size_needed, write_redoxfs
from redox_tools.redoxfs import vectors
from redox_tools.redoxfs.tree_testutil import Tree
from redox_tools.redoxfs.format import BLOCK_SIZE, name_hash
from redox_tools.formats.seahash import seahash


def _write_image(path: str, m: Manifest, size: int, offset: int = 0, **kw) -> bytes:
    with open(path, "w+b") as f:
        f.truncate(offset + size)
        write_redoxfs(f, m, offset=offset, size=size, **kw)
    with open(path, "rb") as f:
        return f.read()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------------------------------------
# §15 test vectors


def test_canonical_small_image_15_2(tmp_path) -> None:
    m, kw, sha = vectors.manifest_15_2(str(tmp_path))
    img = _write_image(str(tmp_path / "a.img"), m, **kw)
    assert _sha(img) == sha
    blk = lambda i, n=1: img[i * BLOCK_SIZE : (i + n) * BLOCK_SIZE]  # noqa: E731
    # §5.4 header bytes and hash
    assert blk(0)[:80].hex() == (
        "5265646f78465300" "0800000000000000" "00112233445566778899aabbccddeeff" "0000200000000000"
        "0000000000000000" "0011010000000000" "8ed4a8a9c68dd011" "0012010000000000" "9cc4e1e90eaa1c7d"
    )
    assert blk(0)[4072:].hex() == "536f2f5cfa342405" "0000000000000000" "536f2f5cfa342405"
    # §15.2 node and block hashes
    nodes = {256: 0x559DAE76B81155FB, 258: 0x0F231DA89B6CFD41, 259: 0x9F8811B041F89AE3, 260: 0x3449B11F8D6923BA,
             262: 0x50418DD819D67AF9, 264: 0x1A5CDA1CF7BA341D, 266: 0xC56390C622234F87}
    others = {257: 0x09F89D7CF814537A, 261: 0x7DF71A29E8A31797, 263: 0xF8E35DBBD7DA96DB, 265: 0x0CE2776DD12D9AC9,
              270: 0x58DB52B5BD05EFA7, 271: 0x90970BF2A9F9E00A, 272: 0x2531758C13C4BB72, 273: 0x11D08DC6A9A8D48E,
              274: 0x7D1CAA0EE9E1C49C}
    for i, h in {**nodes, **others}.items():
        assert seahash(blk(i)) == h, i
    assert seahash(blk(268, 2)) == 0xBEF7818D28CEEE0D
    assert blk(257)[:30].hex() == "0400000003757372" "030000000968656c6c6f2e747874" "020000000362696e"
    assert blk(257)[4092:].hex() == "03001e00"


def test_canonical_medium_image_15_3(tmp_path) -> None:
    m, kw, sha = vectors.manifest_15_3(str(tmp_path))
    img_path = str(tmp_path / "b.img")
    img = _write_image(img_path, m, **kw)
    assert _sha(img) == sha
    with open(img_path, "rb") as f:
        fs = RedoxFSReader(f)
        assert int.from_bytes(fs.header[4088:4096], "little") == 0x32DFD5AF83BC3824
        assert int.from_bytes(fs.header[48:56], "little") == 0x1B8200
        assert int.from_bytes(fs.header[64:72], "little") == 0x1B8300
        assert seahash(fs.read("/usr/lib/boot/kernel")) == 0x1A73759EF1076620
        assert seahash(fs.read("/usr/lib/boot/initfs")) == 0x8174FCB55B6D4D9A
        rep = fs.check(strict=True)
        assert rep.errors == [] and rep.warnings == []
        assert rep.nodes == 1514
        assert rep.used_blocks - 256 == 6747
        assert rep.free_blocks == 9381
        assert fs.stat("/tmp").perm == 0o1777
        many = fs.stat("/usr/many")
        assert many.size > BLOCK_SIZE  # HTree above several DirLists
        assert fs.stat("/usr/many/f0007-xxxxxxx").uid == 1000


def test_15_2_inside_a_disk_at_an_offset(tmp_path) -> None:
    m, kw, sha = vectors.manifest_15_2(str(tmp_path))
    img = _write_image(str(tmp_path / "d.img"), m, offset=2 << 20, **kw)
    assert img[: 2 << 20] == bytes(2 << 20)
    assert _sha(img[2 << 20 :]) == sha
    with open(tmp_path / "d.img", "rb") as f:
        assert RedoxFSReader(f, 2 << 20).read("/hello.txt") == b"Hello, RedoxFS!\n"
        fs = RedoxFSReader(f, 0, scan=True)
        assert fs.start == 2 << 20 and fs.readlink("bin") == "usr/bin"


def test_stale_region_is_cleared(tmp_path) -> None:
    """Reusing a file full of old data: the writer punches a hole (or clears stale headers)."""
    m, kw, sha = vectors.manifest_15_2(str(tmp_path))
    old = tmp_path / "old.img"
    old_header = _write_image(str(old), m, size=kw["size"], uuid=bytes(16), ctime=5)[:BLOCK_SIZE]
    with open(old, "r+b") as f:
        f.write(b"\x5a" * (2 << 20))
        for slot in (3, 200):  # stale valid headers in the ring
            f.seek(slot * BLOCK_SIZE)
            f.write(old_header)
    img = _write_image(str(old), m, **kw)
    assert _sha(img) == sha


def test_file_object_without_fd_and_stale_bytes() -> None:
    """No fileno (BytesIO): stale bytes stay in free blocks, ring is cleared, image checks OK."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        m, kw, _sha_ = vectors.manifest_15_2(d)
        buf = io.BytesIO(b"\xff" * kw["size"])
        write_redoxfs(buf, m, offset=0, **kw)
    img = buf.getvalue()
    assert img[BLOCK_SIZE : 256 * BLOCK_SIZE] == bytes(255 * BLOCK_SIZE)
    fs = RedoxFSReader(io.BytesIO(img))
    assert fs.check(strict=True).ok
    assert fs.read("/usr/lib/boot/kernel") == b"\x7fELF" + bytes(4996)


# ---------------------------------------------------------------------------------------------
# round trip


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory) -> Tuple[Tree, str]:
    root = tmp_path_factory.mktemp("rt")
    t = Tree(root)
    t.dir("etc", 0o750, 0, 10, 111)
    t.file("etc/empty", b"", 0o600, 5, 6, 222)
    t.file("etc/passwd", b"root:x:0:0::/root:/bin/ion\n", 0o644, 0, 0, 333)
    t.file("inline-max", b"i" * 3967, 0o4755, 1, 2, 444)
    t.file("first-record", b"r" * 3968)
    t.file("setgid", os.urandom(131072), 0o2755)  # exactly one full record
    t.file("multi", os.urandom(3 * 131072 + 37856))  # last record level 4
    # 16 MiB + 1 record + a bit: records 128.. go through a level1 BlockList; zero runs become
    # zero pages the writer does not write
    big = t.sparse_file("usr/lib/boot/initfs", (129 << 17) + 5, {0: b"RedoxFtw", 5 << 20: os.urandom(300000),
                                                                (129 << 17): b"tail!"})
    assert len(big) == (129 << 17) + 5
    t.link("bin", "usr/bin")
    t.link("abs", "/scheme/null")
    t.link("longlink", "d/" * 2100)  # 4200-byte target: stored in 4 KiB records
    t.dir("usr/bin")
    for i in range(700):  # > one DirList: needs an HTree
        t.file(f"usr/share/many/entry-{i:04d}-" + "n" * (i % 50), str(i).encode(), 0o644, 1000 + i % 3, 100, 10 + i)
    deep = "/".join(f"d{i}" for i in range(60))
    t.file(deep + "/leaf", b"deep", 0o640)
    t.file("unicode/h\u00e9llo w\u00f6rld \u2603", b"snow")
    t.file("maxname/" + "n" * 252, b"252")
    t.file("tmpdir/.hidden", b"h")
    t.dir("tmpdir", 0o1777)
    img = str(root / "rt.img")
    _write_image(img, t.manifest(), 64 << 20, ctime=1234)
    return t, img


def test_roundtrip_contents_and_metadata(roundtrip) -> None:
    t, img = roundtrip
    with open(img, "rb") as f:
        fs = RedoxFSReader(f)
        for path, data in t.content.items():
            assert fs.read(path) == data, path
            assert b"".join(fs.iter_read(path)) == data
        by_path = {e.path: e for e in t.entries}
        seen = set()
        for path, st in fs.walk():
            p = path.lstrip("/")
            seen.add(p)
            e = by_path.get(p)
            if e is None:  # root and implied directories
                assert st.is_dir and st.perm == 0o755 and st.uid == 0
                continue
            assert (st.perm, st.uid, st.gid, st.mtime, st.atime) == (e.mode, e.uid, e.gid, e.mtime, e.mtime), p
            assert st.ctime == 1234 and st.links == 1
            assert st.kind == e.kind
            if e.kind == SYMLINK:
                assert fs.readlink(p) == e.target and st.size == len(e.target.encode())
        assert set(by_path) <= seen
        assert fs.stat("/").mtime == 1234  # root takes ctime


def test_roundtrip_layout_details(roundtrip) -> None:
    t, img = roundtrip
    with open(img, "rb") as f:
        fs = RedoxFSReader(f)
        assert fs.stat("inline-max").inline and fs.stat("inline-max").blocks == 1
        assert not fs.stat("first-record").inline and fs.stat("first-record").blocks == 1 + 1
        assert fs.stat("etc/empty").inline and fs.stat("etc/empty").size == 0
        assert fs.stat("setgid").blocks == 1 + 32 and fs.stat("setgid").perm == 0o2755
        assert fs.stat("multi").blocks == 1 + 3 * 32 + 16
        initfs = fs.stat("usr/lib/boot/initfs")
        assert initfs.blocks == 1 + 129 * 32 + 1 + 1  # 129 full records, last one (level 0), one BlockList
        assert fs.stat("longlink").record_level == 0 and fs.stat("longlink").blocks == 1 + 2
        many = fs.stat("usr/share/many")
        assert many.size == BLOCK_SIZE * (many.blocks - 1) and many.blocks > 2
        names = fs.listdir("usr/share/many")
        assert len(names) == 700
        assert [name_hash(n.encode()) for n in names] == sorted(name_hash(n.encode()) for n in names)
        rep = fs.check(strict=True)
        assert rep.warnings == []


def test_roundtrip_is_sparse(roundtrip) -> None:
    t, img = roundtrip
    st = os.stat(img)
    content = sum(len(v) for v in t.content.values())
    # 17 MB initfs is mostly zero pages: far less than its size is allocated
    assert st.st_blocks * 512 < content // 2


def test_determinism_and_default_uuid(tmp_path) -> None:
    m, kw, sha = vectors.manifest_15_2(str(tmp_path))
    a = _write_image(str(tmp_path / "a.img"), m, size=kw["size"])
    b = _write_image(str(tmp_path / "b.img"), m, size=kw["size"])
    assert _sha(a) == _sha(b)
    uuid = a[16:32]
    assert uuid != bytes(16) and uuid[6] >> 4 == 4 and uuid[8] >> 6 == 2
    c = _write_image(str(tmp_path / "c.img"), m, size=kw["size"], ctime=99)
    assert c[16:32] != uuid  # other input, other uuid


def test_big_sparse_filesystem_with_little_data(tmp_path) -> None:
    m, kw, _ = vectors.manifest_15_2(str(tmp_path))
    path = tmp_path / "big.img"
    with open(path, "w+b") as f:
        f.truncate(8 << 30)
        write_redoxfs(f, m, offset=0, size=8 << 30)
    assert os.stat(path).st_blocks * 512 < 1 << 20
    with open(path, "rb") as f:
        fs = RedoxFSReader(f)
        assert fs.size == 8 << 30
        assert fs.check(strict=True).free_blocks == (8 << 30) // BLOCK_SIZE - 256 - 18


def test_size_needed_is_exact(tmp_path) -> None:
    m, kw, _ = vectors.manifest_15_2(str(tmp_path))
    need = size_needed(m)
    assert need % BLOCK_SIZE == 0
    _write_image(str(tmp_path / "ok.img"), m, need)
    with pytest.raises(RedoxFSError, match=rf"image too small: .*needs at least {need} bytes"):
        _write_image(str(tmp_path / "small.img"), m, need - BLOCK_SIZE)
    with pytest.raises(RedoxFSError, match="multiple of 4096"):
        _write_image(str(tmp_path / "odd.img"), m, need + 512)


def test_overlong_name_is_named(tmp_path) -> None:
    t = Tree(tmp_path)
    t.file("ok/" + "a" * 252, b"x")
    t.file("bad/" + "b" * 253, b"y")
    t.link("c" * 300, "x")
    with pytest.raises(RedoxFSError, match=r"longer than 252 bytes.*/bad/bbbb.* \(253 bytes\).*/ccc.* \(300 bytes\)"):
        _write_image(str(tmp_path / "x.img"), t.manifest(), 4 << 20)
    with pytest.raises(RedoxFSError, match="longer than 252"):
        size_needed(t.manifest())


def test_entry_below_a_file_and_missing_source(tmp_path) -> None:
    t = Tree(tmp_path)
    t.file("a", b"x")
    t.dir("a/b")
    with pytest.raises(RedoxFSError, match=r"/a/b is below /a, which is a file"):
        _write_image(str(tmp_path / "x.img"), t.manifest(), 4 << 20)
    m = Manifest([Entry("gone", FILE, 0o644, source=str(tmp_path / "nope"), sha256="0" * 64)])
    with pytest.raises(RedoxFSError, match="/gone: cannot read its source"):
        _write_image(str(tmp_path / "y.img"), m, 4 << 20)


def test_huge_directory_two_htree_levels(tmp_path) -> None:
    """~205 DirLists: an HTree of depth 2. Symlinks keep it cheap (no source files)."""
    t = Tree(tmp_path)
    n = 4300
    for i in range(n):
        t.link(f"d/{i:05d}" + "z" * 190, f"t{i}")
    img = tmp_path / "h.img"
    _write_image(str(img), t.manifest(), 64 << 20)
    with open(img, "rb") as f:
        fs = RedoxFSReader(f)
        found = fs._dir_lookup(fs._node(1), b"d")
        assert found is not None
        root = fs._node(found)
        dir_root = fs._dir_root(root)
        assert dir_root is not None and dir_root[0] == 2
        assert len(fs.listdir("d")) == n
        for i in range(0, n, 97):
            assert fs.readlink(f"d/{i:05d}" + "z" * 190) == f"t{i}"
        assert fs.check(strict=True).nodes == n + 2


def test_source_that_differs_from_its_manifest_entry_is_refused(tmp_path) -> None:
    """What a manifest promises, the writer checks (as the initfs writer does): content and size."""
    small = tmp_path / "small"
    small.write_bytes(b"hello")
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 5000)  # records in several batches' worth of pieces
    good_big = hashlib.sha256(big.read_bytes()).hexdigest()
    for entries, what in (
        ([Entry("small", FILE, 0o644, source=str(small), sha256="1" * 64, size=5)], "/small"),
        ([Entry("big", FILE, 0o644, source=str(big), sha256="2" * 64, size=1280000)], "/big"),
        ([Entry("big", FILE, 0o644, source=str(big), sha256=good_big, size=1280001)], "/big"),
    ):
        with open(tmp_path / "img", "wb") as f:
            f.truncate(8 << 20)
        with open(tmp_path / "img", "r+b") as f:
            with pytest.raises(RedoxFSError, match=f"^{what}: source .* manifest"):
                write_redoxfs(f, Manifest(entries), offset=0, size=8 << 20)
        # nothing readable was left behind: the header (written last) is absent
        assert (tmp_path / "img").read_bytes()[:8] == bytes(8)


def test_a_changed_source_is_the_file_named_not_a_file_after_it(tmp_path) -> None:
    """A mismatch in one batch used to stop that batch's check half-way: a file whose first
    records were in it then failed its own check in the next batch, and that innocent file was
    the one named (found by the writers' differential fuzzing). Batch 1 is `a` (32 MiB); batch
    2 holds the changed `b` and the start of `c`, whose rest is batch 3."""
    sizes = {"a": 32 << 20, "b": 4097, "c": 40 << 20}
    entries = []
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(bytes(size))
        digest = hashlib.sha256(bytes(size)).hexdigest() if name != "b" else "3" * 64
        entries.append(Entry(name, FILE, 0o644, source=str(tmp_path / name), sha256=digest, size=size))
    with open(tmp_path / "img", "wb") as f:
        f.truncate(96 << 20)
    with open(tmp_path / "img", "r+b") as f:
        with pytest.raises(RedoxFSError, match="^/b: source .* no longer matches the manifest"):
            write_redoxfs(f, Manifest(entries), offset=0, size=96 << 20)
