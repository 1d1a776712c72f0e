from __future__ import annotations

import numpy as np
import pytest

from redox_tools.formats.seahash import seahash, seahash_arrays, seahash_many, seahash_reference, seahash_rows

# docs/formats/redoxfs.md §3, computed with the real seahash 4.1.0 crate
VECTORS = [
    (b"", 0xC920CA43256FDCB9),
    (b"a", 0x29C401B26A16E94D),
    (b"to be or not to be", 1988685042348123509),
    (b"bin", 0x192A6D96F3276C13),
    (b"boot", 0x7006DB297B166364),
    (b"hello.txt", 0x375CE1ADA3F404E7),
    (b"initfs", 0x3840D95EF061E6CB),
    (b"kernel", 0xB213FE2DAD573077),
    (b"lib", 0x6018E1DE35662AFB),
    (b"usr", 0x1A88E0C82E14519E),
    (bytes(range(32)), 0x2F6B06CF184A204F),
    (bytes(range(37)), 0x9B790F29B64D2D41),
    (bytes(i & 0xFF for i in range(4096)), 0xE8010714612E6C70),
    (bytes(4072), 0xE81FFCB86026FF96),
    (bytes(4096), 0x7AD6348702DA2905),
]


@pytest.mark.parametrize("data,expected", VECTORS)
def test_scalar_vectors(data: bytes, expected: int) -> None:
    assert seahash_reference(data) == expected  # the pure-Python reference
    assert seahash_reference(memoryview(data)) == expected
    assert seahash(data) == expected  # the library
    assert seahash(bytearray(data)) == expected
    assert seahash(memoryview(data)) == expected


@pytest.mark.parametrize("data,expected", VECTORS)
def test_batched_vectors(data: bytes, expected: int) -> None:
    rows = np.frombuffer(data * 6, dtype=np.uint8).reshape(6, len(data)) if data else np.zeros((6, 0), np.uint8)
    assert seahash_rows(rows).tolist() == [expected] * 6
    assert seahash_many([data] * 5) == [expected] * 5


def test_low_32_bits_of_name_hashes() -> None:
    assert seahash(b"usr") & 0xFFFFFFFF == 0x2E14519E
    assert seahash(b"kernel") & 0xFFFFFFFF == 0xAD573077


@pytest.mark.parametrize("length", [1, 7, 8, 9, 24, 31, 32, 33, 40, 63, 64, 100, 4096, 131072])
def test_library_matches_reference_for_random_rows(length: int) -> None:
    rng = np.random.default_rng(length)
    rows = rng.integers(0, 256, size=(9, length), dtype=np.uint8)
    expected = [seahash_reference(r.tobytes()) for r in rows]
    assert seahash_rows(rows).tolist() == expected
    assert seahash_rows(rows[:2]).tolist() == expected[:2]
    assert [seahash(r.data) for r in rows] == expected  # memoryviews are copied to bytes
    assert seahash_rows(rows[::2, ::-1]).tolist() == [seahash_reference(r.tobytes()) for r in rows[::2, ::-1]]


def test_arrays_of_mixed_lengths_match_reference() -> None:
    rng = np.random.default_rng(7)
    arrays = [rng.integers(0, 256, size=(int(rng.integers(0, 5)), n), dtype=np.uint8) for n in (0, 1, 9, 4096, 65536, 77)]
    for a, h in zip(arrays, seahash_arrays(arrays)):
        assert h.dtype == np.uint64
        assert h.tolist() == [seahash_reference(r.tobytes()) for r in a]
    with pytest.raises(TypeError):
        seahash_rows(np.zeros(8, dtype=np.uint8))


def test_many_mixed_lengths() -> None:
    items = [bytes([i]) * (i * 3) for i in range(40)] + [b"x" * 16] * 10
    assert seahash_many(items) == [seahash_reference(i) for i in items]
