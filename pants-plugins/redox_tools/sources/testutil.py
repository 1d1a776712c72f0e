"""Local upstreams for the fetch tests: git repositories (with a submodule) and archives made in
a temp dir and served through file:// URLs. Test helper only."""
from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1",
    "LC_ALL": "C",
}
UNREACHABLE_BASE = "https://127.0.0.1:9"  # closed port: connection refused at once


def waited_for_network(message: str) -> bool:
    """Whether an unreachable-source message says a network timeout ran out (the probe's "no
    connection ... within N s", git's or a download's "timed out"): what "fails fast" rules out,
    shown without timing the test (Pants' test timeout catches a hang)."""
    return "timed out" in message or re.search(r"no connection to \S+ within", message) is not None


def git(*args: str, cwd: Optional[Path] = None) -> str:
    env = dict(os.environ)
    env.update(GIT_ENV)
    p = subprocess.run(
        ["git", "-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main", *args],
        cwd=cwd, env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    return p.stdout.decode().strip()


def commit_all(repo: Path, msg: str) -> str:
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", msg, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def url(path: Path) -> str:
    return "file://" + str(path)


@dataclass
class Upstream:
    sub: Path  # submodule repository (non-bare)
    sub_c1: str  # the pinned submodule commit
    sub_c2: str  # a later commit
    proj: Path  # main repository (non-bare)
    c1: str  # pinned commit (submodule at sub_c1)
    c1_tree: str
    c2: str  # later commit on main (a.txt changed, submodule moved to sub_c2)
    c2_tree: str


def make_upstream(root: Path) -> Upstream:
    """proj@c1: a.txt, run.sh (executable), link -> a.txt, dir/b.txt, empty-ish dir/keep,
    submodule vendor/libsub@sub_c1. proj@c2 changes a.txt and moves the submodule."""
    sub = root / "up" / "libsub"
    sub.mkdir(parents=True)
    git("init", "-q", cwd=sub)
    (sub / "sub.txt").write_text("submodule v1\n")
    sub_c1 = commit_all(sub, "sub 1")
    (sub / "sub.txt").write_text("submodule v2\n")
    sub_c2 = commit_all(sub, "sub 2")

    proj = root / "up" / "proj"
    proj.mkdir(parents=True)
    git("init", "-q", cwd=proj)
    (proj / "a.txt").write_text("hello 1\nline 2\nline 3\n")
    (proj / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (proj / "run.sh").chmod(0o755)
    os.symlink("a.txt", proj / "link")
    (proj / "dir").mkdir()
    (proj / "dir" / "b.txt").write_text("b\n")
    git("submodule", "add", "-q", url(sub), "vendor/libsub", cwd=proj)
    git("checkout", "-q", sub_c1, cwd=proj / "vendor" / "libsub")
    c1 = commit_all(proj, "one")
    (proj / "a.txt").write_text("hello 2\nline 2\nline 3\n")
    git("checkout", "-q", sub_c2, cwd=proj / "vendor" / "libsub")
    c2 = commit_all(proj, "two")
    return Upstream(
        sub=sub, sub_c1=sub_c1, sub_c2=sub_c2, proj=proj, c1=c1,
        c1_tree=git("rev-parse", f"{c1}^{{tree}}", cwd=proj), c2=c2,
        c2_tree=git("rev-parse", f"{c2}^{{tree}}", cwd=proj),
    )


def reference_checkout(up: Upstream, dest: Path, rev: str) -> Path:
    """A checkout made by git itself (clone --recursive at `rev`), for independent expectations."""
    git("clone", "-q", url(up.proj), str(dest))
    git("checkout", "-q", rev, cwd=dest)
    git("submodule", "update", "-q", "--init", "--recursive", cwd=dest)
    return dest


def bare_mirror(src: Path, dest: Path) -> Path:
    git("clone", "-q", "--mirror", url(src), str(dest))
    return dest


def make_tar_gz(path: Path, files: Dict[str, bytes], *, top: str = "pkg-1.0", modes: Optional[Dict[str, int]] = None,
                symlinks: Optional[Dict[str, str]] = None, raw_names: Sequence[str] = ()) -> Path:
    """A deterministic .tar.gz with entries under `top/` (raw_names: extra members as given)."""
    modes = modes or {}
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo(top)
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        tf.addfile(d)
        for name, data in sorted(files.items()):
            ti = tarfile.TarInfo(f"{top}/{name}")
            ti.size = len(data)
            ti.mode = modes.get(name, 0o644)
            tf.addfile(ti, io.BytesIO(data))
        for name, target in sorted((symlinks or {}).items()):
            ti = tarfile.TarInfo(f"{top}/{name}")
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            tf.addfile(ti)
        for name in raw_names:
            ti = tarfile.TarInfo(name)
            ti.size = 1
            tf.addfile(ti, io.BytesIO(b"x"))
    return path
