"""The native writer (packages/host/redoxfs-write) writes the reference's bytes.

For every input the Python writer (`redox_tools.redoxfs.writer`, the reference) handles, the
native tool must write a byte-identical image (same sha256 of the whole output file) that is as
sparse (st_blocks within a few blocks), and for every input the reference refuses, exit 2 with
the reference's one `error:` line and leave no output behind. The binary comes in through the
test target's runtime_package_dependencies (by hand: `./pants package
packages/host/redoxfs-write`, found in dist/). A failing comparison prints where the images first
differ (`python -m redox_tools.redoxfs.native cmp A B` says the same by hand).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from redox_tools.bench.redoxfs_throughput import make_tree
from redox_tools.manifest import FILE, Entry, Manifest, sha256_file
from redox_tools.redoxfs import RedoxFSError, size_needed, vectors, write_redoxfs
from redox_tools.redoxfs.format import BLOCK_SIZE, INLINE_MAX
from redox_tools.redoxfs.native import NativeRedoxFS, find_writer, first_difference, native_redoxfs_writer, native_size_needed
from redox_tools.redoxfs.tree_testutil import Tree
from redox_tools.redoxfs.upstream import compare, find_tool, manifest_listing, upstream_listing, without_dir_sizes

PLUGINS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1 << 20
# st_blocks (512-byte units) may differ a little between two writers of the same bytes (the
# host file system's extent metadata, write order); an image that is not sparse differs by MBs.
SPARSE_SLACK = 256


def _sha(path: Path) -> str:
    return sha256_file(str(path))[0]


def _assert_same_image(native: Path, ref: Path, *, offset: int = 0, sha: Optional[str] = None) -> None:
    """Byte-identical (sha256 of the whole file) and as sparse as the reference."""
    got, want = _sha(native), _sha(ref)
    assert got == want, f"native image differs from the reference:\n{first_difference(str(native), str(ref), offset=offset)}"
    if sha is not None:
        assert got == sha
    bn, br = os.stat(native).st_blocks, os.stat(ref).st_blocks
    assert abs(bn - br) <= SPARSE_SLACK + br // 100, (
        f"native image allocates {bn * 512} bytes on disk, the reference {br * 512} (not as sparse)")


def _native(*args: str, threads: Optional[int] = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("REDOXFS_WRITE_THREADS", None)
    if threads is not None:
        env["REDOXFS_WRITE_THREADS"] = str(threads)
    return subprocess.run([find_writer(), *args], env=env, capture_output=True, text=True)


def _python(*args: str) -> subprocess.CompletedProcess:
    """The reference's own command line (python -m redox_tools.redoxfs)."""
    env = dict(os.environ, PYTHONPATH=PLUGINS)
    return subprocess.run([sys.executable, "-m", "redox_tools.redoxfs", *args], env=env, capture_output=True,
                          text=True)


def _ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr.strip()}"
    return res


def _reference(path: Path, manifest: Manifest, *, offset: int = 0, size: int, **kw) -> Path:
    """The reference image, as `create -o` makes it: a new sparse file of offset+size bytes."""
    with open(path, "wb") as f:
        f.truncate(offset + size)
    with open(path, "r+b") as f:
        write_redoxfs(f, manifest, offset=offset, size=size, **kw)
    return path


def _dump(manifest: Manifest, path: Path) -> str:
    manifest.dump(str(path))
    return str(path)


# ---------------------------------------------------------------------------------------------
# trees
# ---------------------------------------------------------------------------------------------


def _varied(root: Path) -> Manifest:
    """Every layout shape of writer_test's round trip: inline/record boundaries, one full
    record, multi-record, BlockLists with zero pages, symlinks (a 4 KiB+ target), an HTree
    directory, 60 levels deep, UTF-8 and 252-byte names, implied directories, odd modes."""
    rnd = lambda n: hashlib.shake_256(b"varied%d" % n).digest(n)  # noqa: E731 - deterministic "random"
    t = Tree(root)
    t.dir("etc", 0o750, 0, 10, 111)
    t.file("etc/empty", b"", 0o600, 5, 6, 222)
    t.file("etc/passwd", b"root:x:0:0::/root:/bin/ion\n", 0o644, 0, 0, 333)
    t.file("inline-max", b"i" * INLINE_MAX, 0o4755, 1, 2, 444)
    t.file("first-record", b"r" * (INLINE_MAX + 1))
    t.file("block", bytes(range(256)) * 16)
    t.file("block+1", bytes(range(256)) * 16 + b"!")
    t.file("setgid", rnd(131072), 0o2755)  # exactly one full record
    t.file("multi", rnd(3 * 131072 + 37856))  # last record of another level
    t.sparse_file("usr/lib/boot/initfs", (129 << 17) + 5, {0: b"RedoxFtw", 5 << 20: rnd(300000), (129 << 17): b"tail!"})
    t.sparse_file("holes", 2 * MiB, {0: b"head", MiB: b"middle"})
    t.link("bin", "usr/bin")
    t.link("abs", "/scheme/null")
    t.link("longlink", "d/" * 2100)  # 4200-byte target: stored in records
    t.dir("usr/bin")
    for i in range(700):  # > one DirList: an HTree
        t.file(f"usr/share/many/entry-{i:04d}-" + "n" * (i % 50), str(i).encode(), 0o644, 1000 + i % 3, 100, 10 + i)
    t.file("/".join(f"d{i}" for i in range(60)) + "/leaf", b"deep", 0o640)
    t.file("unicode/h\u00e9llo w\u00f6rld \u2603", b"snow")
    t.file("maxname/" + "n" * 252, b"252")
    t.file("tmpdir/.hidden", b"h")
    t.dir("tmpdir", 0o1777)
    for mode in (0o600, 0o640, 0o755, 0o4755, 0o2711, 0o1777):
        t.file(f"modes/m{mode:o}", b"%o" % mode, mode)
    return t.manifest()


def _huge_directory(root: Path) -> Manifest:
    """writer_test's ~205 DirLists: an HTree of depth 2 (symlinks: no source files)."""
    t = Tree(root)
    for i in range(4300):
        t.link(f"d/{i:05d}" + "z" * 190, f"t{i}")
    return t.manifest()


def _generated(work: Path) -> Tuple[Path, Manifest]:
    """The benchmark's tree (24 MB: many small files, one big directory, a few large files) plus
    files past 16 MiB (BlockLists), past 2 MiB, odd sizes around every boundary and all-zero
    pages (left as holes); its manifest has sources relative to its own directory."""
    tree = work / "tree"
    make_tree(str(tree), 24)
    extra = tree / "extra"
    extra.mkdir()
    with open(extra / "big-17m", "wb") as f:  # 17 MiB + odd tail: data, zero pages, data
        for i, off in enumerate(range(0, 17 * MiB, 3 * MiB)):
            f.seek(off)
            f.write(hashlib.shake_256(b"big%d" % i).digest(MiB + 4097))
        f.truncate(17 * MiB + 12345)
        f.seek(17 * MiB + 12000)
        f.write(b"tail")
    (extra / "zeros-4m").write_bytes(bytes(4 * MiB))  # written zeros, not a sparse source
    (extra / "two-mib+1").write_bytes(hashlib.shake_256(b"2m").digest(2 * MiB + 1))
    for n in (0, 1, INLINE_MAX, INLINE_MAX + 1, 4095, 4096, 4097, 131071, 131072, 131073, 1000003):
        (extra / f"odd-{n}").write_bytes(hashlib.shake_256(b"odd%d" % n).digest(n))
    (extra / "zero-page-inside").write_bytes(b"a" * 5000 + bytes(3 * BLOCK_SIZE + 1000) + b"z" * 17)
    os.symlink("../big/large0.bin", extra / "link")
    manifest = Manifest.from_tree(str(tree), relative_to=str(work), uid=1000, gid=1000, mtime=1_700_000_000)
    path = work / "manifest.json"
    manifest.dump(str(path))
    return path, Manifest.load(str(path))


# ---------------------------------------------------------------------------------------------
# the §15 canonical vectors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector,uuid", [("manifest_15_2", "00112233-4455-6677-8899-aabbccddeeff"),
                                         ("manifest_15_3", bytes(range(16)).hex())])
def test_canonical_vectors(tmp_path, vector, uuid) -> None:
    manifest, kw, sha = getattr(vectors, vector)(str(tmp_path))
    mpath = _dump(manifest, tmp_path / "m.json")
    out = tmp_path / "native.img"
    res = _ok(_native("create", "--manifest", mpath, "-o", str(out), "--size", str(kw["size"]),
                      "--uuid", uuid, "--ctime", str(kw["ctime"])))
    assert res.stderr == f"wrote {out}: RedoxFS {kw['size'] >> 20} MiB, {len(manifest)} entries\n"
    assert sorted(os.listdir(tmp_path)) == ["m.json", "native.img", "src"]  # no temporary left
    _assert_same_image(out, _reference(tmp_path / "ref.img", manifest, **kw), sha=sha)


def test_15_2_into_a_disk_at_an_offset_touches_nothing_else(tmp_path) -> None:
    """`--into`: the file system's bytes at the offset, the rest of the file as it was (a stale
    file system in the region is replaced, as the reference replaces it)."""
    manifest, kw, sha = vectors.manifest_15_2(str(tmp_path))
    mpath = _dump(manifest, tmp_path / "m.json")
    off, size = 2 * MiB, kw["size"]
    before, after = b"\x5a" * off, b"\xa5" * 12345
    stale = _reference(tmp_path / "stale.img", manifest, size=size, ctime=5).read_bytes()
    disks = {}
    for name in ("native", "ref"):
        disks[name] = d = tmp_path / f"{name}.disk"
        d.write_bytes(before + stale + after)
    _ok(_native("create", "--manifest", mpath, "--into", str(disks["native"]), "--offset", str(off), "--size",
                str(size), "--uuid", kw["uuid"].hex(), "--ctime", str(kw["ctime"]), "-q"))
    with open(disks["ref"], "r+b") as f:
        write_redoxfs(f, manifest, offset=off, **kw)
    _assert_same_image(disks["native"], disks["ref"], offset=off)
    data = disks["native"].read_bytes()
    assert data[:off] == before and data[off + size:] == after
    assert hashlib.sha256(data[off:off + size]).hexdigest() == sha


def test_into_extends_a_shorter_file_and_the_python_api_wrapper(tmp_path) -> None:
    """native_redoxfs_writer: write_redoxfs's signature, into an open file (by descriptor) that is
    shorter than offset+size, after bytes written through the same file object."""
    manifest, kw, sha = vectors.manifest_15_2(str(tmp_path))
    off = MiB
    imgs = {}
    for name, write in (("native", native_redoxfs_writer()), ("ref", write_redoxfs)):
        imgs[name] = tmp_path / f"{name}.img"
        with open(imgs[name], "w+b") as f:
            f.write(b"MBR!")  # buffered: the wrapper flushes it before the tool writes
            write(f, manifest, offset=off, **kw)
    _assert_same_image(imgs["native"], imgs["ref"], offset=off)
    assert os.path.getsize(imgs["native"]) == off + kw["size"]
    assert imgs["native"].read_bytes()[:4] == b"MBR!"
    assert native_size_needed()(manifest) == size_needed(manifest)
    assert native_size_needed()(manifest, ctime=7) == size_needed(manifest, ctime=7)


def test_the_wrapper_reads_relative_sources_from_the_manifests_base_dir(tmp_path) -> None:
    """A manifest whose sources are relative to its base directory (not to the temporary dump
    the wrapper hands the tool): the same image, and one dump serves size and write."""
    absolute, kw, sha = vectors.manifest_15_2(str(tmp_path))
    manifest = Manifest([replace(e, source=os.path.relpath(e.source or "", tmp_path)) if e.kind == FILE else e
                         for e in absolute], base_dir=str(tmp_path))
    assert any(e.kind == FILE and not os.path.isabs(e.source or "/") for e in manifest)
    native = NativeRedoxFS()
    assert native.size_needed(manifest) == size_needed(manifest)
    with open(tmp_path / "native.img", "w+b") as f:
        native.write(f, manifest, offset=0, **kw)
    assert _sha(tmp_path / "native.img") == sha


# ---------------------------------------------------------------------------------------------
# trees of every shape
# ---------------------------------------------------------------------------------------------


def test_varied_tree_with_ctime(tmp_path) -> None:
    manifest = _varied(tmp_path)
    mpath = _dump(manifest, tmp_path / "m.json")
    out = tmp_path / "native.img"
    _ok(_native("create", "--manifest", mpath, "-o", str(out), "--size", "64M", "--ctime", "1234", "-q"))
    _assert_same_image(out, _reference(tmp_path / "ref.img", manifest, size=64 * MiB, ctime=1234))
    assert native_size_needed()(manifest, ctime=1234) == size_needed(manifest, ctime=1234)


def test_huge_directory_two_htree_levels(tmp_path) -> None:
    manifest = _huge_directory(tmp_path)
    mpath = _dump(manifest, tmp_path / "m.json")
    out = tmp_path / "native.img"
    _ok(_native("create", "--manifest", mpath, "-o", str(out), "--size", "64MiB", "-q"))
    _assert_same_image(out, _reference(tmp_path / "ref.img", manifest, size=64 * MiB))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Tuple[Path, Path, Manifest]:
    work = tmp_path_factory.mktemp("gen")
    mpath, manifest = _generated(work)
    return work, mpath, manifest


def test_generated_tree_auto_size_default_uuid_any_thread_count(generated) -> None:
    """`--size auto`, the manifest's default UUID, one worker thread and the default count: the
    reference's own command line makes the same file."""
    work, mpath, manifest = generated
    assert len(manifest) > 1000 and max(e.size for e in manifest) > 16 * MiB
    ref = work / "ref.img"
    py = _ok(_python("create", "--manifest", str(mpath), "-o", str(ref), "--size", "auto"))
    for threads in (1, None):
        out = work / f"native-{threads}.img"
        res = _ok(_native("create", "--manifest", str(mpath), "-o", str(out), "--size", "auto", threads=threads))
        assert res.stderr == py.stderr.replace(str(ref), str(out))
        _assert_same_image(out, ref)
    assert os.stat(ref).st_blocks * 512 < os.path.getsize(ref)  # both sparse (zero pages are holes)
    py_size = _ok(_python("size", "--manifest", str(mpath))).stdout
    assert _ok(_native("size", "--manifest", str(mpath))).stdout == py_size
    py_size = _ok(_python("size", "--manifest", str(mpath), "--ctime", "99")).stdout
    assert _ok(_native("size", "--manifest", str(mpath), "--ctime", "99")).stdout == py_size


def test_generated_tree_native_image_checks_and_upstream_reads_it(generated) -> None:
    work, mpath, manifest = generated
    out = work / "judged.img"
    _ok(_native("create", "--manifest", str(mpath), "-o", str(out), "--size", "auto", "-q"))
    env = dict(os.environ, PYTHONPATH=PLUGINS)
    res = subprocess.run([sys.executable, "-m", "redox_tools.redoxfs", "check", str(out)], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip().endswith("OK"), res.stdout + res.stderr
    up = upstream_listing(str(out))
    diffs = compare(without_dir_sizes(up), manifest_listing(manifest), ("upstream", "manifest"))
    assert not diffs, "\n".join(diffs)


# ---------------------------------------------------------------------------------------------
# bad input: the reference's message, exit 2, nothing left behind
# ---------------------------------------------------------------------------------------------


def _entries_json(entries: List[object]) -> dict:  # not only entries: hostile ones too
    return {"version": 1, "entries": entries}


def _file_json(path: str, src: Path, data: bytes, *, sha: Optional[str] = None, size: Optional[int] = None) -> dict:
    src.write_bytes(data)
    return {"path": path, "kind": "file", "mode": 0o644, "source": str(src),
            "sha256": sha or hashlib.sha256(data).hexdigest(), "size": len(data) if size is None else size}


def _hostile(tmp: Path) -> Dict[str, Tuple[object, List[str]]]:
    """name -> (manifest JSON document or raw text, extra create arguments)."""
    v, _kw, _sha = vectors.manifest_15_2(str(tmp / "v"))
    big = bytes(range(256)) * 5000  # records in several batches' worth of pieces
    n = iter(range(1000))
    f = lambda name, data, **kw: _file_json(name, tmp / f"src-{next(n)}", data, **kw)  # noqa: E731
    link = lambda path, target: {"path": path, "kind": "symlink", "mode": 0o777, "target": target}  # noqa: E731
    return {
        "overlong names": (_entries_json([f("ok/" + "a" * 252, b"x"), f("bad/" + "b" * 253, b"y"),
                                          link("c" * 300, "x")]), []),
        "entry below a file": (_entries_json([f("a", b"x"), {"path": "a/b", "kind": "dir", "mode": 0o755}]), []),
        "missing source": (_entries_json([{"path": "gone", "kind": "file", "mode": 0o644,
                                           "source": str(tmp / "nope"), "sha256": "0" * 64, "size": 0}]), []),
        "source size differs": (_entries_json([f("big", big, size=len(big) + 1)]), []),
        "sha256 mismatch (inline)": (_entries_json([f("small", b"hello", sha="1" * 64)]), []),
        "sha256 mismatch (records)": (_entries_json([f("big", big, sha="2" * 64)]), []),
        "image too small": (v.to_json(), ["--size", "1M"]),
        "size not a multiple of 4096": (v.to_json(), ["--size", "4097"]),
        "manifest of another version": ({"version": 2, "entries": []}, []),
        "manifest without a version": ({"entries": []}, []),
        "entry with a mode past 0o7777": (_entries_json([{"path": "d", "kind": "dir", "mode": 0o10000}]), []),
        "file entry without sha256": (_entries_json([{"path": "x", "kind": "file", "mode": 0o644, "source": "/x"}]), []),
        "entry of an unknown kind": (_entries_json([{"path": "p", "kind": "fifo", "mode": 0o644}]), []),
        "negative uid": (_entries_json([{"path": "d", "kind": "dir", "mode": 0o755, "uid": -1}]), []),
        "path escaping the root": (_entries_json([{"path": "../etc", "kind": "dir", "mode": 0o755}]), []),
        "two entries for one path": (_entries_json([{"path": "d", "kind": "dir", "mode": 0o755},
                                                    {"path": "d", "kind": "dir", "mode": 0o700}]), []),
        # The manifest's shape: both loaders name the first unknown key, the missing one, the
        # element that is no entry, in the same words.
        "entry with unknown keys": (_entries_json([{"path": "d", "kind": "dir", "mode": 0o755, "zz": 1, "colour": 2}]),
                                    []),
        "entry without a kind": (_entries_json([{"path": "d", "mode": 0o755, "colour": 2}]), []),
        "entry without a mode": (_entries_json([{"path": "d", "kind": "dir"}]), []),
        "entry that is not an object": (_entries_json([{"path": "d", "kind": "dir", "mode": 0o755}, "d'x"]), []),
        "entries not a list": ({"version": 1, "entries": {}}, []),
        "symlink target not a string": (_entries_json([{"path": "l", "kind": "symlink", "mode": 0o777,
                                                        "target": {"a": [1]}}]), []),
        # Messages with Python's own wording (a JSON parser's, an OS error's): the start must agree.
        "manifest not JSON": ("{not json", []),
        "manifest missing": (None, []),
    }


PREFIX_ONLY = {"manifest not JSON", "manifest missing"}


HOSTILE = [
    "overlong names", "entry below a file", "missing source", "source size differs", "sha256 mismatch (inline)",
    "sha256 mismatch (records)", "image too small", "size not a multiple of 4096", "manifest of another version",
    "manifest without a version",
    "entry with a mode past 0o7777", "file entry without sha256", "entry of an unknown kind", "negative uid",
    "path escaping the root", "two entries for one path", "manifest not JSON", "manifest missing",
    "entry with unknown keys", "entry without a kind", "entry without a mode", "entry that is not an object",
    "entries not a list", "symlink target not a string",
]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_input_gives_the_reference_error_and_no_output(tmp_path, case) -> None:
    cases = _hostile(tmp_path)
    assert sorted(cases) == sorted(HOSTILE)
    doc, extra = cases[case]
    mpath = tmp_path / "m.json"
    if isinstance(doc, dict):
        mpath.write_text(json.dumps(doc))
    elif isinstance(doc, str):
        mpath.write_text(doc)
    results = {}
    for name, run in (("python", _python), ("native", _native)):
        outdir = tmp_path / f"out-{name}"
        outdir.mkdir()
        args = ["create", "--manifest", str(mpath), "-o", str(outdir / "x.img")]
        results[name] = res = run(*args, *(extra or ["--size", "8M"]))
        assert os.listdir(outdir) == [], f"{name} left {os.listdir(outdir)} behind"
        assert res.returncode == 2, f"{name}: exit {res.returncode}: {res.stderr}"
        assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, f"{name}: {res.stderr!r}"
    py, nat = results["python"].stderr, results["native"].stderr
    if case in ("manifest of another version", "manifest without a version"):  # names the file
        assert nat == f'error: manifest {mpath}: not a version-1 manifest (no "version": 1)\n'
    if case in PREFIX_ONLY:
        assert nat.startswith(f"error: cannot read manifest {mpath}") and py.startswith(f"error: cannot read manifest {mpath}"), (py, nat)
    else:
        assert nat == py


def test_hostile_source_into_an_existing_file_leaves_no_header(tmp_path) -> None:
    """Through the Python API wrapper: the reference's RedoxFSError, word for word, and no
    readable file system left in the region (the header is written last)."""
    small = tmp_path / "small"
    small.write_bytes(b"hello")
    m = Manifest([Entry("small", FILE, 0o644, source=str(small), sha256="1" * 64, size=5)])
    errors = {}
    for name, write in (("native", native_redoxfs_writer()), ("ref", write_redoxfs)):
        img = tmp_path / f"{name}.img"
        img.write_bytes(bytes(MiB))
        with open(img, "r+b") as f, pytest.raises(RedoxFSError) as exc:
            write(f, m, offset=MiB, size=8 * MiB)
        errors[name] = str(exc.value)
        assert img.read_bytes()[MiB:MiB + 8] == bytes(8)
    assert errors["native"] == errors["ref"]


# ---------------------------------------------------------------------------------------------
# usage
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"], ["create", "--help"], ["size", "-h"]])
def test_help_prints_the_usage_and_succeeds(args: List[str]) -> None:
    res = _native(*args)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout.startswith("usage: redoxfs-write create --manifest M.json")
    assert "redoxfs-write size --manifest M.json" in res.stdout


@pytest.mark.parametrize("args", [["--help"], ["-h"]])
def test_redoxfs_list_help_prints_the_usage_and_succeeds(args: List[str]) -> None:
    res = subprocess.run([find_tool(), *args], capture_output=True, text=True)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == "usage: redoxfs-list IMAGE [--offset BYTES] [--size BYTES]\n"


def test_no_command_is_bad_usage() -> None:
    res = _native()
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("error: no command\nusage: redoxfs-write create")
