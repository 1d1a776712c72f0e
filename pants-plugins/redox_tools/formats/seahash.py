"""SeaHash 4.1 (the RedoxFS checksum): the `seahash` library from PyPI (bindings of the Rust
`seahash` crate that RedoxFS itself uses) behind this module's API, and a pure-Python scalar
reference (`seahash_reference`) that the tests check the library against.

Definition (docs/formats/redoxfs.md §3): four 64-bit lanes with fixed seeds; 8-byte
little-endian word `k` (the last one zero-extended) is mixed into lane `k mod 4` with
`diffuse(lane ^ word)`; the result is `diffuse(a ^ b ^ c ^ d ^ len)`.

The library hashes ~4-5 GB/s here (4 KiB..128 KiB inputs, including the copy to `bytes` it
needs: it accepts only `bytes`), about 7x the batched numpy stepping this module used to do.

    seahash(b"to be or not to be") == 1988685042348123509
"""
from __future__ import annotations

import struct
from typing import List, Sequence, Union

import numpy as np
import seahash as _lib

__all__ = ["seahash", "seahash_rows", "seahash_arrays", "seahash_many", "seahash_reference", "BATCH_MIN_ROWS"]

P = 0x6EED0E9DA4D94A4F
M64 = 0xFFFFFFFFFFFFFFFF
SEEDS = (0x16F11FE89B0D677C, 0xB480A793D8E6C86C, 0x6FE2E5AAF078EBC9, 0x14F994A4C5259381)

# Callers that choose between hashing rows of an array and hashing pieces one by one use the
# array path from this many rows on (both are the library now; kept for their API).
BATCH_MIN_ROWS = 4

Buffer = Union[bytes, bytearray, memoryview]

_hash = _lib.hash


def _diffuse(x: int) -> int:
    x = (x * P) & M64
    x ^= (x >> 32) >> (x >> 60)
    return (x * P) & M64


def seahash(data: Buffer) -> int:
    """SeaHash of one byte string."""
    return _hash(data if type(data) is bytes else bytes(data))


def seahash_reference(data: Buffer) -> int:
    """SeaHash of one byte string in pure Python: the reference the library is tested against."""
    mv = memoryview(data).cast("B")
    n = len(mv)
    nfull = n >> 3
    words: Sequence[int] = struct.unpack_from("<%dQ" % nfull, mv) if nfull else ()
    rem = n & 7
    if rem:
        words = tuple(words) + (int.from_bytes(mv[nfull * 8 :], "little"),)
    a, b, c, d = SEEDS
    nw = len(words)
    body = nw - (nw & 3)
    p = P
    m = M64
    i = 0
    while i < body:
        x = ((a ^ words[i]) * p) & m
        x ^= (x >> 32) >> (x >> 60)
        a = (x * p) & m
        x = ((b ^ words[i + 1]) * p) & m
        x ^= (x >> 32) >> (x >> 60)
        b = (x * p) & m
        x = ((c ^ words[i + 2]) * p) & m
        x ^= (x >> 32) >> (x >> 60)
        c = (x * p) & m
        x = ((d ^ words[i + 3]) * p) & m
        x ^= (x >> 32) >> (x >> 60)
        d = (x * p) & m
        i += 4
    tail = nw - body
    if tail >= 1:
        a = _diffuse(a ^ words[body])
    if tail >= 2:
        b = _diffuse(b ^ words[body + 1])
    if tail >= 3:
        c = _diffuse(c ^ words[body + 2])
    return _diffuse(a ^ b ^ c ^ d ^ n)


def seahash_rows(rows: np.ndarray) -> np.ndarray:
    """SeaHash of every row of a 2-D uint8 array (all rows the same length) -> uint64 array."""
    if rows.ndim != 2 or rows.dtype != np.uint8:
        raise TypeError("seahash_rows needs a 2-D uint8 array")
    n = rows.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    h = _hash
    return np.fromiter([h(r.tobytes()) for r in rows], dtype=np.uint64, count=n)


def seahash_arrays(arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
    """`seahash_rows` of several 2-D uint8 arrays (each with its own row length)."""
    for rows in arrays:
        if rows.ndim != 2 or rows.dtype != np.uint8:
            raise TypeError("seahash_arrays needs 2-D uint8 arrays")
    return [seahash_rows(rows) for rows in arrays]


def seahash_many(items: Sequence[Buffer]) -> List[int]:
    """SeaHash of many byte strings."""
    h = _hash
    return [h(it if type(it) is bytes else bytes(it)) for it in items]
