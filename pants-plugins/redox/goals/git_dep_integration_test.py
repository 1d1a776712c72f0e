"""An upstream package with a git dependency, through Pants' engine, with no network: the
fixture packages/fixtures/git-dep made into repositories here (file:// URLs; the dependency a
workspace with an inherited manifest and a submodule), crates.io replaced by a local registry
(`[redox-sources].cargo_config`), Debian's cargo (which cannot fetch git) as the toolchain.

The package is a workspace member whose Cargo.lock is at the repository root
(`source_subdir="git-dep"`); it is built for the host so the test can run it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Dict

import pytest
from pants.core.goals.package import BuiltPackage
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import QueryRule, RuleRunner

from redox.goals.cargo_package import CargoPackageFieldSet
from redox.goals.package_integration_test import PEX, build_root_files, configure, materialize, package, redox_rule_runner

LOCK = "3rdparty/test-sources/sources.lock.toml"
UNREACHABLE = "https://127.0.0.1:9/redox/gitdep-lib.git"
WRONG = "0123456789abcdef0123456789abcdef01234567"

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(PEX) and os.path.isfile("/usr/bin/cargo")),
    reason="needs the bootstrapped pex (run via ./pants) and Debian's cargo",
)


def make_repositories(build_root: str, root: Path) -> Dict:
    """The fixture's repositories (redox_tools.sources.gitdep_testutil, run from the build root)."""
    proc = subprocess.run(
        [
            sys.executable, "-m", "redox_tools.sources.gitdep_testutil", f"{build_root}/packages/fixtures/git-dep",
            str(root), "app=@lib", f"wrong=@{WRONG}", f"offline={UNREACHABLE}@lib",
        ],
        cwd=f"{build_root}/pants-plugins", env={**os.environ, "PYTHONPATH": f"{build_root}/pants-plugins"},
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Dict:
    return {"root": tmp_path_factory.mktemp("gitdep")}


@pytest.fixture(scope="module")
def rule_runner(made: Dict) -> RuleRunner:
    rr = redox_rule_runner(QueryRule(BuiltPackage, [CargoPackageFieldSet]))
    rr.write_files(build_root_files())
    made.update(make_repositories(rr.build_root, made["root"]))
    lock = "[lock]\nformat = 1\n"
    targets = ""
    for name, app in sorted(made["apps"].items()):
        lock += (
            f'\n[sources.gitdep-{name}]\ngit = "{app["url"]}"\nrev = "{app["rev"]}"\ngit_tree = "{app["tree"]}"\n'
            'tree_hash = "unverified: test"\n'
        )
        targets += f'redox_source(name="gitdep-{name}")\n'
    rr.write_files({
        LOCK: lock,
        "3rdparty/test-sources/BUILD": targets,
        "packages/upstream/BUILD": "".join(
            f"""
redox_cargo_package(
    name="git-dep-{name}",
    sources=[],
    source="3rdparty/test-sources:gitdep-{name}",
    source_subdir="git-dep",
    rust_target="host",
    install={{"git-dep": "/usr/bin/git-dep"}},
)
""" for name in sorted(made["apps"])
        ),
    })
    set_mirrors(rr, made, [])
    return rr


def set_mirrors(rr: RuleRunner, made: Dict, mirrors) -> None:
    config = f'[source.crates-io]\nreplace-with = "mirror"\n\n[source.mirror]\nlocal-registry = "{made["registry"]}"\n'
    configure(
        rr,
        search_path=["/usr/bin"],
        extra=[
            f"--redox-sources-lock={LOCK}",
            f"--redox-sources-cargo-config={config}",
            f"--redox-sources-mirror-dirs={[str(m) for m in mirrors]!r}",
        ],
    )


def build_and_run(rr: RuleRunner, name: str) -> str:
    built = package(rr, Address("packages/upstream", target_name=f"git-dep-{name}"), CargoPackageFieldSet)
    relpath = f"packages.upstream/git-dep-{name}/usr/bin/git-dep"
    assert [a.relpath for a in built.artifacts] == [relpath]
    binary = materialize(rr, built, Path(rr.build_root) / f"dist-{name}") / relpath
    return subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout


def failure(rr: RuleRunner, name: str) -> str:
    with pytest.raises(ExecutionError) as excinfo:
        package(rr, Address("packages/upstream", target_name=f"git-dep-{name}"), CargoPackageFieldSet)
    message = str(excinfo.value).split("PackageBuildError: ")[-1].strip()
    assert "Traceback" not in message and "__upstream" not in message
    return message


def test_git_dependency_and_local_registry_build_offline(rule_runner: RuleRunner) -> None:
    assert build_and_run(rule_runner, "app") == "git-dep: 42 + 1\n"


def test_wrong_commit_is_one_line_naming_the_package(rule_runner: RuleRunner, made: Dict) -> None:
    message = failure(rule_runner, "wrong")
    assert message.splitlines()[0].startswith(
        "packages/upstream:git-dep-wrong: git dependency gitdep-core, gitdep-sub (git+file://"
    )
    assert f"commit {WRONG} is not in {made['lib_url']}" in message.splitlines()[0]


def test_unreachable_dependency_needs_a_mirror_then_builds_from_it(
    rule_runner: RuleRunner, made: Dict, tmp_path: Path
) -> None:
    line = failure(rule_runner, "offline").splitlines()[0]
    assert line.startswith(f"packages/upstream:git-dep-offline: git dependency gitdep-core, gitdep-sub (git+{UNREACHABLE}")
    assert "unreachable" in line and "<mirror>/gitdep-lib.git" in line
    # The air-gapped way: checkouts of the dependency and of its submodule in a mirror dir.
    mirror = tmp_path / "mirror"
    for repo in ("gitdep-lib", "gitdep-sub"):
        subprocess.run(["git", "clone", "-q", f"{made['root']}/{repo}", str(mirror / repo)], check=True)
    set_mirrors(rule_runner, made, [mirror])
    try:
        assert build_and_run(rule_runner, "offline") == "git-dep: 42 + 1\n"
    finally:
        set_mirrors(rule_runner, made, [])


def test_tampered_mirror_is_one_line_naming_it(rule_runner: RuleRunner, made: Dict, tmp_path: Path) -> None:
    # A mirror checkout whose stored content of core/src/lib.rs was changed under its old id.
    mirror = tmp_path / "mirror"
    lib = mirror / "gitdep-lib"
    mirror.mkdir()
    subprocess.run(["cp", "-a", f"{made['root']}/gitdep-lib", str(lib)], check=True)
    subprocess.run(["git", "clone", "-q", f"{made['root']}/gitdep-sub", str(mirror / "gitdep-sub")], check=True)
    blob = subprocess.run(["git", "-C", str(lib), "rev-parse", "HEAD:core/src/lib.rs"], check=True,
                          capture_output=True, text=True).stdout.strip()
    obj = lib / ".git" / "objects" / blob[:2] / blob[2:]
    body = b"pub fn answer() -> u32 { 666 }\n"
    obj.chmod(0o644)
    obj.write_bytes(zlib.compress(b"blob %d\0" % len(body) + body))
    set_mirrors(rule_runner, made, [mirror])
    try:
        line = failure(rule_runner, "offline").splitlines()[0]
    finally:
        set_mirrors(rule_runner, made, [])
    assert line.startswith("packages/upstream:git-dep-offline: git dependency gitdep-core, gitdep-sub")
    assert f"mirror {lib}: git fetch from {lib} failed" in line and "the mirror is damaged or was tampered with" in line
