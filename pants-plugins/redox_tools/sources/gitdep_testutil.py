"""Test helper (not a tool): make the repositories of the `packages/fixtures/git-dep` fixture.

    make(fixture_dir, root) -> GitDepFixture
        root/gitdep-sub   git repo (crate gitdep-sub)
        root/gitdep-lib   git repo, a workspace (gitdep-core inherits from it), gitdep-sub as a
                          submodule at `sub` (relative url ../gitdep-sub)
        root/registry     cargo local registry with gitdep-reg-0.1.0.crate (+ index)
    make_app(fixture_dir, dest, lib_url, commit, reg_checksum) -> (rev, tree)
        dest: git repo of the package (workspace root + Cargo.lock, member git-dep) whose lock
        pins gitdep-core and gitdep-sub at `lib_url?branch=main#commit`

Commits are deterministic (fixed author, dates). Python 3.9 compatible: the plugin's tests run
it as `python -m redox_tools.sources.gitdep_testutil FIXTURE ROOT` (prints JSON).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Tuple

from redox_tools.sources.testutil import git

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def _repo_from(src: Path, dest: Path) -> None:
    shutil.copytree(str(src), str(dest))
    git("init", "-q", cwd=dest)


def _commit(repo: Path) -> str:
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "fixture", cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


@dataclass
class GitDepFixture:
    root: str
    lib: str  # the dependency's repository (non-bare)
    lib_url: str
    lib_commit: str
    sub: str
    registry: str  # local registry dir
    reg_checksum: str


def make_crate_file(crate_dir: Path, name: str, version: str, out: Path) -> str:
    """A deterministic .crate (tar.gz of `<name>-<version>/`); returns its sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for path in sorted(p for p in crate_dir.rglob("*") if p.is_file()):
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{name}-{version}/{path.relative_to(crate_dir).as_posix()}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tf.addfile(info, io.BytesIO(data))
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue())
    out.write_bytes(raw.getvalue())
    return hashlib.sha256(raw.getvalue()).hexdigest()


def make_local_registry(crate_dir: Path, name: str, version: str, registry: Path) -> str:
    """cargo's local-registry layout: `<registry>/<name>-<version>.crate` + `index/<aa>/<bb>/<name>`."""
    registry.mkdir(parents=True, exist_ok=True)
    checksum = make_crate_file(crate_dir, name, version, registry / f"{name}-{version}.crate")
    index = registry / "index" / name[:2] / name[2:4] / name
    index.parent.mkdir(parents=True, exist_ok=True)
    entry = {"name": name, "vers": version, "deps": [], "cksum": checksum, "features": {}, "yanked": False}
    index.write_text(json.dumps(entry, sort_keys=True) + "\n")
    return checksum


def make(fixture: Path, root: Path) -> GitDepFixture:
    fixture, root = Path(fixture), Path(root)
    sub = root / "gitdep-sub"
    _repo_from(fixture / "sub", sub)
    _commit(sub)
    lib = root / "gitdep-lib"
    _repo_from(fixture / "lib", lib)
    git("submodule", "add", "-q", "../gitdep-sub", "sub", cwd=lib)
    lib_commit = _commit(lib)
    checksum = make_local_registry(fixture / "registry-crate", "gitdep-reg", "0.1.0", root / "registry")
    return GitDepFixture(str(root), str(lib), f"file://{lib}", lib_commit, str(sub), str(root / "registry"), checksum)


def make_app(fixture: Path, dest: Path, lib_url: str, commit: str, reg_checksum: str) -> Tuple[str, str]:
    """The package's repository with its lock pinning the git dependency; returns (rev, tree)."""
    dest = Path(dest)
    _repo_from(Path(fixture) / "app", dest)
    source = f"git+{lib_url}?branch=main#{commit}"
    lock = (dest / "Cargo.lock.in").read_text().replace("@LIB_SOURCE@", source).replace("@REG_CHECKSUM@", reg_checksum)
    (dest / "Cargo.lock").write_text(lock)
    (dest / "Cargo.lock.in").unlink()
    manifest = dest / "git-dep" / "Cargo.toml"
    manifest.write_text(manifest.read_text().replace("@LIB_URL@", lib_url))
    rev = _commit(dest)
    return rev, git("rev-parse", "HEAD^{tree}", cwd=dest)


def main(argv: list) -> int:
    fixture, root = Path(argv[0]), Path(argv[1])
    made = make(fixture, root)
    out = asdict(made)
    out["apps"] = {}
    # `name=URL@COMMIT` pairs: one app repository each (COMMIT "lib" = the library's commit).
    for spec in argv[2:]:
        name, _, rest = spec.partition("=")
        url, _, commit = rest.rpartition("@")
        rev, tree = make_app(fixture, root / name, url or made.lib_url, made.lib_commit if commit == "lib" else commit,
                             made.reg_checksum)
        out["apps"][name] = {"url": f"file://{root / name}", "rev": rev, "tree": tree}
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
