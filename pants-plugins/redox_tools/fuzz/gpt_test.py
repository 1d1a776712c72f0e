"""GPT under hostile input (issue 11 #6): sgdisk -v judges; a reader that accepts what it
rejects fails. Ends with the fixed-seed fuzz target."""
from __future__ import annotations

import io
import struct

import pytest

from redox_tools.fuzz.gpt import have_sgdisk, resign, seed_image, sgdisk_rejects
from redox_tools.fuzz.harness import ACCEPTED, CLEAN, CORRUPT, MEMORY, OTHER
from redox_tools.fuzz.targets import bounded, fuzz_gpt
from redox_tools.formats.gpt import GptError, read_gpt

LAST = (1 << 20) // 512 - 1


def both_headers(d: bytearray, off: int, fmt: str, value: int) -> bytes:
    for hdr in (512, LAST * 512):
        struct.pack_into(fmt, d, hdr + off, value)
    resign(d)
    return bytes(d)


def refused(img: bytes, match: str, *, sgdisk: bool = True) -> None:
    if sgdisk and have_sgdisk():
        assert sgdisk_rejects(img)
    with pytest.raises(GptError, match=match):
        read_gpt(io.BytesIO(img))


def test_seed_is_clean() -> None:
    img = seed_image()
    if have_sgdisk():
        assert not sgdisk_rejects(img)
    read_gpt(io.BytesIO(img))


def test_first_usable_lba_inside_the_partition_array() -> None:
    refused(both_headers(bytearray(seed_image()), 40, "<Q", 20), "extends past the first usable LBA")


def test_last_usable_lba_at_the_backup_header() -> None:
    # the UEFI spec puts the backup array between; sgdisk -v does not check it
    refused(both_headers(bytearray(seed_image()), 48, "<Q", LAST), "reaches the backup GPT header|overlaps the usable range", sgdisk=False)


def test_last_usable_lba_inside_the_backup_array() -> None:
    refused(both_headers(bytearray(seed_image()), 48, "<Q", LAST - 10), "overlaps the usable range", sgdisk=False)


def test_duplicate_partition_guids() -> None:
    d = bytearray(seed_image())
    d[2 * 512 + 128 + 16 : 2 * 512 + 128 + 32] = d[2 * 512 + 16 : 2 * 512 + 32]
    resign(d)
    refused(bytes(d), "same unique GUID", sgdisk=False)  # sgdisk -v does not check this


@pytest.mark.parametrize("entry", [1, 2, 3])
def test_protective_mbr_with_other_entries(entry: int) -> None:
    d = bytearray(seed_image())
    d[446 + 16 * entry + 4] = 0x83
    struct.pack_into("<II", d, 446 + 16 * entry + 8, 100, 50)
    refused(bytes(d), "hybrid MBR", sgdisk=False)


def test_mbr_without_or_with_two_protective_entries() -> None:
    d = bytearray(seed_image())
    d[446 + 4] = 0x0C
    refused(bytes(d), "0xEE")
    d = bytearray(seed_image())
    d[446 + 16 + 4] = 0xEE
    refused(bytes(d), "0xEE", sgdisk=False)


def test_fuzz_gpt_reader_fixed_seed() -> None:
    """300 structure-aware mutations (CRCs recomputed): GptError only, and never an accepted
    table that sgdisk -v finds problems in."""
    tally = bounded(fuzz_gpt, 300, 5)
    assert [tally.counts[c] for c in (CORRUPT, OTHER, MEMORY)] == [0, 0, 0], tally.examples[:5]
    assert tally.counts[ACCEPTED] > 10 and tally.counts[CLEAN] > 100
