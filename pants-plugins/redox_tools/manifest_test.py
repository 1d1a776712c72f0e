from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from redox_tools.errors import ManifestError
from redox_tools.manifest import (
    DEFAULT_DIR_MODE, DIR, FILE, SYMLINK, Entry, Manifest, normalize_path, resolve_symlink_target,
)


def must_get(m: Manifest, path: str) -> Entry:
    e = m.get(path)
    assert e is not None, path
    return e


def fentry(path: str, data: bytes = b"x", mode: int = 0o644, source: Optional[str] = None, **kw) -> Entry:
    return Entry(path, FILE, mode, source=source or f"/src/{path}", sha256=hashlib.sha256(data).hexdigest(),
                 size=len(data), **kw)


# --- paths ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, norm",
    [("usr/bin/ion", "usr/bin/ion"), ("/usr/bin/ion", "usr/bin/ion"), ("usr//bin/./ion/", "usr/bin/ion"),
     ("./etc", "etc"), ("a/.../b", "a/.../b")],
)
def test_normalize_path(raw: str, norm: str) -> None:
    assert normalize_path(raw) == norm


@pytest.mark.parametrize("raw, message", [("../etc", r"'\.\.'"), ("usr/../../x", r"'\.\.'"), ("", "root"),
                                          ("/", "root"), ("./", "root"), ("a\0b", "NUL")])
def test_normalize_path_refused(raw: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        normalize_path(raw)


def test_manifest_normalises_entry_paths_and_sorts() -> None:
    m = Manifest([Entry("/usr/bin/", DIR, 0o755), Entry("etc//", DIR, 0o755), Entry("a", DIR, 0o700)])
    assert [e.path for e in m] == ["a", "etc", "usr/bin"]
    assert "usr/bin" in m and m.get("/usr/bin") is None
    with pytest.raises(ManifestError, match=r"\.\."):
        Manifest([Entry("usr/../../etc/passwd", DIR, 0o755)])


@pytest.mark.parametrize(
    "link, target, resolved",
    [("sh", "bin/ion", "bin/ion"), ("usr/bin/sh", "../../bin/ion", "bin/ion"), ("usr/bin/sh", "/bin/ion", "bin/ion"),
     ("usr/bin/sh", "./ion", "usr/bin/ion"), ("a/b", ".", "a"), ("a/b", "..", ""),
     ("sh", "../x", None), ("usr/bin/sh", "../../../x", None), ("x", "/../y", None)],
)
def test_resolve_symlink_target(link: str, target: str, resolved: Optional[str]) -> None:
    assert resolve_symlink_target(link, target) == resolved


# --- entries --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(path="x", kind="fifo", mode=0o644), "unknown entry kind"),
        (dict(path="x", kind=DIR, mode=0o10000), "not a permission mode"),
        (dict(path="x", kind=DIR, mode=-1), "mode"),
        (dict(path="x", kind=DIR, mode="755"), "mode"),
        (dict(path="x", kind=DIR, mode=0o755, uid=1.5), "uid"),
        (dict(path="x", kind=DIR, mode=0o755, mtime=True), "mtime"),
        (dict(path=7, kind=DIR, mode=0o755), "not a string"),
        (dict(path="x", kind=FILE, mode=0o644, source="/s"), "needs a source and a sha256"),
        (dict(path="x", kind=SYMLINK, mode=0o777), "needs a target"),
        (dict(path="x", kind=SYMLINK, mode=0o777, target=5), "target"),
    ],
)
def test_entry_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Entry(**kwargs)


def test_entry_name_and_parent() -> None:
    e = Entry("usr/bin/ion", DIR, 0o755)
    assert (e.name, e.parent) == ("ion", "usr/bin")
    assert (Entry("etc", DIR, 0o755).parent) == ""


# --- conflicts -----------------------------------------------------------------------------------
def test_conflict_names_both_origins() -> None:
    a = fentry("usr/bin/ls", b"uutils", origin="//packages/userspace:uutils")
    b = fentry("usr/bin/ls", b"busybox", origin="//packages/userspace:busybox")
    with pytest.raises(ManifestError) as exc:
        Manifest([a, b])
    msg = str(exc.value)
    assert "/usr/bin/ls" in msg and "//packages/userspace:uutils" in msg and "//packages/userspace:busybox" in msg


def test_conflict_file_vs_dir_and_mode() -> None:
    with pytest.raises(ManifestError, match="installs a file .* installs a dir"):
        Manifest([fentry("etc/x", origin="p1"), Entry("etc/x", DIR, 0o755, origin="p2")])
    with pytest.raises(ManifestError, match="mode 755"):
        Manifest([fentry("bin/x", mode=0o644, origin="p1"), fentry("bin/x", mode=0o755, origin="p2")])
    with pytest.raises(ManifestError, match="-> b"):
        Manifest([Entry("l", SYMLINK, 0o777, target="a"), Entry("l", SYMLINK, 0o777, target="b")])


def test_identical_duplicates_allowed() -> None:
    d1 = Entry("usr", DIR, 0o755, origin="p1")
    d2 = Entry("usr", DIR, 0o755, origin="p2")
    # the same content from two packages' staging dirs is the same file
    f1 = fentry("etc/hosts", b"127.0.0.1 localhost\n", source="/stage/p1/etc/hosts", origin="p1")
    f2 = fentry("etc/hosts", b"127.0.0.1 localhost\n", source="/stage/p2/etc/hosts", origin="p2")
    m = Manifest([d1, d2, f1, f2, Entry("/usr", DIR, 0o755)])
    assert len(m) == 2 and must_get(m, "etc/hosts").sha256 == f1.sha256


def test_merge_makes_sources_absolute_and_detects_conflicts(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"one")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "g").write_bytes(b"two")
    ma = Manifest.from_tree(str(tmp_path / "a"), origin="pa")
    mb = Manifest.from_tree(str(tmp_path / "b"), origin="pb")
    merged = Manifest.merge([ma, mb])
    assert [e.path for e in merged] == ["f", "g"]
    assert all(e.source is not None and os.path.isabs(e.source) for e in merged)
    assert merged.read(must_get(merged, "g")) == b"two"
    (tmp_path / "b" / "f").write_bytes(b"other")
    with pytest.raises(ManifestError, match="pa .* pb|pb .* pa"):
        Manifest.merge([ma, Manifest.from_tree(str(tmp_path / "b"), origin="pb")])


# --- complete() ------------------------------------------------------------------------------------
def test_complete_adds_implied_parents() -> None:
    m = Manifest([fentry("usr/share/doc/x.txt"), Entry("usr", DIR, 0o700)]).complete(uid=3, gid=4, mtime=5)
    assert [e.path for e in m] == ["usr", "usr/share", "usr/share/doc", "usr/share/doc/x.txt"]
    assert must_get(m, "usr").mode == 0o700  # an explicit entry wins
    implied = must_get(m, "usr/share")
    assert (implied.kind, implied.mode, implied.uid, implied.gid, implied.mtime) == (DIR, DEFAULT_DIR_MODE, 3, 4, 5)
    assert [e.name for e in m.children("usr/share")] == ["doc"]
    assert [e.path for e in m.children("")] == ["usr"]
    assert m.complete().to_json() == m.to_json()  # idempotent


def test_complete_refuses_entry_below_file_or_symlink() -> None:
    with pytest.raises(ManifestError) as exc:
        Manifest([fentry("etc/passwd", origin="pkgA"), fentry("etc/passwd/x", origin="pkgB")]).complete()
    msg = str(exc.value)
    assert "etc/passwd/x" in msg and "pkgA" in msg and "pkgB" in msg and "not a directory" in msg
    with pytest.raises(ManifestError, match="is a symlink"):
        Manifest([Entry("lib", SYMLINK, 0o777, target="usr/lib"), fentry("lib/libc.so")]).complete()


@pytest.mark.parametrize("link, target", [("sh", "../bin/sh"), ("usr/bin/sh", "../../../sh"), ("x", "/../etc")])
def test_complete_refuses_escaping_symlink(link: str, target: str) -> None:
    with pytest.raises(ManifestError, match="escapes the image root"):
        Manifest([Entry(link, SYMLINK, 0o777, target=target, origin="pkg")]).complete()


def test_complete_accepts_inside_symlinks() -> None:
    m = Manifest([Entry("usr/bin/sh", SYMLINK, 0o777, target="/bin/ion"),
                  Entry("usr/lib64", SYMLINK, 0o777, target="lib"),
                  Entry("bin/up", SYMLINK, 0o777, target="..")]).complete()
    assert must_get(m, "usr").kind == DIR and must_get(m, "usr/bin/sh").target == "/bin/ion"


# --- from_tree -----------------------------------------------------------------------------------------
def _tree(root: Path) -> Path:
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "ion").write_bytes(b"\x7fELF ion")
    (root / "usr" / "bin" / "ion").chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text("redox\n")
    (root / "etc" / "hostname").chmod(0o640)
    (root / "etc" / "secret").write_text("s")
    (root / "etc" / "secret").chmod(0o4711)
    os.symlink("/usr/bin/ion", root / "usr" / "bin" / "sh")
    os.symlink("usr/bin", root / "bin")  # a link to a directory is recorded, not descended
    return root


def test_from_tree_records_kinds_modes_and_content(tmp_path: Path) -> None:
    root = _tree(tmp_path / "stage")
    m = Manifest.from_tree(str(root), origin="//pkg:x")
    assert [e.path for e in m] == ["bin", "etc", "etc/hostname", "etc/secret", "usr", "usr/bin", "usr/bin/ion", "usr/bin/sh"]
    ion = must_get(m, "usr/bin/ion")
    assert (ion.kind, ion.mode, ion.size, ion.sha256) == (FILE, 0o755, 8, hashlib.sha256(b"\x7fELF ion").hexdigest())
    assert must_get(m, "etc/hostname").mode == 0o640
    assert must_get(m, "etc/secret").mode == 0o4711  # exec and setuid bits kept
    assert m.read(ion) == b"\x7fELF ion" and ion.source is not None and not os.path.isabs(ion.source)
    assert (must_get(m, "bin").kind, must_get(m, "bin").target) == (SYMLINK, "usr/bin")
    assert must_get(m, "usr/bin/sh").target == "/usr/bin/ion"
    assert all(e.origin == "//pkg:x" for e in m)
    assert m.complete().to_json() == m.to_json()


def test_from_tree_ignores_host_owner_and_times(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a")
    b = _tree(tmp_path / "b")
    for dirpath, dirnames, filenames in os.walk(b):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            os.utime(p, (1_000_000, 1_000_000), follow_symlinks=False)
            if os.geteuid() == 0:
                os.lchown(p, 1234, 5678)
    (b / "etc" / "secret").chmod(0o4711)  # chown clears setuid; put it back
    ma = Manifest.from_tree(str(a), uid=0, gid=0, mtime=1700000000)
    mb = Manifest.from_tree(str(b), uid=0, gid=0, mtime=1700000000)

    def strip(m: Manifest) -> List[Dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "source"} for e in m.to_json()["entries"]]

    assert strip(ma) == strip(mb)
    assert {(e.uid, e.gid, e.mtime) for e in mb} == {(0, 0, 1700000000)}


def test_from_tree_prefix_relative_to_and_refusals(tmp_path: Path) -> None:
    root = _tree(tmp_path / "stage")
    m = Manifest.from_tree(str(root), prefix="/opt/pkg", relative_to=str(tmp_path), uid=1000, gid=1000)
    assert must_get(m, "opt/pkg/usr/bin/ion").source == os.path.join("stage", "usr", "bin", "ion")
    assert m.read(must_get(m, "opt/pkg/usr/bin/ion")) == b"\x7fELF ion"
    assert must_get(m, "opt/pkg/etc").uid == 1000
    with pytest.raises(ManifestError, match="not a directory"):
        Manifest.from_tree(str(tmp_path / "missing"))
    os.mkfifo(root / "etc" / "fifo")
    with pytest.raises(ManifestError, match="unsupported file type"):
        Manifest.from_tree(str(root))


# --- JSON --------------------------------------------------------------------------------------------
def test_json_round_trip(tmp_path: Path) -> None:
    root = _tree(tmp_path / "stage")
    m = Manifest.from_tree(str(root), origin="o", relative_to=str(tmp_path), mtime=42).complete()
    path = tmp_path / "manifest.json"
    m.dump(str(path))
    text = path.read_text()
    assert json.loads(text)["version"] == 1
    loaded = Manifest.load(str(path))
    assert list(loaded) == list(m)
    assert [e.origin for e in loaded] == [e.origin for e in m]
    assert loaded.base_dir == str(tmp_path)
    assert loaded.read(must_get(loaded, "usr/bin/ion")) == b"\x7fELF ion"  # relative source found via the base dir
    loaded.dump(str(tmp_path / "again.json"))
    assert (tmp_path / "again.json").read_text() == text  # stable bytes
    assert not (tmp_path / "manifest.json.tmp").exists()
    entry = json.loads(text)["entries"][0]
    assert "target" in entry or "source" in entry or entry["kind"] == DIR
    assert all(v is not None for e in json.loads(text)["entries"] for v in e.values())


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "cannot read manifest"),
        (b"\xff\xfe".decode("latin-1"), "cannot read manifest"),
        ('{"version": 2, "entries": []}', "version-1"),
        ("[]", "version-1"),
        ('{"version": 1}', "malformed"),
        ('{"version": 1, "entries": [{"path": "x"}]}', "malformed"),
        ('{"version": 1, "entries": [{"path": "x", "kind": "dir", "mode": 493, "colour": 1}]}', "malformed"),
        ('{"version": 1, "entries": [5]}', "malformed"),
        ('{"version": 1, "entries": 5}', "malformed"),
        ('{"version": 1, "entries": [{"path": "x", "kind": "dir", "mode": "rwx"}]}', "mode"),
        ('{"version": 1, "entries": [{"path": "../x", "kind": "dir", "mode": 493}]}', r"\.\."),
    ],
)
def test_load_refuses_bad_json(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "m.json"
    p.write_text(content, encoding="latin-1")
    with pytest.raises(ManifestError, match=message):
        Manifest.load(str(p))


def test_load_names_the_file_of_another_version(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text('{"entries": []}')
    with pytest.raises(ManifestError) as exc:
        Manifest.load(str(p))
    assert str(exc.value) == f'manifest {p}: not a version-1 manifest (no "version": 1)'


@pytest.mark.parametrize(
    "entries, message",
    [
        ('[{"path": "x", "kind": "dir", "mode": 493, "zz": 1, "colour": 1}]', "unexpected key 'zz'"),
        ('[{"path": "x", "colour": 1}]', "unexpected key 'colour'"),
        ('[{"path": "x", "mode": 493}]', "missing 'kind'"),
        ('[{"kind": "dir", "mode": 493}]', "missing 'path'"),
        ("[5]", "5 is not an entry"),
        ('["x"]', "'x' is not an entry"),
        ("[[1]]", "[...] is not an entry"),
        ("[null]", "None is not an entry"),
        ("{}", "'entries' is not a list"),
    ],
)
def test_a_malformed_entry_is_named_in_plain_words(tmp_path: Path, entries: str, message: str) -> None:
    # the native writer's loader says the same (redoxfs/native_integration_test.py)
    p = tmp_path / "m.json"
    p.write_text(f'{{"version": 1, "entries": {entries}}}')
    with pytest.raises(ManifestError) as e:
        Manifest.load(str(p))
    assert str(e.value) == f"malformed manifest entry: {message}"


def test_a_value_of_the_wrong_type_is_shown_briefly(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text('{"version": 1, "entries": [{"path": "l", "kind": "symlink", "mode": 511, "target": {"a": [1]}}]}')
    with pytest.raises(ManifestError, match=r"^l: target \{\.\.\.\} is not a string$"):
        Manifest.load(str(p))


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest"):
        Manifest.load(str(tmp_path / "nope.json"))


def test_content_size() -> None:
    m = Manifest([fentry("a", b"12345"), fentry("b", b"1"), Entry("d", DIR, 0o755)])
    assert m.content_size() == 6
