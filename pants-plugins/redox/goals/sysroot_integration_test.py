"""`redox_sysroot` end to end through Pants' engine with the real toolchain: the relibc-shaped
fixture's sysroot, a C and a Rust program linked against it, and bad sysroots.

One RuleRunner for the module: the Rust parts (librelibc.a, hello-rust) each cost a cold
`-Z build-std` (~40 s); the sysroot is built once and reused by every test.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List

import pytest
from pants.backend.python import register as python_backend
from pants.backend.python import target_types_rules
from pants.backend.python.util_rules import pex_from_targets
from pants.core.goals.package import BuiltPackage
from pants.core.target_types import FileTarget, FilesGeneratorTarget
from pants.core.util_rules import archive, system_binaries
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.testutil.rule_runner import QueryRule, RuleRunner

from redox import register
from redox.goals.c_package import CPackageFieldSet
from redox.goals.cargo_package import CargoPackageFieldSet
from redox.goals.package_integration_test import (
    BUILD_FILES,
    configure,
    materialize,
    package,
    readelf,
    repo_files,
)
from redox.goals.package_integration_test import pytestmark as needs_toolchain
from redox.goals.sysroot import SysrootFieldSet

pytestmark = needs_toolchain
FIXTURE = "packages/fixtures/relibc-shaped"
LLVM_AR = "/usr/bin/llvm-ar-22"

# packages/fixtures/relibc-shaped/BUILD (BUILD files are not in the fixtures' `files` target),
# plus two broken sysroots.
SYSROOT_BUILD = """
redox_cargo_package(
    name="relibc-rust",
    sources=["rust/Cargo.toml", "rust/Cargo.lock", "rust/src/**/*.rs"],
    build_std=["core", "compiler_builtins"],
    install={"librelibc.a": "/usr/lib/librelibc.a"},
)
redox_c_package(name="libc-c", sources=["c/*.c"], output_kind="static_lib", cflags=["-fPIC"],
                install={"liblibc-c.a": "/usr/lib/libc-c.a"})
redox_c_package(name="openlibm", sources=["libm/*.c"], output_kind="static_lib", cflags=["-fPIC"],
                install={"libopenlibm.a": "/usr/lib/libopenlibm.a"})
redox_c_package(
    name="crt",
    sources=["crt/*.S", "crt/*.c"],
    cflags=["-fPIC"],
    install={"crt0.o": "/usr/lib/crt0.o", "crti.o": "/usr/lib/crti.o", "crtn.o": "/usr/lib/crtn.o",
             "ld_so.o": "/usr/lib/ld_so.o"},
)
CRT = {"crt0": ":crt=usr/lib/crt0.o", "crti": ":crt=usr/lib/crti.o", "crtn": ":crt=usr/lib/crtn.o"}
redox_sysroot(
    name="sysroot",
    sources=["include/*.h", "rust/cbindgen.toml", "rust/src/**/*.rs"],
    archives=[":relibc-rust=usr/lib/librelibc.a", ":libc-c", ":openlibm"],
    crt_objects=CRT,
    ld_so_object=":crt=usr/lib/ld_so.o",
    libm=":openlibm",
    headers=["include"],
    cbindgen={"rust/src/lib.rs": "unistd.h"},
)
redox_c_package(name="hello-c", sources=["hello-c/*.c"], output_kind="executable", sysroot=":sysroot",
                install={"hello-c": "/usr/bin/hello-c"})
redox_cargo_package(
    name="hello-rust",
    sources=["hello-rust/Cargo.toml", "hello-rust/Cargo.lock", "hello-rust/src/**/*.rs"],
    build_std=["core", "compiler_builtins"],
    rustflags=["-Crelocation-model=static", "-Ctarget-feature=+crt-static"],
    entry="_start",
    sysroot=":sysroot",
    install={"hello-rust": "/usr/bin/hello-rust"},
)
redox_sysroot(name="no-crt0", archives=[":libc-c"],
              crt_objects={"crti": ":crt=usr/lib/crti.o", "crtn": ":crt=usr/lib/crtn.o"})
redox_sysroot(name="missing-archive", archives=[":libc-c=usr/lib/nope.a"], crt_objects=CRT)
redox_c_package(name="exe-without-sysroot", sources=["hello-c/*.c"], output_kind="executable",
                install={"exe-without-sysroot": "/usr/bin/x"})
"""


@pytest.fixture(scope="module")
def rule_runner() -> RuleRunner:
    rr = RuleRunner(
        rules=[
            *register.rules(),
            *pex_from_targets.rules(),
            *target_types_rules.rules(),
            *archive.rules(),
            *system_binaries.rules(),
            QueryRule(BuiltPackage, [CargoPackageFieldSet]),
            QueryRule(BuiltPackage, [CPackageFieldSet]),
            QueryRule(BuiltPackage, [SysrootFieldSet]),
            QueryRule(WrappedTarget, [WrappedTargetRequest]),
        ],
        target_types=[*register.target_types(), *python_backend.target_types(), FileTarget, FilesGeneratorTarget],
    )
    files = repo_files()
    reqs = [r.strip() for r in files["3rdparty/python/redox-tools-requirements.txt"].splitlines() if r.strip()]
    files["3rdparty/python/BUILD"] = "".join(
        f"python_requirement(name='r{i}', requirements=[{r!r}], resolve='redox-tools')\n" for i, r in enumerate(reqs)
    )
    rr.write_files(
        {
            **files,
            "pants-plugins/redox_tools/BUILD": BUILD_FILES["pants-plugins/redox_tools/BUILD"],
            f"{FIXTURE}/BUILD": SYSROOT_BUILD,
        }
    )
    configure(rr, search_path=["/usr/bin"])
    return rr


@pytest.fixture(scope="module")
def sysroot(rule_runner: RuleRunner) -> Path:
    built = package(rule_runner, Address(FIXTURE, target_name="sysroot"), SysrootFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-sysroot")
    return out / "packages.fixtures.relibc-shaped/sysroot"


def symbol_address(symbols: str, name: str) -> int:
    return int(next(line.split()[1] for line in symbols.splitlines() if line.endswith(f" {name}")), 16)


def check_static_program(path: Path, expected_symbols: List[str]) -> None:
    header = readelf(path, "-h")
    assert "ELF64" in header and "X86-64" in header and "EXEC (Executable file)" in header
    symbols = readelf(path, "-s")
    entry = int(header.split("Entry point address:")[1].split()[0], 16)
    assert entry == symbol_address(symbols, "_start") != 0
    for name in expected_symbols:
        assert symbol_address(symbols, name) != 0, name
    program_headers = readelf(path, "-l")
    assert "INTERP" not in program_headers and "DYNAMIC" not in program_headers


def test_sysroot_has_the_relibc_layout(sysroot: Path) -> None:
    lib = sysroot / "usr/lib"
    assert sorted(p.name for p in lib.iterdir()) == sorted(
        ["Scrt1.o", "crt0.o", "crt1.o", "crti.o", "crtn.o", "ld64.so.1", "libc.a", "libc.so", "libc.so.6",
         "libdl.a", "libm.a", "libpthread.a", "librt.a"]
    )
    members = subprocess.run([LLVM_AR, "t", str(lib / "libc.a")], check=True, capture_output=True, text=True).stdout
    names = members.split()
    assert any(n.startswith("relibc-") and n.endswith(".rcgu.o") for n in names)  # the Rust staticlib
    assert "stdio.o" in names and "fabs.o" in names  # the C archives
    shared = readelf(lib / "libc.so", "-h", "-d", "--dyn-syms")
    assert "DYN (Shared object file)" in shared and "Library soname: [libc.so.6]" in shared
    assert " puts" in shared and " write" in shared and "_dl_marker" in shared
    assert (lib / "libc.so.6").read_bytes() == (lib / "ld64.so.1").read_bytes() == (lib / "libc.so").read_bytes()
    assert "_start" in readelf(lib / "crt1.o", "-s")
    header = (sysroot / "usr/include/unistd.h").read_text()
    assert "intptr_t write(int fd, const void *buf, uintptr_t count);" in header
    assert "uintptr_t strlen(const char *s);" in header
    assert (sysroot / "usr/include/stdio.h").is_file() and (sysroot / "usr/include/math.h").is_file()


def test_c_program_links_statically_against_the_sysroot(rule_runner: RuleRunner, sysroot: Path) -> None:
    built = package(rule_runner, Address(FIXTURE, target_name="hello-c"), CPackageFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-hello-c")
    binary = out / "packages.fixtures.relibc-shaped/hello-c/usr/bin/hello-c"
    # main (the program), _start/_init (crt0, crti), puts (libc's C half), write/exit (its Rust half).
    check_static_program(binary, ["main", "_init", "puts", "write", "exit"])


def test_rust_program_links_against_the_sysroot(rule_runner: RuleRunner, sysroot: Path) -> None:
    built = package(rule_runner, Address(FIXTURE, target_name="hello-rust"), CargoPackageFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-hello-rust")
    binary = out / "packages.fixtures.relibc-shaped/hello-rust/usr/bin/hello-rust"
    check_static_program(binary, ["main", "_init", "puts", "write"])


@pytest.mark.parametrize(
    "name, field_set, expected",
    [
        ("no-crt0", SysrootFieldSet, ["relibc-shaped:no-crt0", "`crt_objects` has no crt0"]),
        (
            "missing-archive",
            SysrootFieldSet,
            ["`archives` field of packages/fixtures/relibc-shaped:missing-archive", "installs no usr/lib/nope.a",
             "usr/lib/libc-c.a"],
        ),
        ("exe-without-sysroot", CPackageFieldSet, ["relibc-shaped:exe-without-sysroot", "needs a `sysroot`"]),
    ],
)
def test_bad_sysroots_fail_with_one_clear_error(
    rule_runner: RuleRunner, name: str, field_set, expected: List[str]
) -> None:
    with pytest.raises(ExecutionError) as excinfo:
        package(rule_runner, Address(FIXTURE, target_name=name), field_set)
    message = str(excinfo.value)
    for part in expected:
        assert part in message
