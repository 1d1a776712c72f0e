"""Source pins under hostile input (issue 11 #8): a patch outside the repository and a pinned
tree with symlinks leading out of it are refused, naming the pin."""
from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

from redox_tools.errors import ToolError
from redox_tools.sources.fetch import fetch_source
from redox_tools.sources.links import escapes
from redox_tools.sources.pins import LockError, PatchRef, SourcePin, parse_lock
from redox_tools.sources.testutil import commit_all, git, url

needs_git = pytest.mark.skipif(shutil.which("git") is None or shutil.which("patch") is None, reason="git and patch needed")


def lock_with_patch(repo, patch_file: str):
    lock_dir = repo / "3rdparty" / "redox"
    lock_dir.mkdir(parents=True, exist_ok=True)
    (repo / "pants.toml").write_text("")
    data = {"lock": {"format": 1}, "sources": {"uutils": {
        "archive": "https://example.invalid/u.tar.gz", "archive_sha256": "0" * 64, "tree_hash": "unverified: t",
        "patches": [{"file": patch_file, "origin": ""}],
    }}}
    return parse_lock(data, path=str(lock_dir / "sources.lock.toml"), base_dir=str(lock_dir))


def test_a_patch_outside_the_repository_is_refused_naming_the_pin(tmp_path) -> None:
    repo = tmp_path / "repo"
    for bad in ("../../../../etc/hostname", "/etc/hostname", "../../../outside.patch"):
        with pytest.raises(LockError, match=r"\[sources.uutils\]: patch file .* (outside the repository|absolute)"):
            lock_with_patch(repo, bad)
    # a link inside the repository pointing out of it is outside too
    (repo / "3rdparty/redox/patches").mkdir(parents=True)
    os.symlink("/etc/hostname", repo / "3rdparty/redox/patches/sneaky.patch")
    with pytest.raises(LockError, match="outside the repository"):
        lock_with_patch(repo, "patches/sneaky.patch")
    # inside is fine, also above the lock's directory
    (repo / "packages").mkdir()
    assert lock_with_patch(repo, "../../packages/ok.patch").sources[0].patches[0].file == "../../packages/ok.patch"
    assert lock_with_patch(repo, "patches/uutils/redox.patch")


def test_patch_refs_without_a_base_dir() -> None:
    pin = SourcePin(name="p", archive_url="https://x.invalid/a.tgz", archive_sha256="0" * 64,
                    patches=(PatchRef(file="../../etc/hostname"),))
    with pytest.raises(LockError, match=r"\[sources.p\].*'\.\.'"):
        pin.validate()


@pytest.mark.parametrize("rel,target,out", [
    ("a", "/etc/shadow", True), ("a", "../x", True), ("d/a", "../x", False), ("d/a", "../../x", True),
    ("d/a", "b/../../..", True), ("a", "b/c", False), ("a", ".", False), ("d/e/a", "../../f", False),
])
def test_escapes(rel: str, target: str, out: bool) -> None:
    assert escapes(rel, target) is out


@needs_git
@pytest.mark.parametrize("target", ["/etc/shadow", "../../../etc/passwd"])
def test_a_pinned_tree_with_a_link_out_of_it_is_refused_naming_the_pin(tmp_path, target: str) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    git("init", "-q", cwd=proj)
    (proj / "a.txt").write_text("a\n")
    (proj / "sub").mkdir()
    os.symlink(target, proj / "sub" / "shadow")
    rev = commit_all(proj, "c1")
    pin = SourcePin(name="evil", git=url(proj), rev=rev, tree_hash="unverified: t")
    with pytest.raises(ToolError, match=r"\[sources.evil\]: the pinned tree has a symlink sub/shadow -> .* pointing outside"):
        fetch_source(pin, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    # an inside link is fine
    os.unlink(proj / "sub" / "shadow")
    os.symlink("../a.txt", proj / "sub" / "ok")
    rev = commit_all(proj, "c2")
    fetch_source(dataclasses.replace(pin, rev=rev), str(tmp_path / "out2"))
    assert os.readlink(tmp_path / "out2" / "sub" / "ok") == "../a.txt"
