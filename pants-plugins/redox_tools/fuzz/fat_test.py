"""FAT under hostile input (issue 11 #4, #5, #6): fsck.fat -n judges; a reader that accepts
what fsck.fat rejects fails. Ends with the fixed-seed fuzz target."""
from __future__ import annotations

import io
import struct
import subprocess
import sys

import pytest

from redox_tools.formats import fat
from redox_tools.image.diskimage_test import PLUGINS
from redox_tools.formats.fat import FatError, FatReader
from redox_tools.fuzz.fat import FatModel, fsck_rejects, have_fsck
from redox_tools.fuzz.harness import ACCEPTED, CLEAN, CORRUPT, MEMORY, OTHER
from redox_tools.fuzz.targets import bounded, fuzz_fat

MiB = 1 << 20
needs_fsck = pytest.mark.skipif(not have_fsck(), reason="dosfstools (fsck.fat) missing")
FILES = {
    "EFI/BOOT/BOOTX64.EFI": bytes(range(256)) * 24,
    "A/B/C.TXT": b"c" * 700,
    "A/B/D.TXT": b"d" * 700,
    "long name here.bin": b"q" * 1500,
    "MANY/xx.xx.etc.passwd": b"p" * 10,
    "Another Long Directory/inner file.dat": b"i" * 5000,
    "EMPTY": b"",
}


def image(size: int = MiB, files=FILES) -> bytes:
    f = io.BytesIO(bytes(size))
    fat.write_fat(f, size=size, files=files, volume_id=1)
    return f.getvalue()


def reads(img: bytes) -> None:
    r = FatReader(io.BytesIO(img))
    for _p, e in r.walk():
        if not e.is_dir:
            r.read_entry(e)


def entry_offset(m: FatModel, img: bytes, short: bytes) -> int:
    return next(o for o, _d in m.short if img[o : o + 11] == short)


def judged(img: bytes, match: str) -> None:
    """fsck.fat rejects the image, and so does the reader, with `match` in its message."""
    if have_fsck():
        assert fsck_rejects(img)
    with pytest.raises(FatError, match=match):
        reads(img)


def test_seed_is_clean() -> None:
    img = image(8 * MiB)
    if have_fsck():
        assert not fsck_rejects(img)
    reads(img)


@needs_fsck
def test_cross_linked_files_are_refused() -> None:
    img = image()
    m = FatModel(img)
    b = bytearray(img)
    c = entry_offset(m, img, b"C       TXT")
    d = entry_offset(m, img, b"D       TXT")  # same size: only the sharing is wrong
    m.set_first(b, d, m._first(img[c : c + 32]))
    judged(bytes(b), "cross-linked")


@needs_fsck
@pytest.mark.parametrize("size", [MiB, 8 * MiB])  # FAT12, FAT16
def test_looping_directory_chain_is_refused_not_listed_forever(size: int) -> None:
    img = image(size, {**FILES, **{f"BIG/F{i:04d}.TXT": b"x" for i in range(300)}})
    m = FatModel(img)
    b = bytearray(img)
    big = entry_offset(m, img, b"BIG        ")
    ch = FatReader(io.BytesIO(img)).chain(m._first(img[big : big + 32]))
    assert len(ch) > 2
    m.set_fat(b, ch[-1], ch[0])  # the last cluster points back to the first
    judged(bytes(b), "circular")


def test_chain_reports_a_loop_beyond_its_limit() -> None:
    img = image()
    m = FatModel(img)
    b = bytearray(img)
    ch = max(m.chains, key=len)
    m.set_fat(b, ch[-1], ch[0])
    r = FatReader(io.BytesIO(bytes(b)))
    with pytest.raises(FatError, match="circular|goes on past"):
        r.chain(ch[0], limit=2)
    with pytest.raises(FatError, match="circular"):
        r.chain(ch[0])


@needs_fsck
def test_slash_in_a_short_name_is_refused() -> None:
    img = image()
    m = FatModel(img)
    b = bytearray(img)
    b[entry_offset(m, img, b"EMPTY      ") + 2] = ord("/")
    judged(bytes(b), "short name")


def set_long_name(b: bytearray, short_off: int, name: str) -> None:
    """Rewrite the long name before the short entry at `short_off` in place (same length;
    the LFN checksum covers only the short name, so it stays valid)."""
    units = list(struct.unpack(f"<{len(name)}H", name.encode("utf-16-le")))
    pos = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
    off = short_off - 32
    while b[off + 11] == 0x0F:
        seq = b[off] & 0x1F
        for k, p in enumerate(pos):
            i = (seq - 1) * 13 + k
            if i < len(units):
                struct.pack_into("<H", b, off + p, units[i])
        off -= 32


def test_path_traversal_long_name_is_refused() -> None:
    img = image()
    m = FatModel(img)
    r = FatReader(io.BytesIO(img))
    assert "MANY/xx.xx.etc.passwd" in [p for p, _e in r.walk()]
    b = bytearray(img)
    short = next(o for o, _d in m.short if img[o : o + 2] == b"XX")
    set_long_name(b, short, "../../etc/passwd")
    with pytest.raises(FatError, match="long name"):
        reads(bytes(b))


@needs_fsck
def test_directory_bit_on_a_file_is_refused() -> None:
    img = image()
    m = FatModel(img)
    b = bytearray(img)
    b[entry_offset(m, img, b"C       TXT") + 11] |= fat.ATTR_DIRECTORY
    judged(bytes(b), "directory")


def test_what_the_writer_writes_the_reader_reads_depth() -> None:
    deep = "/".join(f"D{i}" for i in range(fat.MAX_DEPTH - 1)) + "/F.TXT"
    img = image(MiB, {deep: b"deep"})
    assert FatReader(io.BytesIO(img)).read(deep) == b"deep"
    too_deep = "/".join(f"D{i}" for i in range(70)) + "/F.TXT"
    with pytest.raises(FatError, match="levels deep; the limit is 64"):
        image(MiB, {too_deep: b"x"})


def test_non_utf8_file_name_is_one_line_error(tmp_path) -> None:
    name = b"a\xff.txt"
    src = tmp_path / "src.txt"
    src.write_bytes(b"x")
    p = subprocess.run([sys.executable, "-m", "redox_tools.formats.fat", "create", "-o", str(tmp_path / "o.img"), "--size", "1M",
                        name + b"=" + bytes(src)], cwd=PLUGINS, capture_output=True)
    err = p.stderr.decode("utf-8", "replace").strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and err[0].startswith("error: ") and "not valid Unicode" in err[0]
    assert not (tmp_path / "o.img").exists()


def test_fuzz_fat_reader_fixed_seed() -> None:
    """300 structure-aware mutations: the reader raises only FatError, never grows by more than
    twice the volume, and never accepts a volume fsck.fat -n rejects."""
    tally = bounded(fuzz_fat, 300, 11)
    assert [tally.counts[c] for c in (CORRUPT, OTHER, MEMORY)] == [0, 0, 0], tally.examples[:5]
    assert tally.counts[ACCEPTED] > 10 and tally.counts[CLEAN] > 100


@needs_fsck
def test_an_entry_after_the_end_of_directory_marker_is_refused() -> None:
    # found by the 10 000-case bench: fsck.fat reads on past the 0x00 marker and complains
    img = image()
    m = FatModel(img)
    root = m.geo.root_dir_start * m.bps
    end = next(o for o in range(root, root + m.geo.root_entries * 32, 32) if img[o] == 0)
    b = bytearray(img)
    b[end + 32] = 0xD9
    b[end + 35] = ord("z")
    judged(bytes(b), "after the end-of-directory marker")
