"""Git dependencies end to end with the real git and the system cargo (Debian's, which cannot
fetch git itself): the fixture packages/fixtures/git-dep is made into repositories here
(file://, a workspace-inherited crate, a submodule, a local registry), vendored with
`cargo_vendor(..., git_out=...)` and built `--offline --frozen` with `cargo_config()`; the
program runs. Then the ways it goes wrong, each one error line naming the package."""
from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from redox_tools.builders.cargo_build import cargo_config
from redox_tools.errors import ToolError
from redox_tools.sources import gitdep_testutil as fx
from redox_tools.sources.cargo_git import read_index
from redox_tools.sources.vendor import VendorIncomplete, cargo_vendor

CARGO = "/usr/bin/cargo"
FIXTURE = Path("packages/fixtures/git-dep")
PKG = "packages/test:git-dep"
pytestmark = pytest.mark.skipif(
    not (os.path.isfile(CARGO) and shutil.which("git") and FIXTURE.is_dir()),
    reason="needs Debian's cargo, git and the git-dep fixture",
)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> fx.GitDepFixture:
    return fx.make(FIXTURE, tmp_path_factory.mktemp("gitdep"))


def cargo_home(tmp: Path, registry: str) -> dict:
    home = tmp / "cargo-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        f'[source.crates-io]\nreplace-with = "mirror"\n\n[source.mirror]\nlocal-registry = "{registry}"\n'
    )
    return dict(os.environ, CARGO_HOME=str(home), HOME=str(tmp), PATH="/usr/bin:/bin")


def app(made: fx.GitDepFixture, tmp: Path, url: str = "", commit: str = "") -> Path:
    dest = tmp / "app"
    fx.make_app(FIXTURE, dest, url or made.lib_url, commit or made.lib_commit, made.reg_checksum)
    return dest


def vendor(made: fx.GitDepFixture, tmp: Path, crate: Path, mirrors=(), env=None) -> None:
    cargo_vendor(str(crate), str(tmp / "vendor"), cargo=CARGO, env=env or cargo_home(tmp, made.registry), name=PKG,
                 git_out=str(tmp / "git"), mirror_dirs=[str(m) for m in mirrors], connect_timeout=5)


def test_git_dependency_vendored_by_the_project_builds_offline(made, tmp_path):
    crate = app(made, tmp_path)
    vendor(made, tmp_path, crate)
    sources = read_index(str(tmp_path / "git"))
    assert [(s.url, s.ref_kind, s.ref, s.commit) for s in sources] == [(made.lib_url, "branch", "main", made.lib_commit)]
    crates = sorted(os.listdir(sources[0].directory))
    assert crates == ["gitdep-core-0.4.2", "gitdep-sub-0.1.0"]  # gitdep-sub from the submodule
    core = Path(sources[0].directory, "gitdep-core-0.4.2", "Cargo.toml").read_text()
    assert 'version = "0.4.2"' in core and "workspace" not in core.split("\n", 1)[1]
    assert sorted(os.listdir(tmp_path / "vendor")) == ["gitdep-reg-0.1.0"]  # git crates are not duplicated there

    # The build: only directories, cargo's git never runs (it could not: libgit2 1.5).
    home = tmp_path / "build-home"
    home.mkdir()
    (home / "config.toml").write_text(cargo_config(str(tmp_path / "vendor"), sources))
    env = dict(os.environ, CARGO_HOME=str(home), PATH="/usr/bin:/bin")
    subprocess.run(
        [CARGO, "build", "--offline", "--frozen", "--manifest-path", str(crate / "git-dep" / "Cargo.toml"),
         "--target-dir", str(tmp_path / "target")],
        env=env, check=True, capture_output=True,
    )
    out = subprocess.run([str(tmp_path / "target" / "debug" / "git-dep")], check=True, capture_output=True, text=True)
    assert out.stdout == "git-dep: 42 + 1\n"


def test_unreachable_git_dependency_then_both_mirror_forms(made, tmp_path):
    url = "https://127.0.0.1:9/redox/gitdep-lib.git"
    crate = app(made, tmp_path, url=url)
    with pytest.raises(ToolError) as e:
        vendor(made, tmp_path, crate)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{PKG}: git dependency gitdep-core, gitdep-sub (git+{url}?branch=main#")
    assert "unreachable" in msg and "<mirror>/gitdep-lib.git" in msg
    # A bare mirror of the library and a checkout of its submodule (url ../gitdep-sub -> gitdep-sub).
    mirror = tmp_path / "mirror"
    fx.git("clone", "-q", "--mirror", made.lib_url, str(mirror / "gitdep-lib.git"), cwd=tmp_path)
    fx.git("clone", "-q", f"file://{made.sub}", str(mirror / "gitdep-sub"), cwd=tmp_path)
    vendor(made, tmp_path, crate, mirrors=[tmp_path / "empty-mirror", mirror])
    assert sorted(os.listdir(read_index(str(tmp_path / "git"))[0].directory)) == ["gitdep-core-0.4.2", "gitdep-sub-0.1.0"]


def test_wrong_commit_is_one_line(made, tmp_path):
    crate = app(made, tmp_path, commit="0123456789abcdef0123456789abcdef01234567")
    with pytest.raises(ToolError) as e:
        vendor(made, tmp_path, crate)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{PKG}: git dependency gitdep-core, gitdep-sub")
    assert f"commit 0123456789abcdef0123456789abcdef01234567 is not in {made.lib_url}" in msg


def test_tampered_mirror_and_plain_copy_are_refused(made, tmp_path):
    url = "https://127.0.0.1:9/redox/gitdep-lib.git"
    crate = app(made, tmp_path, url=url)
    mirror = tmp_path / "mirror"
    checkout = mirror / "gitdep-lib"
    shutil.copytree(made.lib, checkout, symlinks=True)  # a copy of the working repository: loose objects
    fx.git("clone", "-q", f"file://{made.sub}", str(mirror / "gitdep-sub"), cwd=tmp_path)
    # Tamper with the stored content of core/src/lib.rs (the object keeps its old id).
    blob = fx.git("rev-parse", "HEAD:core/src/lib.rs", cwd=checkout)
    obj = checkout / ".git" / "objects" / blob[:2] / blob[2:]
    body = b"pub fn answer() -> u32 { 666 }\n"
    obj.chmod(0o644)
    obj.write_bytes(zlib.compress(b"blob %d\0" % len(body) + body))
    with pytest.raises(ToolError) as e:
        vendor(made, tmp_path, crate, mirrors=[mirror])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{PKG}: git dependency gitdep-core, gitdep-sub")
    assert msg.split("): ", 1)[1].startswith(f"mirror {checkout}: git fetch from {checkout} failed: fatal: missing blob")
    assert "the mirror is damaged or was tampered with" in msg and "[sources." not in msg

    # A plain copy (no .git) cannot be checked against the commit: refused, saying so.
    shutil.rmtree(checkout)
    shutil.copytree(made.lib, checkout, ignore=shutil.ignore_patterns(".git"))
    with pytest.raises(ToolError) as e:
        vendor(made, tmp_path, crate, mirrors=[mirror])
    assert "a copy without .git cannot be checked against the commit" in str(e.value)


def test_local_registry_is_checked_against_the_lock_all_at_once(made, tmp_path):
    crate = app(made, tmp_path)
    lock = crate / "Cargo.lock"
    text = lock.read_text()
    lock.write_text(text + (
        '\n[[package]]\nname = "zz-absent"\nversion = "1.0.0"\n'
        f'source = "{fx.CRATES_IO}"\nchecksum = "{"0" * 64}"\n'
    ))
    registry = tmp_path / "registry"
    shutil.copytree(made.registry, registry)
    with open(registry / "gitdep-reg-0.1.0.crate", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(VendorIncomplete) as e:
        vendor(made, tmp_path, crate, env=cargo_home(tmp_path, str(registry)))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{PKG}: the crates.io mirror {registry} (local-registry)")
    assert "1 crate(s) missing: zz-absent-1.0.0" in msg
    assert "1 crate(s) differ from Cargo.lock's checksum: gitdep-reg-0.1.0" in msg


def test_crate_mirror_and_git_problems_are_reported_together(made, tmp_path):
    crate = app(made, tmp_path, url="https://127.0.0.1:9/redox/gitdep-lib.git")
    empty = tmp_path / "empty-registry"
    empty.mkdir()
    with pytest.raises(ToolError) as e:
        vendor(made, tmp_path, crate, env=cargo_home(tmp_path, str(empty)))
    lines = str(e.value).splitlines()
    assert len(lines) == 2 and all(ln.startswith(f"{PKG}: ") for ln in lines)
    assert "1 crate(s) missing: gitdep-reg-0.1.0" in lines[0] and "gitdep-lib.git unreachable" in lines[1]
    assert not (tmp_path / "vendor").exists()
