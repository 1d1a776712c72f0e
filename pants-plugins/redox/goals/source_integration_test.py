"""`redox_cargo_package(source=...)` end to end: fetch a pinned git source, vendor the crates its
Cargo.lock pins (the fetch phase's network step), build it offline, through Pants' engine. And
`redox_c_package(source=...)`: a static lib from `source_files` of the same checkout (openlibm's way).
And the data and make packages' code from the checkout (at its root and at a `source_subdir`).

The upstream is a local git repository (file:// URL) holding a copy of the vendored-dep fixture;
crates.io is replaced, through `[redox-sources].cargo_config`, by a directory source at the
toolchain's std vendor (which has cfg-if 1.0.4), so `cargo vendor` runs offline here.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import pytest
from pants.core.goals.package import BuiltPackage
from pants.engine.addresses import Address
from pants.engine.fs import AddPrefix, Digest, Snapshot
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import QueryRule, RuleRunner

from redox.goals.c_package import CPackageFieldSet
from redox.goals.data_package import DataPackageFieldSet
from redox.goals.make_package import MakePackageFieldSet
from redox.goals.cargo_package import CARGO_VENDOR_DIR, UPSTREAM_DIR, CargoPackageFieldSet, CargoVendor, CargoVendorRequest
from redox.goals.package_integration_test import (
    READELF,
    build_root_files,
    configure,
    materialize,
    package,
    readelf,
    redox_rule_runner,
)
from redox.goals.source import SourceCheckout, SourceCheckoutRequest
from redox.util_rules.toolchain import RedoxToolchain, RedoxToolchainRequest

STD_VENDOR = "/usr/src/rustc-1.96.0/library/vendor"
LLVM_AR = "/usr/bin/llvm-ar-22"
LLVM_NM = "/usr/bin/llvm-nm-22"
LOCK = "3rdparty/test-sources/sources.lock.toml"
CARGO_CONFIG = (
    '[source.crates-io]\nreplace-with = "std-vendor"\n\n'
    f'[source.std-vendor]\ndirectory = "{STD_VENDOR}"\n'
)
# A crates.io mirror nobody listens on: what an offline machine sees, on any machine.
DEAD_MIRROR = '[source.crates-io]\nreplace-with = "dead"\n\n[source.dead]\nregistry = "sparse+https://127.0.0.1:9/index/"\n'

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(READELF) and os.path.isdir(f"{STD_VENDOR}/cfg-if-1.0.4")),
    reason="needs llvm-22 and rust-src's std vendor (3rdparty/tools/host-packages)",
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


# relibc-like: a header in include/ and an openlibm-like library beside it.
C_UPSTREAM = {
    "include/mlib_defs.h": "#define MLIB_TWO 2\n",
    "mlib/include/mlib.h": "double mlib_twice(double);\nint mlib_abs(int);\n",
    "mlib/src/twice.c": '#include <mlib.h>\n#include "mlib_defs.h"\ndouble mlib_twice(double x) { return x * MLIB_TWO; }\n',
    "mlib/src/abs.c": "#include <mlib.h>\nint mlib_abs(int x) { return x < 0 ? -x : x; }\n",
    "mlib/amd64/abs.S": ".globl mlib_abs\n.type mlib_abs,@function\nmlib_abs:\n mov %edi, %eax\n neg %eax\n cmovl %edi, %eax\n ret\n",
}


def make_upstream(root: Path) -> Dict[str, str]:
    """A git repository holding the vendored-dep fixture under `crates/vendored-dep`."""
    repo = root / "upstream"
    shutil.copytree("packages/fixtures/vendored-dep", repo / "crates" / "vendored-dep", ignore=shutil.ignore_patterns("BUILD"))
    for name, text in C_UPSTREAM.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "vendored-dep")
    return {"url": f"file://{repo}", "rev": git(repo, "rev-parse", "HEAD"), "tree": git(repo, "rev-parse", "HEAD^{tree}")}


@pytest.fixture(scope="module")
def rule_runner(tmp_path_factory: pytest.TempPathFactory) -> RuleRunner:
    rr = redox_rule_runner(
        QueryRule(BuiltPackage, [CargoPackageFieldSet]),
        QueryRule(BuiltPackage, [CPackageFieldSet]),
        QueryRule(BuiltPackage, [DataPackageFieldSet]),
        QueryRule(BuiltPackage, [MakePackageFieldSet]),
        QueryRule(SourceCheckout, [SourceCheckoutRequest]),
        QueryRule(RedoxToolchain, [RedoxToolchainRequest]),
        QueryRule(CargoVendor, [CargoVendorRequest]),
        QueryRule(Digest, [AddPrefix]),
        QueryRule(Snapshot, [Digest]),
    )
    up = make_upstream(tmp_path_factory.mktemp("upstream"))
    files = build_root_files()
    files[LOCK] = f"""
[lock]
format = 1

[sources.vdep]
git = "{up['url']}"
rev = "{up['rev']}"
git_tree = "{up['tree']}"
tree_hash = "unverified: compute with update"

[sources.gone]
git = "https://127.0.0.1:9/x.git"
rev = "{up['rev']}"
git_tree = "{up['tree']}"
tree_hash = "unverified: compute with update"
"""
    files["3rdparty/test-sources/BUILD"] = 'redox_source(name="vdep")\nredox_source(name="gone")\n'
    files["packages/upstream/BUILD"] = """
redox_cargo_package(
    name="vendored-dep",
    sources=[],
    source="3rdparty/test-sources:vdep",
    source_subdir="crates/vendored-dep",
    rust_target="x86_64-unknown-redox",
    build_std=["core", "compiler_builtins"],
    rustflags=["-Crelocation-model=static", "-Ctarget-feature=+crt-static"],
    entry="_start",
    install={"vendored-dep": "/usr/bin/vendored-dep"},
)
redox_c_package(
    name="mlib",
    sources=[],
    source="3rdparty/test-sources:vdep",
    source_subdir="mlib",
    source_files=["src/*.c", "amd64/*.S", "!src/abs.c"],
    include_dirs=["include", "../include"],
    output_kind="static_lib",
    cflags=["-fno-stack-protector", "-fPIC"],
    install={"libmlib.a": "/usr/lib/libmlib.a"},
)
redox_c_package(
    name="mlib-offline",
    sources=[],
    source="3rdparty/test-sources:gone",
    source_files=["src/*.c"],
    output_kind="static_lib",
    install={"libmlib-offline.a": "/usr/lib/libmlib.a"},
)
redox_data_package(
    name="mlib-data",
    source="3rdparty/test-sources:vdep",
    source_subdir="mlib",
    install={"include/*": "/usr/include", "src/twice.c": "/usr/src/mlib/twice.c"},
)
redox_data_package(
    name="root-data",
    source="3rdparty/test-sources:vdep",
    install={"include/mlib_defs.h": "/usr/include/mlib_defs.h"},
)
redox_data_package(
    name="data-offline",
    source="3rdparty/test-sources:gone",
    install={"include/mlib_defs.h": "/usr/include/mlib_defs.h"},
)
redox_make_package(
    name="mlib-headers",
    sources=[],
    source="3rdparty/test-sources:vdep",
    source_subdir="mlib",
    script='mkdir -p "$COOKBOOK_STAGE/usr/include" && cp include/mlib.h ../include/mlib_defs.h "$COOKBOOK_STAGE/usr/include/"',
)
redox_cargo_package(
    name="no-lock",
    sources=[],
    source="3rdparty/test-sources:vdep",
    source_subdir="crates",
    rust_target="x86_64-unknown-redox",
    install={"x": "/usr/bin/x"},
)
"""
    rr.write_files(files)
    set_cargo_config(rr, CARGO_CONFIG)
    return rr


def set_cargo_config(rr: RuleRunner, cargo_config: str) -> None:
    configure(
        rr,
        search_path=["/usr/bin"],
        extra=[f"--redox-sources-lock={LOCK}", f"--redox-sources-cargo-config={cargo_config}"],
    )


VDEP = Address("packages/upstream", target_name="vendored-dep")


def test_vendor_step_vendors_the_lock_through_the_configured_mirror(rule_runner: RuleRunner) -> None:
    checkout = rule_runner.request(
        SourceCheckout, [SourceCheckoutRequest(Address("3rdparty/test-sources", target_name="vdep"), "test")]
    )
    upstream = rule_runner.request(Digest, [AddPrefix(checkout.digest, UPSTREAM_DIR)])
    toolchain = rule_runner.request(RedoxToolchain, [RedoxToolchainRequest("x86_64-unknown-redox", needs_rust_src=True)])
    vendored = rule_runner.request(
        CargoVendor, [CargoVendorRequest(VDEP, upstream, f"{UPSTREAM_DIR}/crates/vendored-dep", toolchain)]
    )
    files = rule_runner.request(Snapshot, [vendored.digest]).files
    assert f"{CARGO_VENDOR_DIR}/cfg-if-1.0.4/Cargo.toml" in files
    assert f"{CARGO_VENDOR_DIR}/cfg-if-1.0.4/.cargo-checksum.json" in files


def test_source_package_vendors_its_crates_and_builds(rule_runner: RuleRunner) -> None:
    built = package(rule_runner, VDEP, CargoPackageFieldSet)
    relpath = "packages.upstream/vendored-dep/usr/bin/vendored-dep"
    assert [a.relpath for a in built.artifacts] == [relpath]
    binary = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-upstream") / relpath
    assert os.access(binary, os.X_OK)
    header = readelf(binary, "-h")
    assert "ELF64" in header and "EXEC (Executable file)" in header and "X86-64" in header
    assert "INTERP" not in readelf(binary, "-l")


def test_unreachable_git_source_fails_naming_the_pin(rule_runner: RuleRunner) -> None:
    request = SourceCheckoutRequest(Address("3rdparty/test-sources", target_name="gone"), "test")
    with pytest.raises(ExecutionError) as excinfo:
        rule_runner.request(SourceCheckout, [request])
    message = str(excinfo.value)
    assert "SourceUnavailable" in message and "3rdparty/test-sources:gone" in message
    assert "gone" in message.split("SourceUnavailable")[-1] and "127.0.0.1:9" in message


def test_unreachable_crates_io_fails_with_one_clear_error(rule_runner: RuleRunner) -> None:
    set_cargo_config(rule_runner, DEAD_MIRROR)
    try:
        with pytest.raises(ExecutionError) as excinfo:
            package(rule_runner, VDEP, CargoPackageFieldSet)
    finally:
        set_cargo_config(rule_runner, CARGO_CONFIG)
    message = str(excinfo.value).split("PackageBuildError")[-1]
    assert "packages/upstream:vendored-dep: crates.io unreachable" in message
    assert "set [redox-sources].cargo_config to a local registry mirror" in message
    assert "Traceback" not in message


def test_source_without_cargo_lock_fails_with_one_clear_error(rule_runner: RuleRunner) -> None:
    with pytest.raises(ExecutionError) as excinfo:
        package(rule_runner, Address("packages/upstream", target_name="no-lock"), CargoPackageFieldSet)
    message = str(excinfo.value).split("PackageBuildError")[-1]
    assert "packages/upstream:no-lock: the source checkout has no Cargo.lock in crates" in message


def test_c_package_from_source_checkout(rule_runner: RuleRunner) -> None:
    built = package(rule_runner, Address("packages/upstream", target_name="mlib"), CPackageFieldSet)
    relpath = "packages.upstream/mlib/usr/lib/libmlib.a"
    assert [a.relpath for a in built.artifacts] == [relpath]
    lib = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-mlib") / relpath
    members = subprocess.run([LLVM_AR, "t", str(lib)], check=True, capture_output=True, text=True).stdout.split()
    assert members == ["abs.o", "twice.o"]  # abs.o from amd64/abs.S (src/abs.c dropped)
    symbols = subprocess.run([LLVM_NM, "--defined-only", str(lib)], check=True, capture_output=True, text=True).stdout
    assert " T mlib_abs" in symbols and " T mlib_twice" in symbols, symbols


@pytest.mark.parametrize(
    "name, field_set_type", [("mlib-offline", CPackageFieldSet), ("data-offline", DataPackageFieldSet)]
)
def test_package_from_unreachable_source_fails_with_one_message(rule_runner: RuleRunner, name: str, field_set_type) -> None:
    with pytest.raises(ExecutionError) as excinfo:
        package(rule_runner, Address("packages/upstream", target_name=name), field_set_type)
    message = str(excinfo.value)
    assert "SourceUnavailable" in message and "3rdparty/test-sources:gone" in message and "127.0.0.1:9" in message
    assert "PackageBuildError" not in message


@pytest.mark.parametrize(
    "name, field_set_type, installed",
    [
        ("mlib-data", DataPackageFieldSet, {"usr/include/mlib.h": "mlib/include/mlib.h", "usr/src/mlib/twice.c": "mlib/src/twice.c"}),
        ("root-data", DataPackageFieldSet, {"usr/include/mlib_defs.h": "include/mlib_defs.h"}),
        (
            "mlib-headers",
            MakePackageFieldSet,
            {"usr/include/mlib.h": "mlib/include/mlib.h", "usr/include/mlib_defs.h": "include/mlib_defs.h"},
        ),
    ],
)
def test_package_code_from_the_checkout(
    rule_runner: RuleRunner, name: str, field_set_type, installed: Dict[str, str]
) -> None:
    """The package's files are the checkout's, rooted at its `source_subdir` (or its root)."""
    built = package(rule_runner, Address("packages/upstream", target_name=name), field_set_type)
    prefix = f"packages.upstream/{name}/"
    assert {a.relpath for a in built.artifacts} == {prefix + p for p in installed}
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / f"dist-{name}") / prefix
    assert {p: (out / p).read_text() for p in installed} == {p: C_UPSTREAM[f] for p, f in installed.items()}
