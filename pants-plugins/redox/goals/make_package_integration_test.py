"""`redox_make_package` end to end through Pants' engine with the real toolchain: the relibc-make
fixture's own Makefile (`make all` + `make install DESTDIR={stage}/usr PREFIX=`) run with
cbindgen 0.29.0 built from its crates.io release (`//packages/host:cbindgen`: the real pin of
3rdparty/redox/sources.lock.toml, fetched from static.crates.io, its Cargo.lock vendored from
crates.io), and C, no_std Rust and Rust std programs linked against what it installs (the std
program against `:sysroot`, a `redox_sysroot` of that install plus a libgcc stand-in).

Network: crates.io (the cbindgen archive and its crates; the fixture's `cc` crate). Cold on 2
cores: cbindgen's host build, the fixture's build-std staticlib and hello-std's
`-Z build-std=std,panic_abort` dominate (see the module's timeout in BUILD).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pants.core.goals.package import BuiltPackage
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import QueryRule, RuleRunner

from redox.goals.c_package import CPackageFieldSet
from redox.goals.cargo_package import CargoPackageFieldSet
from redox.goals.make_package import MakePackageFieldSet
from redox.goals.sysroot import SysrootFieldSet
from redox.goals.package_integration_test import (
    build_root_files,
    configure,
    materialize,
    package,
    readelf,
    redox_rule_runner,
)
from redox.goals.package_integration_test import pytestmark as needs_toolchain

pytestmark = needs_toolchain
FIXTURE = "packages/fixtures/relibc-make"
LOCK = "3rdparty/redox/sources.lock.toml"

# Beside the fixture's own BUILD (packages/fixtures:relibc-make-build): its Makefile run without
# neutralising its git lines, and sysroots whose trees agree and disagree.
TEST_BUILD = """
redox_make_package(
    name="relibc-with-git",
    sources=["Makefile", "Cargo.toml", "Cargo.lock", "build.rs", "renamesyms.sh", "dynlst.txt",
             "cbindgen.globdefs.toml", "src/**/*", "include/*.h", "openlibm/**/*"],
    make=["all"],
    make_variables={"GIT": "git-is-not-here"},
    host_tools=["//packages/host:cbindgen"],
)
# The same libgcc twice merges; a second libc.a does not.
redox_sysroot(name="sysroot-twice", trees=[":relibc", ":libgcc", ":libgcc"])
redox_c_package(name="other-libc", sources=["libgcc/*.c"], output_kind="static_lib",
                install={"libother-libc.a": "/usr/lib/libc.a"})
redox_sysroot(name="sysroot-clash", trees=[":relibc", ":other-libc"])
"""
# The catalog's cbindgen (packages/host/BUILD), compiled in the dev profile without debug info:
# the same crates.io release and Cargo.lock, 25 s of CPU instead of release's 100 (cold CI pays it
# on every run; the fixture's headers take it no time either way).
HOST_BUILD = """
redox_cargo_package(name="cbindgen", sources=[], source="//3rdparty/redox:cbindgen", rust_target="host",
                    bins=["cbindgen"], install={"cbindgen": "/bin/cbindgen"},
                    profile="dev", profile_settings={"debug": "0"})
"""


@pytest.fixture(scope="module")
def rule_runner() -> RuleRunner:
    rr = redox_rule_runner(
        QueryRule(BuiltPackage, [CargoPackageFieldSet]),
        QueryRule(BuiltPackage, [CPackageFieldSet]),
        QueryRule(BuiltPackage, [MakePackageFieldSet]),
        QueryRule(BuiltPackage, [SysrootFieldSet]),
    )
    with open(LOCK, encoding="utf-8") as f:
        lock = f.read()
    rr.write_files(
        {
            **build_root_files(),
            f"{FIXTURE}/BUILD": Path(FIXTURE, "BUILD").read_text(encoding="utf-8") + TEST_BUILD,
            "packages/host/BUILD": HOST_BUILD,
            "3rdparty/redox/BUILD": 'redox_source(name="cbindgen")\n',
            LOCK: lock,
        }
    )
    # write_files drops the exec bit the repository gives the fixture's scripts (the Makefile runs
    # ./renamesyms.sh as upstream's does); Pants records it in the sources' digest.
    for script in Path(rr.build_root, FIXTURE).rglob("*.sh"):
        script.chmod(0o755)
    configure(rr, search_path=["/usr/bin"])
    return rr


@pytest.fixture(scope="module")
def sysroot(rule_runner: RuleRunner) -> Path:
    built = package(rule_runner, Address(FIXTURE, target_name="relibc"), MakePackageFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-relibc")
    return out / "packages.fixtures.relibc-make/relibc"


def test_make_install_has_upstreams_layout(sysroot: Path) -> None:
    lib = sysroot / "usr/lib"
    links = {p.name: os.readlink(p) for p in lib.iterdir() if p.is_symlink()}
    assert links == {"libc.so.6": "libc.so", "ld64.so.1": "libc.so", "crt1.o": "crt0.o", "Scrt1.o": "crt0.o"}
    files = sorted(p.name for p in lib.iterdir() if not p.is_symlink())
    assert files == sorted(["libc.a", "libc.so", "crt0.o", "crti.o", "crtn.o", "libm.a", "libdl.a", "libpthread.a",
                            "librt.a"])
    # One header per src/header/<name>/cbindgen.toml (cbindgen 0.29 reads stdlib's `deprecated`
    # key, which Debian's 0.24.3 rejects), then the static and openlibm headers.
    headers = sorted(p.name for p in (sysroot / "usr/include").iterdir())
    assert headers == ["errno.h", "math.h", "stdio.h", "stdlib.h", "string.h", "unistd.h"]
    assert "Generated by cbindgen" in (sysroot / "usr/include/stdlib.h").read_text()


def test_libc_so_is_linked_like_upstreams(sysroot: Path) -> None:
    libc_so = sysroot / "usr/lib/libc.so"
    dynamic = readelf(libc_so, "-d")
    assert "Library soname: [libc.so.6]" in dynamic
    assert "(RELR)" in dynamic  # -z pack-relative-relocs
    assert "(INTERP)" not in readelf(libc_so, "-l")
    exported = {
        line.split()[-1]
        for line in readelf(libc_so, "--dyn-syms").splitlines()
        if " GLOBAL " in line and " DEFAULT " in line and " UND " not in line
    }
    assert {"puts", "write", "malloc", "fabs", "strlen", "_dl_marker"} <= exported
    # The C of src/c went through cc-rs with the target's clang, not the host's gcc.
    comments = readelf(sysroot / "usr/lib/libc.a", "-p", ".comment")
    stdio = comments.split("stdio.o)")[1].split("File:")[0]
    assert "clang" in stdio and "GCC" not in stdio


def test_c_programs_link_against_the_make_installed_sysroot(rule_runner: RuleRunner, sysroot: Path) -> None:
    built = package(rule_runner, Address(FIXTURE, target_name="hello-c"), CPackageFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-hello-c")
    static = out / "packages.fixtures.relibc-make/hello-c/usr/bin/hello-c"
    assert "INTERP" not in readelf(static, "-l") and " puts" in readelf(static, "-s")
    built = package(rule_runner, Address(FIXTURE, target_name="hello-c-dynamic"), CPackageFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-hello-c-dynamic")
    dyn = out / "packages.fixtures.relibc-make/hello-c-dynamic/usr/bin/hello-c-dynamic"
    assert "[Requesting program interpreter: /usr/lib/ld64.so.1]" in readelf(dyn, "-l")
    assert "Shared library: [libc.so.6]" in readelf(dyn, "-d")
    undefined = {ln.split()[-1] for ln in readelf(dyn, "--dyn-syms").splitlines() if " UND " in ln and ln.split()[-1] != "UND"}
    assert {"puts", "fabs"} <= undefined


def test_rust_std_program_links_against_the_make_installed_sysroot(rule_runner: RuleRunner, sysroot: Path) -> None:
    built = package(rule_runner, Address(FIXTURE, target_name="hello-std"), CargoPackageFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-hello-std")
    program = out / "packages.fixtures.relibc-make/hello-std/usr/bin/hello-std"
    header = readelf(program, "-h")
    assert "EXEC (Executable file)" in header and "X86-64" in header
    symbols = readelf(program, "-s")
    for name in ("_start", "write", "malloc", "_Unwind_Backtrace"):
        assert f" {name}\n" in symbols + "\n", name
    assert "INTERP" not in readelf(program, "-l")


def test_no_std_rust_programs_link_statically_and_dynamically(rule_runner: RuleRunner, sysroot: Path) -> None:
    built = package(rule_runner, Address(FIXTURE, target_name="hello-rust"), CargoPackageFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-hello-rust")
    static = out / "packages.fixtures.relibc-make/hello-rust/usr/bin/hello-rust"
    assert "INTERP" not in readelf(static, "-l")
    assert " _start\n" in readelf(static, "-s") + "\n" and " puts\n" in readelf(static, "-s") + "\n"
    built = package(rule_runner, Address(FIXTURE, target_name="hello-rust-dynamic"), CargoPackageFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-hello-rust-dynamic")
    dyn = out / "packages.fixtures.relibc-make/hello-rust-dynamic/usr/bin/hello-rust-dynamic"
    assert "[Requesting program interpreter: /usr/lib/ld64.so.1]" in readelf(dyn, "-l")
    assert "Shared library: [libc.so.6]" in readelf(dyn, "-d")


def test_sysroot_is_the_install_plus_libgcc(rule_runner: RuleRunner, sysroot: Path) -> None:
    trees = {}
    for name in ("sysroot", "sysroot-twice"):
        built = package(rule_runner, Address(FIXTURE, target_name=name), SysrootFieldSet)
        out = materialize(rule_runner, built, Path(rule_runner.build_root) / f"dist-{name}")
        root = out / f"packages.fixtures.relibc-make/{name}"
        trees[name] = {
            str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else p.read_bytes())
            for p in sorted(root.rglob("*"))
            if p.is_symlink() or p.is_file()
        }
    install = {
        str(p.relative_to(sysroot)): (os.readlink(p) if p.is_symlink() else p.read_bytes())
        for p in sorted(sysroot.rglob("*"))
        if p.is_symlink() or p.is_file()
    }
    merged = trees["sysroot"]
    # relibc's install unchanged (symlinks kept as symlinks), libgcc_eh.a beside it.
    assert {k: v for k, v in merged.items() if k != "usr/lib/libgcc_eh.a"} == install
    assert merged["usr/lib/libgcc_eh.a"][:8] == b"!<arch>\n"
    assert trees["sysroot-twice"] == merged


def test_sysroot_trees_that_disagree_are_one_clear_error(rule_runner: RuleRunner, sysroot: Path) -> None:
    with pytest.raises(ExecutionError) as excinfo:
        package(rule_runner, Address(FIXTURE, target_name="sysroot-clash"), SysrootFieldSet)
    message = str(excinfo.value)
    assert (
        f"{FIXTURE}:sysroot-clash: its `trees` install the same path with different contents: "
        f"usr/lib/libc.a (from {FIXTURE}:relibc and {FIXTURE}:other-libc)"
    ) in message
    assert "Traceback" not in message.split("PackageBuildError")[-1]


def test_cbindgen_is_the_crates_io_release(rule_runner: RuleRunner, sysroot: Path) -> None:
    built = package(rule_runner, Address("packages/host", target_name="cbindgen"), CargoPackageFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-cbindgen")
    cbindgen = out / "packages.host/cbindgen/bin/cbindgen"
    version = subprocess.run([str(cbindgen), "--version"], check=True, capture_output=True, text=True).stdout
    assert version.strip() == "cbindgen 0.29.0"


def test_makefile_git_lines_must_be_neutralised(rule_runner: RuleRunner) -> None:
    with pytest.raises(ExecutionError) as excinfo:
        package(rule_runner, Address(FIXTURE, target_name="relibc-with-git"), MakePackageFieldSet)
    message = str(excinfo.value)
    assert f"{FIXTURE}:relibc-with-git: `make all` failed" in message
    assert "git-is-not-here" in message
    assert "Traceback" not in message.split("PackageBuildError")[-1]
