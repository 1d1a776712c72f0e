from __future__ import annotations

import io
import struct
import uuid

import pytest

from redox_tools import qcow2
from redox_tools.formats import gpt
from redox_tools.formats.gpt import EFI_SYSTEM, LINUX_FS, BIOS_BOOT, GptError, Partition
from redox_tools.fuzz.harness import ACCEPTED, CLEAN, MEMORY, OTHER

S64 = 64 * 1024 * 1024
DISK_GUID = "11111111-2222-3333-4444-555555555555"


def example_parts(size: int = S64, esp_mib: int = 1):
    types = [BIOS_BOOT, EFI_SYSTEM, LINUX_FS]
    return [
        Partition(name, types[i], uuid.UUID(f"AAAAAAAA-0000-0000-0000-00000000000{i + 1}"), first, last)
        for i, (name, first, last) in enumerate(gpt.redox_layout(size, esp_mib))
    ]


def build(size: int = S64, parts=None, disk_guid: str = DISK_GUID) -> io.BytesIO:
    f = io.BytesIO(bytes(size))
    gpt.write_gpt(f, size, example_parts(size) if parts is None else parts, disk_guid)
    return f


def test_layout_matches_spec_example():
    assert gpt.redox_layout(S64) == [("BIOS", 34, 2047), ("EFI", 2048, 4095), ("REDOX", 4096, 129023)]
    assert gpt.redox_layout(S64, 2)[2] == ("REDOX", 6144, 129023)
    # 512 MiB disk: REDOX ends at 511 MiB
    assert gpt.redox_layout(512 << 20)[2] == ("REDOX", 4096, 511 * 2048 - 1)


def test_layout_too_small():
    with pytest.raises(GptError, match="needs at least 4 MiB"):
        gpt.redox_layout(3 << 20)
    assert gpt.redox_layout(4 << 20)[2] == ("REDOX", 4096, 6143)
    assert gpt.redox_min_disk_size(1 << 20) == 4 << 20
    assert gpt.redox_min_disk_size((1 << 20) + 1, esp_mib=2) == 6 << 20


def test_section_11_bytes_exact():
    data = build().getvalue()
    assert data[446:512] == bytes.fromhex("000002 00ee ffffff 01000000 ffff0100".replace(" ", "")) + bytes(48) + b"\x55\xaa"
    assert data[:446] == bytes(446)
    primary = bytes.fromhex(
        "45464920 50415254 00000100 5c000000 9361f5ab 00000000"
        "0100000000000000 ffff010000000000 2200000000000000 deff010000000000"
        "11111111 2222 3333 4444 555555555555"
        "0200000000000000 80000000 80000000 18c1695d".replace(" ", "")
    )
    assert data[512 : 512 + 92] == primary
    assert data[512 + 92 : 1024] == bytes(420)
    arr = data[1024 : 1024 + 16384]
    assert arr[:128] == bytes.fromhex(
        "4861682149646f6e744e656564454649 aaaaaaaa000000000000000000000001"
        "2200000000000000 ff07000000000000 0000000000000000 420049004f005300".replace(" ", "")
    ).ljust(128, b"\0")
    assert arr[128:256] == bytes.fromhex(
        "28732ac11ff8d211ba4b00a0c93ec93b aaaaaaaa000000000000000000000002"
        "0008000000000000 ff0f000000000000 0000000000000000 450046004900".replace(" ", "")
    ).ljust(128, b"\0")
    assert arr[256:384] == bytes.fromhex(
        "af3dc60f838472478e793d69d8477de4 aaaaaaaa000000000000000000000003"
        "0010000000000000 fff7010000000000 0000000000000000 5200450044004f005800".replace(" ", "")
    ).ljust(128, b"\0")
    assert arr[384:] == bytes(16384 - 384)
    last = 131071
    backup = data[last * 512 : last * 512 + 92]
    assert struct.unpack_from("<I", backup, 16)[0] == 0x25F9AD56
    assert struct.unpack_from("<QQ", backup, 24) == (last, 1)
    assert struct.unpack_from("<Q", backup, 72)[0] == 131039
    assert data[131039 * 512 : 131039 * 512 + 16384] == arr


def test_round_trip():
    f = build()
    h, parts = gpt.read_gpt(f)
    assert h.disk_guid == uuid.UUID(DISK_GUID)
    assert (h.first_usable, h.last_usable, h.alternate_lba) == (34, 131038, 131071)
    assert [(p.name, p.first_lba, p.last_lba, p.index) for p in parts] == [
        ("BIOS", 34, 2047, 0),
        ("EFI", 2048, 4095, 1),
        ("REDOX", 4096, 129023, 2),
    ]
    assert parts[1].type_guid == EFI_SYSTEM and parts[1].type_name == "EFI system"
    assert parts[2].size_bytes == 61 * 1024 * 1024


def test_writer_rejects_bad_input():
    p = example_parts()
    with pytest.raises(GptError, match="overlap"):
        gpt.gpt_structures(S64, [p[0], Partition("X", LINUX_FS, uuid.uuid4(), 2000, 2100)], DISK_GUID)
    with pytest.raises(GptError, match="outside the usable range"):
        gpt.gpt_structures(S64, [Partition("X", LINUX_FS, uuid.uuid4(), 34, 131039)], DISK_GUID)
    with pytest.raises(GptError, match="longer than 36"):
        gpt.gpt_structures(S64, [Partition("x" * 37, LINUX_FS, uuid.uuid4(), 34, 100)], DISK_GUID)
    with pytest.raises(GptError, match="not a GUID"):
        gpt.gpt_structures(S64, p, "nope")
    with pytest.raises(GptError, match="multiple of 512"):
        gpt.gpt_structures(S64 + 1, p, DISK_GUID)


def test_reader_detects_corruption():
    base = build().getvalue()

    def corrupt(off: int, val: bytes) -> bytes:
        b = bytearray(base)
        b[off : off + len(val)] = val
        return bytes(b)

    with pytest.raises(GptError, match="header CRC32"):
        gpt.read_gpt(io.BytesIO(corrupt(512 + 40, b"\x23")))
    with pytest.raises(GptError, match="array CRC32"):
        gpt.read_gpt(io.BytesIO(corrupt(1024 + 60, b"\x99")))
    with pytest.raises(GptError, match="signature"):
        gpt.read_gpt(io.BytesIO(corrupt(512, b"X")))
    with pytest.raises(GptError, match="backup GPT header"):
        gpt.read_gpt(io.BytesIO(corrupt(131071 * 512, b"X")))
    # primary still fine without the backup check
    gpt.read_gpt(io.BytesIO(corrupt(131071 * 512, b"X")), check_backup=False)
    with pytest.raises(GptError, match="truncated|outside|does not fit"):
        gpt.read_gpt(io.BytesIO(base[: 1 << 20]))


def test_fuzz_reader_raises_only_gpt_error():
    from redox_tools.bench import gpt_fuzz

    tally = gpt_fuzz.run(400, seed=1234)
    assert [tally.counts[c] for c in (OTHER, MEMORY)] == [0, 0], tally.examples[:5]
    assert tally.counts[CLEAN] > 100 and tally.counts[ACCEPTED] > 20


def test_cli_reads_a_qcow2_disk_like_its_raw_image(tmp_path, capsys):
    raw = tmp_path / "disk.img"
    raw.write_bytes(build().getvalue())
    qcow = tmp_path / "disk.qcow2"
    qcow2.from_raw(str(raw), str(qcow))
    assert gpt.main([str(raw)]) == 0
    from_raw = capsys.readouterr().out
    assert gpt.main([str(qcow)]) == 0
    assert capsys.readouterr().out == from_raw
    assert "REDOX" in from_raw and from_raw.startswith(f"disk GUID {DISK_GUID}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.img", "disk.qcow2"]  # no copy left
