"""initfs under hostile input (issue 11 #6) and the fixed-seed fuzz target."""
from __future__ import annotations

import struct

import pytest

from redox_tools.bench.initfs_fuzz import base_images
from redox_tools.fuzz.harness import ACCEPTED, CLEAN, CORRUPT, MEMORY, OTHER
from redox_tools.fuzz.initfs import InitfsModel
from redox_tools.fuzz.targets import bounded, fuzz_initfs
from redox_tools.formats.initfs import InitfsError, InitfsReader


@pytest.fixture(scope="module")
def model() -> InitfsModel:
    return InitfsModel(base_images()[1])


def inode_pos(m: InitfsModel, path: str) -> int:
    r = InitfsReader(m.img)
    return m.inodes[r.stat(path).inode]


def test_file_data_overlapping_the_header_page_is_refused(model: InitfsModel) -> None:
    b = bytearray(model.img)
    pos = inode_pos(model, "bin/logd")
    struct.pack_into("<I", b, pos + 8, 0)  # data offset 0: the header
    r = None
    with pytest.raises(InitfsError, match="overlaps the header page"):
        r = InitfsReader(bytes(b))
        r.read("bin/logd")
    with pytest.raises(InitfsError, match="overlaps the header page"):
        (r or InitfsReader(bytes(b))).check()


def test_a_name_length_running_into_padding_is_refused(model: InitfsModel) -> None:
    r = InitfsReader(model.img)
    for pos in model.dirents:
        _child, n, off = struct.unpack_from("<HHI", model.img, pos)
        if model.img[off + n : off + n + 1] == b"\0":
            break
    else:
        pytest.fail("no name followed by padding")
    b = bytearray(model.img)
    struct.pack_into("<H", b, pos + 2, n + 1)
    with pytest.raises(InitfsError, match="invalid name"):
        r = InitfsReader(bytes(b))
        list(r.walk())


def test_fuzz_initfs_reader_fixed_seed() -> None:
    """300 structure-aware mutations: InitfsError only, bounded memory, and an image the reader
    accepts keeps the invariants (no file data in the header page, no NUL in a name)."""
    tally = bounded(fuzz_initfs, 300, 3)
    assert [tally.counts[c] for c in (CORRUPT, OTHER, MEMORY)] == [0, 0, 0], tally.examples[:5]
    assert tally.counts[ACCEPTED] > 10 and tally.counts[CLEAN] > 100
