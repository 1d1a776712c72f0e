from __future__ import annotations

import io

import pytest

from redox_tools.bench.redoxfs_fuzz import run as fuzz_reader
from redox_tools.fuzz.harness import MEMORY, OTHER
from redox_tools.redoxfs import RedoxFSError, RedoxFSReader
from redox_tools.redoxfs import vectors
from redox_tools.redoxfs.format import (
    lz4_block_decompress,
    name_hash,
    next_node_id,
    record_level_for,
)
from redox_tools.redoxfs.reader import NotFoundError
from redox_tools.formats.seahash import seahash


@pytest.fixture(scope="module")
def upstream() -> RedoxFSReader:
    return RedoxFSReader(io.BytesIO(vectors.image_15_4()))


def test_upstream_image_15_4(upstream: RedoxFSReader) -> None:
    fs = upstream
    assert fs.generation == 4 and fs.header_slot == 4
    assert [g for _s, g in fs.ring_generations] == [0, 1, 2, 3, 4]
    assert fs.size == 2097152
    assert fs.uuid_str == "00112233-4455-6677-8899-aabbccddeeff"
    assert fs.free_blocks() == 238
    kernel = fs.read("/usr/lib/boot/kernel")  # an LZ4-compressed 8 KiB record
    assert len(kernel) == 5000 and seahash(kernel) == 0x4121E0F5E222C60D
    assert seahash(fs.read("/hello.txt")) == 0xC694BE69CED03E3E
    assert fs.readlink("/bin") == "usr/bin" and seahash(b"usr/bin") == 0x3E6CD26A6DD3D089
    ids = {p: st.id for p, st in fs.walk()}
    assert ids == {"/": 1, "/hello.txt": 2, "/usr": 3, "/usr/lib": 4, "/usr/lib/boot": 5,
                   "/usr/lib/boot/kernel": 6, "/bin": 7}
    for p in ("/", "/usr", "/usr/lib", "/usr/lib/boot"):
        st = fs.stat(p)
        assert (st.size, st.blocks) == (4096, 2)
    rep = fs.check(strict=True)
    assert rep.errors == [] and rep.free_blocks == 238
    assert any("leaked" in w for w in rep.warnings)  # upstream leaks block 256


def test_lookup_errors(upstream: RedoxFSReader) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        upstream.stat("/usr/nope")
    with pytest.raises(NotFoundError, match="not a directory"):
        upstream.stat("/hello.txt/x")
    with pytest.raises(NotFoundError, match="not a directory"):
        upstream.stat("/bin/x")  # symlinks are not followed
    with pytest.raises(RedoxFSError, match="is a directory"):
        upstream.read("/usr")
    with pytest.raises(RedoxFSError, match="read limit"):
        upstream.read("/usr/lib/boot/kernel", limit=100)
    assert upstream.exists("usr/lib/../lib/boot") and not upstream.exists("boot")


def test_garbage_inputs() -> None:
    for data in (b"", b"RedoxFS\0" + bytes(100), bytes(8192), b"\xff" * 4096 * 3):
        with pytest.raises(RedoxFSError):
            RedoxFSReader(io.BytesIO(data))
    img = bytearray(vectors.image_15_4())
    img[4] ^= 1  # breaks slot 0's signature
    with pytest.raises(RedoxFSError, match="no valid RedoxFS"):
        RedoxFSReader(io.BytesIO(bytes(img)))
    img = bytearray(vectors.image_15_4())
    img[4072] ^= 1  # encrypted_hash differs -> "encrypted"
    img[4 * 4096 + 4072] ^= 1
    with pytest.raises(RedoxFSError, match="encrypted"):
        RedoxFSReader(io.BytesIO(bytes(img)))


def test_checksum_mismatch_is_reported() -> None:
    img = bytearray(vectors.image_15_4())
    fs = RedoxFSReader(io.BytesIO(bytes(img)))
    blk = fs._node_ptr(2)[0] >> 8  # hello.txt node block
    img[blk * 4096 + 200] ^= 0x10
    fs = RedoxFSReader(io.BytesIO(bytes(img)))
    with pytest.raises(RedoxFSError, match="checksum mismatch"):
        fs.read("/hello.txt")
    RedoxFSReader(io.BytesIO(bytes(img)), verify=False).read("/hello.txt")


def test_reader_fuzz_only_raises_redoxfs_error() -> None:
    tally = fuzz_reader(300, seed=7)  # (how long a case took is the bench's business, not a test's)
    assert [tally.counts[c] for c in (OTHER, MEMORY)] == [0, 0], tally.examples[:5]


def test_lz4_block_decoder() -> None:
    assert lz4_block_decompress(bytes([0x30]) + b"abc", 8) == b"abc" + bytes(5)
    # literals "ab", then match offset 2 length 4+2 (overlapping) -> "abababab"
    assert lz4_block_decompress(bytes([0x22]) + b"ab" + bytes([2, 0]), 8) == b"abababab"
    # extended literal length: 15 + 5 = 20 literals
    lit = bytes(range(20))
    assert lz4_block_decompress(bytes([0xF0, 5]) + lit, 20) == lit
    # extended match length: 4 + 15 + 10 = 29 copies of 'z'
    assert lz4_block_decompress(bytes([0x1F]) + b"z" + bytes([1, 0, 10]) + bytes([0x00]), 64)[:31] == b"z" * 30 + b"\0"
    for bad in (bytes([0x10]), bytes([0x11]) + b"a" + bytes([5, 0]), bytes([0x11]) + b"a" + bytes([0, 0]),
                bytes([0xF0]), bytes([0x1F]) + b"a" + bytes([1, 0])):
        with pytest.raises(RedoxFSError):
            lz4_block_decompress(bad, 64)
    with pytest.raises(RedoxFSError, match="larger than the record"):
        lz4_block_decompress(bytes([0x30]) + b"abc", 2)


def test_format_helpers() -> None:
    ids = [1]
    while len(ids) < 600:
        ids.append(next_node_id(ids[-1]))
    assert ids[252] == 253 and ids[253] == 256 and ids[506] == 509 and ids[507] == 512
    assert record_level_for(37856) == 4 and record_level_for(0) == 0 and record_level_for(4097) == 1
    assert record_level_for(131072) == 5
    assert [name_hash(n) for n in (b"usr", b"hello.txt", b"bin", b"kernel", b"initfs", b"lib", b"boot")] == [
        0x2E14519E, 0xA3F404E7, 0xF3276C13, 0xAD573077, 0xF061E6CB, 0x35662AFB, 0x7B166364]
