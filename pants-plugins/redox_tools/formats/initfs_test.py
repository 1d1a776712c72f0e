from __future__ import annotations

import hashlib
import os
import random
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Union

import pytest

from redox_tools.errors import ManifestError
from redox_tools.formats.initfs import (
    DEFAULT_MAX_SIZE, PAGE_SIZE, TYPE_DIR, TYPE_EXEC, TYPE_FILE, InitfsError, InitfsReader,
    bootstrap_entry, build_initfs, check_bootstrap, main, stored_symlink_target, write_initfs,
)
from redox_tools.fuzz.harness import ACCEPTED, CLEAN, MEMORY, OTHER
from redox_tools.manifest import DIR, FILE, SYMLINK, Entry, Manifest

# ---------------------------------------------------------------------------------------------
# The worked example of initfs.md §11, transcribed from the spec's hex dump (independent of the writer)
# ---------------------------------------------------------------------------------------------
SPEC_DUMP = """
000000: 52 65 64 6f 78 46 74 77 00 b0 00 00 3c b0 00 00
000010: 00 00 00 00 00 10 04 00 05 00 00 30 00 00 00 00
001000: 7f 45 4c 46 02 01 01 00 00 00 00 00 00 00 00 00
001010: 02 00 3e 00 01 00 00 00 00 30 00 00 00 00 00 00
001020: 40 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
001030: 00 00 00 00 40 00 38 00 00 00 40 00 00 00 00 00
002000: 01 00 03 00 00 60 00 00 02 00 09 00 00 80 00 00
002010: 03 00 02 00 00 a0 00 00
003000: 00 00 04 00 00 50 00 00
004000: 23 21 2f 62 69 6e 2f 73 68 0a 65 63 68 6f 20 69
004010: 6e 69 74 0a
005000: 69 6e 69 74
006000: 62 69 6e
007000: 48 65 6c 6c 6f 2c 20 69 6e 69 74 66 73 21 0a
008000: 68 65 6c 6c 6f 2e 74 78 74
009000: 62 69 6e 2f 69 6e 69 74
00a000: 73 68
00b000: 01 00 00 00 14 00 00 00 00 40 00 00 02 00 00 00
00b010: 08 00 00 00 00 30 00 00 00 00 00 00 0f 00 00 00
00b020: 00 70 00 00 03 00 00 00 08 00 00 00 00 90 00 00
00b030: 02 00 00 00 18 00 00 00 00 20 00 00
"""
SPEC_SIZE = 45116
SPEC_SHA256 = "95fa14ee3ddd506a715bcfd55f80e81540ac2f4cab4b4e7196149f076fa7defb"


def spec_image() -> bytes:
    img = bytearray(SPEC_SIZE)
    for line in SPEC_DUMP.strip().splitlines():
        addr, hexbytes = line.split(":")
        b = bytes.fromhex(hexbytes)
        off = int(addr, 16)
        img[off:off + len(b)] = b
    return bytes(img)


SPEC_BOOTSTRAP = spec_image()[0x1000:0x1000 + 200]
INIT = b"#!/bin/sh\necho init\n"
HELLO = b"Hello, initfs!\n"


def spec_tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "init").write_bytes(INIT)
    (root / "bin" / "init").chmod(0o744)
    (root / "hello.txt").write_bytes(HELLO)
    (root / "hello.txt").chmod(0o644)
    os.symlink("bin/init", root / "sh")
    return root


def file_entry(tmp: Path, path: str, data: bytes, mode: int = 0o644, **kw) -> Entry:
    src = tmp / ("src-" + hashlib.sha256(path.encode()).hexdigest()[:16])
    src.write_bytes(data)
    return Entry(path, FILE, mode, source=str(src), sha256=hashlib.sha256(data).hexdigest(), size=len(data), **kw)


def test_transcribed_dump_matches_spec_hash() -> None:
    assert hashlib.sha256(spec_image()).hexdigest() == SPEC_SHA256


def test_worked_example_byte_exact_from_tree(tmp_path: Path) -> None:
    m = Manifest.from_tree(str(spec_tree(tmp_path / "tree")))
    img = build_initfs(m, SPEC_BOOTSTRAP)
    assert len(img) == SPEC_SIZE
    assert hashlib.sha256(img).hexdigest() == SPEC_SHA256
    assert img == spec_image()


def test_worked_example_byte_exact_from_entries_and_file(tmp_path: Path) -> None:
    # Given in another order, with host-ish metadata the format cannot hold: same bytes.
    m = Manifest([
        Entry("sh", SYMLINK, 0o777, uid=5, mtime=123, target="bin/init"),
        file_entry(tmp_path, "hello.txt", HELLO, 0o600, gid=7, mtime=99),
        file_entry(tmp_path, "/bin/init", INIT, 0o700),
    ])
    out = tmp_path / "initfs.img"
    write_initfs(m, SPEC_BOOTSTRAP, str(out))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == SPEC_SHA256
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in tmp_path.iterdir())  # no temp leftovers
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".initfs-")]


def test_reader_on_worked_example() -> None:
    r = InitfsReader(spec_image())
    h = r.header
    assert (h.inode_table_offset, h.initfs_size, h.page_size, h.root_inode, h.inode_count, h.bootstrap_entry) == (
        0xB000, SPEC_SIZE, 4096, 4, 5, 0x3000)
    assert r.listdir("") == ["bin", "hello.txt", "sh"]
    assert r.listdir("/bin/") == ["init"]
    assert r.read("bin/init") == INIT and r.read("/hello.txt") == HELLO
    assert r.read("sh") == INIT  # read follows the link
    assert r.readlink("sh") == "bin/init"
    st = r.stat("bin/init")
    assert (st.inode, st.type, st.mode, st.size, st.offset, st.executable) == (0, TYPE_EXEC, stat.S_IFREG | 0o555, 20, 0x4000, True)
    assert r.stat("hello.txt").mode == stat.S_IFREG | 0o444
    assert r.stat("sh").mode == stat.S_IFLNK | 0o777
    assert r.stat("sh", follow_symlinks=True).inode == 0
    assert r.stat("").mode == stat.S_IFDIR | 0o555 and r.stat("").size == 4 + 10 + 3  # sum(name_len + 1)
    assert [(p, s.inode) for p, s in r.walk()] == [("bin", 1), ("bin/init", 0), ("hello.txt", 2), ("sh", 3)]
    r.check()
    for bad in ("nope", "bin/nope", "hello.txt/x", "../bin"):
        with pytest.raises(InitfsError):
            r.read(bad)
    with pytest.raises(InitfsError, match="not a file"):
        r.read("bin")
    with pytest.raises(InitfsError, match="not a symlink"):
        r.readlink("hello.txt")


def test_bootstrap_entry_by_class_and_endianness() -> None:
    assert bootstrap_entry(SPEC_BOOTSTRAP) == 0x3000
    be64 = b"\x7fELF\x02\x02\x01" + bytes(0x18 - 7) + struct.pack(">Q", 0x1234)
    assert bootstrap_entry(be64) == 0x1234
    le32 = b"\x7fELF\x01\x01\x01" + bytes(0x18 - 7) + struct.pack("<I", 0x8000)
    assert bootstrap_entry(le32) == 0x8000


def _elf_with_load(offset: int, vaddr: int, filesz: int, memsz: int, etype: int = 2, entry: int = 0x3000) -> bytes:
    b = bytearray(0x1000 + max(filesz, 1))
    b[0:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", b, 16, etype, 62, 1, entry, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    struct.pack_into("<IIQQQQQQ", b, 64, 1, 5, offset, vaddr, vaddr, filesz, memsz, 0x1000)
    return bytes(b)


@pytest.mark.parametrize(
    "boot, message",
    [
        (b"", "not an ELF"),
        (b"#!/bin/sh\n" + bytes(100), "not an ELF"),
        (b"\x7fELF\x05\x01" + bytes(100), "EI_CLASS"),
        (b"\x7fELF\x02\x01\x01", "truncated"),
        (SPEC_BOOTSTRAP[:0x18] + bytes(8) + SPEC_BOOTSTRAP[0x20:], "entry point 0"),
        (_elf_with_load(0x1000, 0x3000, 0x10, 0x10, etype=3), "DYN"),
        (_elf_with_load(0x0, 0x200000, 0x10, 0x10, entry=0x200000), "vaddr = offset"),
        (_elf_with_load(0x1000, 0x3000, 0x10, 0x80), "memsz"),
    ],
)
def test_bad_bootstrap_refused_without_output(tmp_path: Path, boot: bytes, message: str) -> None:
    m = Manifest([file_entry(tmp_path, "bin/init", INIT, 0o755)])
    out = tmp_path / "out" / "initfs.img"
    out.parent.mkdir()
    with pytest.raises(InitfsError, match=message):
        write_initfs(m, boot, str(out))
    assert list(out.parent.iterdir()) == []


def test_good_layout_bootstrap_accepted() -> None:
    assert check_bootstrap(_elf_with_load(0x1000, 0x3000, 0x10, 0x10)) == 0x3000


def test_exec_bit_is_owner_execute_only(tmp_path: Path) -> None:
    m = Manifest([
        file_entry(tmp_path, "a", b"a", 0o100),
        file_entry(tmp_path, "b", b"b", 0o011),
        file_entry(tmp_path, "c", b"c", 0o4755),
        file_entry(tmp_path, "d", b"d", 0o666),
    ])
    r = InitfsReader(build_initfs(m, SPEC_BOOTSTRAP))
    assert {p: s.type for p, s in r.walk()} == {"a": TYPE_EXEC, "b": TYPE_FILE, "c": TYPE_EXEC, "d": TYPE_FILE}


@pytest.mark.parametrize(
    "link, target, stored",
    [
        ("sh", "bin/init", "bin/init"),
        ("sh", "./bin//init", "bin/init"),
        ("usr/bin/sh", "/bin/init", "../../bin/init"),
        ("usr/bin/sh", "../lib/x", "../lib/x"),
        ("usr/bin/sh", "ion", "ion"),
        ("usr/bin/sh", "/usr/bin/ion", "ion"),
        ("usr/bin/here", ".", "."),
        ("a/b/c", "/", "../.."),
    ],
)
def test_symlink_targets_stored_relative(link: str, target: str, stored: str) -> None:
    assert stored_symlink_target(link, target) == stored


def test_symlinks_in_archive_resolve(tmp_path: Path) -> None:
    m = Manifest([
        file_entry(tmp_path, "bin/ion", b"ion!", 0o755),
        Entry("usr/bin/sh", SYMLINK, 0o777, target="/bin/ion"),
        Entry("usr/lib", SYMLINK, 0o777, target="../bin"),
        Entry("loop", SYMLINK, 0o777, target="loop"),
        Entry("dangling", SYMLINK, 0o777, target="nowhere"),
    ])
    r = InitfsReader(build_initfs(m, SPEC_BOOTSTRAP))
    assert r.readlink("usr/bin/sh") == "../../bin/ion"
    assert r.read("usr/bin/sh") == b"ion!"
    assert r.read("usr/lib/ion") == b"ion!"  # symlink in the middle of a path
    assert r.listdir("usr/lib") == ["ion"]
    assert r.readlink("dangling") == "nowhere"
    with pytest.raises(InitfsError, match="too many levels"):
        r.read("loop")
    with pytest.raises(InitfsError, match="no such file"):
        r.read("dangling")
    r.check()


def test_escaping_symlink_refused(tmp_path: Path) -> None:
    m = Manifest([Entry("bin/sh", SYMLINK, 0o777, target="../../etc/passwd")])
    with pytest.raises(ManifestError, match="escapes"):
        build_initfs(m, SPEC_BOOTSTRAP)


def test_layout_page_aligned_sorted_and_deterministic(tmp_path: Path) -> None:
    rng = random.Random(7)
    entries = [Entry("empty-dir", DIR, 0o755), file_entry(tmp_path, "empty", b"")]
    for i in range(40):
        data = bytes(rng.randrange(256) for _ in range(rng.choice([1, 100, 4095, 4096, 4097, 10000])))
        entries.append(file_entry(tmp_path, f"d{i % 5}/sub{i % 3}/f{i:02}", data, rng.choice([0o644, 0o755])))
    img1 = build_initfs(Manifest(entries), SPEC_BOOTSTRAP)
    img2 = build_initfs(Manifest(list(reversed(entries))), SPEC_BOOTSTRAP)
    assert img1 == img2
    r = InitfsReader(img1)
    r.check()
    assert r.header.root_inode == r.header.inode_count - 1
    assert r.header.inode_table_offset % PAGE_SIZE == 0 and r.header.initfs_size == len(img1)
    assert r.listdir("") == sorted(r.listdir(""))
    assert r.listdir("empty-dir") == [] and r.read("empty") == b""
    by_path = {e.path: e for e in Manifest(entries)}
    seen = 0
    for path, st in r.walk():
        e = by_path.get(path)
        if e is not None and e.kind == FILE and e.size:
            assert st.offset % PAGE_SIZE == 0
            assert e.source is not None
            assert r.read(path) == Path(e.source).read_bytes()
            pad_end = (st.offset + st.length + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
            assert not any(img1[st.offset + st.length: pad_end])  # zero up to the page end
            assert st.type == (TYPE_EXEC if e.mode & 0o100 else TYPE_FILE)
            seen += 1
    assert seen == 40
    # implied parents (d0, d0/sub0, ...) exist as directories
    assert r.stat("d0/sub1").type == TYPE_DIR


def test_size_limit_names_actual_size_and_leaves_nothing(tmp_path: Path) -> None:
    big = 65 * 1024 * 1024
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        f.truncate(big)  # sparse; the size check fires before the content is read
    m = Manifest([
        Entry("lib/big.bin", FILE, 0o644, source=str(src), sha256="0" * 64, size=big),
        Entry("bin/init", FILE, 0o755, source=str(src), sha256="0" * 64, size=10),
    ])
    outdir = tmp_path / "out"
    outdir.mkdir()
    with pytest.raises(InitfsError) as exc:
        write_initfs(m, SPEC_BOOTSTRAP, str(outdir / "initfs.img"))
    msg = str(exc.value)
    # pages: header, bootstrap, root table, bin table, init data, "init", "bin", lib table, [big], "big.bin", "lib"
    expected = 0x1000 * 10 + big + 12 * 5
    assert f"{expected} bytes" in msg and "64.0 MiB" in msg and f"{DEFAULT_MAX_SIZE} bytes" in msg and "/lib/big.bin" in msg
    assert list(outdir.iterdir()) == []


def test_custom_max_size(tmp_path: Path) -> None:
    m = Manifest([file_entry(tmp_path, "bin/init", INIT, 0o755)])
    img = build_initfs(m, SPEC_BOOTSTRAP)
    assert build_initfs(m, SPEC_BOOTSTRAP, max_size=len(img)) == img
    with pytest.raises(InitfsError, match=f"would be {len(img)} bytes"):
        build_initfs(m, SPEC_BOOTSTRAP, max_size=len(img) - 1)


def test_name_too_long_and_not_utf8() -> None:
    m = Manifest([Entry("a" * 65536, DIR, 0o755)])
    with pytest.raises(InitfsError, match="65536 bytes long"):
        build_initfs(m, SPEC_BOOTSTRAP)
    assert InitfsReader(build_initfs(Manifest([Entry("a" * 65535, DIR, 0o755)]), SPEC_BOOTSTRAP)).listdir("") == ["a" * 65535]
    with pytest.raises(InitfsError, match="UTF-8"):
        build_initfs(Manifest([Entry("bad\udcff", DIR, 0o755)]), SPEC_BOOTSTRAP)


def test_inode_and_directory_limits() -> None:
    per_dir = [Entry(f"d/{i:05}", DIR, 0o755) for i in range(65536)]
    with pytest.raises(InitfsError, match="65536 entries"):
        build_initfs(Manifest(per_dir), SPEC_BOOTSTRAP)
    total = [Entry(f"{k}/{i:05}", DIR, 0o755) for k in "ab" for i in range(32767)]  # + a, b, root = 65537
    with pytest.raises(InitfsError, match="65537 inodes"):
        build_initfs(Manifest(total), SPEC_BOOTSTRAP)


def test_source_changed_since_manifest(tmp_path: Path) -> None:
    e = file_entry(tmp_path, "bin/init", INIT, 0o755)
    assert e.source is not None
    Path(e.source).write_bytes(INIT.upper())
    out = tmp_path / "o.img"
    out.write_bytes(b"previous")
    with pytest.raises(InitfsError, match="no longer matches"):
        write_initfs(Manifest([e]), SPEC_BOOTSTRAP, str(out))
    assert out.read_bytes() == b"previous"  # untouched
    os.unlink(e.source)
    with pytest.raises(InitfsError, match="cannot read its source"):
        build_initfs(Manifest([e]), SPEC_BOOTSTRAP)


def test_entry_below_file_refused(tmp_path: Path) -> None:
    m = Manifest([file_entry(tmp_path, "bin", b"x"), Entry("bin/init", DIR, 0o755)])
    with pytest.raises(ManifestError, match="not a directory"):
        build_initfs(m, SPEC_BOOTSTRAP)


def test_deep_tree(tmp_path: Path) -> None:
    path = "/".join(f"d{i}" for i in range(1500))
    m = Manifest([file_entry(tmp_path, path + "/f", b"deep")])
    r = InitfsReader(build_initfs(m, SPEC_BOOTSTRAP))
    assert r.read(path + "/f") == b"deep"
    assert len(list(r.walk())) == 1501


def test_write_file_equals_bytes(tmp_path: Path) -> None:
    m = Manifest([file_entry(tmp_path, f"f{i}", b"x" * i) for i in range(50)])
    out = tmp_path / "o.img"
    write_initfs(m, SPEC_BOOTSTRAP, str(out))
    assert out.read_bytes() == build_initfs(m, SPEC_BOOTSTRAP)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


# ---------------------------------------------------------------------------------------------
# Reader: validity checks of §9 and friends
# ---------------------------------------------------------------------------------------------
def _patch(img: bytes, off: int, fmt: str, *values: Union[int, bytes]) -> bytes:
    b = bytearray(img)
    struct.pack_into(fmt, b, off, *values)
    return bytes(b)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d[:33], "shorter than"),
        (lambda d: b"RedoxFtW" + d[8:], "bad magic"),
        (lambda d: _patch(d, 0x14, "<H", 512), "page_size"),
        (lambda d: _patch(d, 0x0C, "<Q", SPEC_SIZE + 1), "initfs_size"),
        (lambda d: _patch(d, 0x0C, "<Q", 10), "initfs_size"),
        (lambda d: _patch(d, 0x08, "<I", 8), "inside the header"),
        (lambda d: _patch(d, 0x08, "<I", 0xB004), "past initfs_size"),
        (lambda d: _patch(d, 0x18, "<H", 6), "past initfs_size"),
        (lambda d: _patch(d, 0x16, "<H", 5), "root_inode"),
        (lambda d: _patch(d, 0x16, "<H", 2), "not a directory"),
        (lambda d: _patch(d, 0xB030, "<I", 9), "unknown type"),
        (lambda d: _patch(d, 0xB038, "<I", 0xB030), "runs past"),
        (lambda d: _patch(d, 0xB034, "<I", 23), "multiple of 8"),
    ],
)
def test_reader_header_checks(mutate, message: str) -> None:
    with pytest.raises(InitfsError, match=message):
        InitfsReader(mutate(spec_image()))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: _patch(d, 0x2004, "<I", 0xB03A), "name"),  # name past the end
        (lambda d: _patch(d, 0x2000, "<H", 7), "only 5"),  # entry names a missing inode
        (lambda d: _patch(d, 0x5000, "4s", b"\xff\xfe\xfd\xfc"), "UTF-8"),
        (lambda d: _patch(d, 0x5000, "4s", b"a/bc"), "invalid name"),
        (lambda d: _patch(d, 0x3000, "<H", 4), "more than once"),  # bin/init -> root: a loop
        (lambda d: _patch(d, 0x2008, "<HHI", 1, 3, 0x6000), "two entries"),  # hello.txt renamed to "bin"
    ],
)
def test_reader_entry_checks(mutate, message: str) -> None:
    r = InitfsReader(mutate(spec_image()))
    with pytest.raises(InitfsError, match=message):
        list(r.walk())


def test_check_catches_consumer_problems() -> None:
    with pytest.raises(InitfsError, match="bootstrap_entry is 0"):
        InitfsReader(_patch(spec_image(), 0x1A, "<Q", 0)).check()
    with pytest.raises(InitfsError, match="non-zero"):
        InitfsReader(_patch(spec_image(), 0x40, "<B", 1)).check()
    with pytest.raises(InitfsError, match="page-aligned"):
        InitfsReader(_patch(spec_image(), 0xB008, "<I", 0x4001)).check()
    with pytest.raises(InitfsError, match="no bootstrap"):
        InitfsReader(_patch(spec_image(), 0x1000, "<B", 0)).check()


def test_revision_ab_header_recognised() -> None:
    d = bytearray(0x3000)
    d[0:8] = b"RedoxFtw"
    struct.pack_into("<IQIHQQH", d, 8, 0x2000, 1_700_000_000, 0, 1, 0x3000, len(d), 4096)
    with pytest.raises(InitfsError, match="revision A/B"):
        InitfsReader(bytes(d))


def test_trailing_bytes_after_initfs_size_ignored() -> None:
    padded = spec_image() + bytes(0xC000 - SPEC_SIZE)  # as the bootloader holds it in RAM
    r = InitfsReader(padded)
    assert r.read("hello.txt") == HELLO and len(r.data) == SPEC_SIZE


def test_mutation_fuzz_small() -> None:
    from redox_tools.bench.initfs_fuzz import run

    tally = run(400, seed=2024)
    assert [tally.counts[c] for c in (OTHER, MEMORY)] == [0, 0], tally.examples[:5]
    assert tally.counts[ACCEPTED] + tally.counts[CLEAN] == 400
    assert tally.counts[ACCEPTED] > 20 and tally.counts[CLEAN] > 200


def test_mutated_worked_example_only_initfs_error() -> None:
    from redox_tools.bench.initfs_fuzz import exercise, mutate

    rng = random.Random(99)
    base = spec_image()
    hot = [0, 0x08, 0x0C, 0x14, 0x16, 0x18, 0x1A, 0x2000, 0x2008, 0x2010, 0x3000, 0xB000, 0xB00C, 0xB018, 0xB024, 0xB030]
    for _ in range(300):
        try:
            exercise(mutate(rng, base, hot))
        except InitfsError:
            pass


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_cli_create_ls_cat_info(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tree = spec_tree(tmp_path / "tree")
    man = tmp_path / "m.json"
    Manifest.from_tree(str(tree), relative_to=str(tmp_path)).dump(str(man))
    boot = tmp_path / "bootstrap"
    boot.write_bytes(SPEC_BOOTSTRAP)
    img = tmp_path / "initfs.img"
    assert main(["create", "--manifest", str(man), "--bootstrap", str(boot), "-o", str(img)]) == 0
    assert hashlib.sha256(img.read_bytes()).hexdigest() == SPEC_SHA256
    capsys.readouterr()
    assert main(["ls", str(img)]) == 0
    assert capsys.readouterr().out.split() == ["bin", "bin/init", "hello.txt", "sh"]
    assert main(["ls", str(img), "-l"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["-r-xr-xr-x", "20", "0", "bin/init"]
    assert lines[3].split() == ["lrwxrwxrwx", "8", "3", "sh", "->", "bin/init"]
    assert main(["ls", str(img), "bin", "-l"]) == 0
    assert capsys.readouterr().out.split() == ["-r-xr-xr-x", "20", "0", "init"]
    assert main(["info", str(img)]) == 0
    assert "bootstrap_entry    0x3000" in capsys.readouterr().out


def test_cli_subprocess_cat_and_clean_error(tmp_path: Path) -> None:
    img = tmp_path / "initfs.img"
    img.write_bytes(spec_image())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    ok = subprocess.run([sys.executable, "-m", "redox_tools.formats.initfs", "cat", str(img), "sh"], capture_output=True, env=env)
    assert ok.returncode == 0 and ok.stdout == INIT
    bad = subprocess.run([sys.executable, "-m", "redox_tools.formats.initfs", "cat", str(img), "nope"], capture_output=True, env=env, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1
    img.write_bytes(b"garbage" * 10)
    bad = subprocess.run([sys.executable, "-m", "redox_tools.formats.initfs", "ls", str(img)], capture_output=True, env=env, text=True)
    assert bad.returncode == 2 and "bad magic" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_says_a_qcow2_disk_is_no_initfs(tmp_path: Path) -> None:
    from redox_tools import qcow2

    raw = tmp_path / "disk.img"
    raw.write_bytes(spec_image().ljust(1 << 20, b"\0"))
    qcow = tmp_path / "disk.qcow2"
    qcow2.from_raw(str(raw), str(qcow))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    bad = subprocess.run([sys.executable, "-m", "redox_tools.formats.initfs", "ls", str(qcow)], capture_output=True, env=env, text=True)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == (
        f"error: {qcow} is a qcow2 disk image, not an initfs: list the initfs inside it with "
        f"python3 -m redox_tools.image.inspect {qcow} --initfs\n"
    )
