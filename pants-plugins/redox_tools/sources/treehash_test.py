from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from redox_tools.sources.treehash import TreeHashError, is_tree_hash, main, tree_hash, tree_records


def _make(root):
    root.mkdir(parents=True)
    (root / "a.txt").write_bytes(b"hello\n")
    (root / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "d").mkdir()
    (root / "d" / "empty").mkdir()
    (root / "d" / "b").write_bytes(b"")
    os.symlink("../a.txt", root / "d" / "ln")
    return root


def test_known_answer_follows_the_documented_format(tmp_path):
    root = _make(tmp_path / "t")
    h = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    records = [
        b"f 0 6 %s a.txt\0" % h(b"hello\n").encode(),
        b"d 0 0 - d\0",
        b"f 0 0 %s d/b\0" % h(b"").encode(),
        b"d 0 0 - d/empty\0",
        b"l 0 8 %s d/ln\0" % h(b"../a.txt").encode(),
        b"f 1 10 %s run.sh\0" % h(b"#!/bin/sh\n").encode(),
    ]
    expected = "sha256:" + hashlib.sha256(b"redox-treehash-v1\0" + b"".join(records)).hexdigest()
    assert tree_hash(root) == expected
    assert is_tree_hash(expected)


def test_empty_dir():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        assert tree_hash(d) == "sha256:" + hashlib.sha256(b"redox-treehash-v1\0").hexdigest()


def test_bytewise_path_order(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").write_text("x")
    (tmp_path / "a.txt").write_text("y")
    assert [r.path for r in tree_records(tmp_path)] == [b"a", b"a.txt", b"a/b"]


def test_ignores_git_everywhere_and_metadata(tmp_path):
    one = _make(tmp_path / "one")
    base = tree_hash(one)
    (one / ".git").mkdir()
    (one / ".git" / "HEAD").write_text("ref: x")
    (one / "d" / ".git").write_text("gitdir: ../.git/modules/d")  # submodule gitfile
    os.utime(one / "a.txt", (1, 1))
    (one / "a.txt").chmod(0o600)  # non-exec mode bits other than owner-x do not count
    assert tree_hash(one) == base
    two = tmp_path / "two"
    shutil.copytree(one, two, symlinks=True)
    assert tree_hash(two) == base


@pytest.mark.parametrize(
    "change",
    ["content", "exec", "symlink", "empty_dir", "rename"],
)
def test_every_kind_of_change_changes_the_hash(tmp_path, change):
    root = _make(tmp_path / "t")
    before = tree_hash(root)
    if change == "content":
        (root / "a.txt").write_bytes(b"hellO\n")
    elif change == "exec":
        (root / "a.txt").chmod(0o755)
    elif change == "symlink":
        os.unlink(root / "d" / "ln")
        os.symlink("../run.sh", root / "d" / "ln")
    elif change == "empty_dir":
        (root / "d" / "empty").rmdir()
    elif change == "rename":
        (root / "a.txt").rename(root / "A.txt")
    assert tree_hash(root) != before


def test_special_files_and_missing_dir_are_errors(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(TreeHashError, match="fifo"):
        tree_hash(tmp_path)
    with pytest.raises(TreeHashError, match="cannot hash"):
        tree_hash(tmp_path / "nope")


def test_cli(tmp_path, capsys):
    root = _make(tmp_path / "t")
    assert main([str(root)]) == 0
    assert capsys.readouterr().out.strip() == tree_hash(root)
    assert main([str(root), "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("f 0 6 ") and out[0].endswith(" a.txt")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-m", "redox_tools.sources.treehash", str(tmp_path / "nope")],
                       env=env, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error: cannot hash") and p.stderr.count("\n") == 1
