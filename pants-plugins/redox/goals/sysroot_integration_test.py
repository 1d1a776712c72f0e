"""`redox_sysroot` end to end through Pants' engine with the real toolchain: the relibc-shaped
fixture's sysroot, C (static and dynamic), no_std Rust and Rust std programs linked against it,
and bad sysroots.

One RuleRunner for the module: the Rust parts (librelibc.a, hello-rust) each cost a cold
`-Z build-std=core` (~40 s) and hello-std a cold `-Z build-std=std,panic_abort` (~2 min on 2
cores); the sysroot is built once and reused by every test.
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
LLVM_NM = "/usr/bin/llvm-nm-22"

# What a `println!` hello built with `-Z build-std=std,panic_abort` for x86_64-unknown-redox
# needs from libc.a and libgcc_eh.a (measured: its link against empty archives lists them).
STD_HELLO_NEEDS = """
_Unwind_Backtrace _Unwind_GetIP __errno abort calloc close dup exit fcntl free fstat getcwd getenv
lseek malloc memcmp memcpy memmove memset open posix_memalign pthread_cond_destroy
pthread_cond_signal pthread_cond_wait pthread_key_create pthread_key_delete pthread_mutex_destroy
pthread_mutex_init pthread_mutex_lock pthread_mutex_trylock pthread_mutex_unlock
pthread_mutexattr_destroy pthread_mutexattr_init pthread_mutexattr_settype pthread_setspecific read
realloc realpath signal stat strerror_r strlen write writev
""".split()

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
redox_c_package(name="libgcc-shaped", sources=["libgcc/*.c"], output_kind="static_lib", cflags=["-fPIC"],
                install={"liblibgcc-shaped.a": "/usr/lib/libgcc_eh.a"})
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
    sources=["include/*.h", "rust/src/**/cbindgen.toml", "rust/src/**/*.rs"],
    archives=[":relibc-rust=usr/lib/librelibc.a", ":libc-c", ":openlibm"],
    crt_objects=CRT,
    ld_so_object=":crt=usr/lib/ld_so.o",
    libm=":openlibm",
    libraries={"libgcc_eh.a": ":libgcc-shaped"},
    headers=["include"],
    cbindgen={
        "rust/src/header/errno/mod.rs": "errno.h",
        "rust/src/header/stdlib/mod.rs": "stdlib.h",
        "rust/src/header/string/mod.rs": "string.h",
        "rust/src/header/unistd/mod.rs": "unistd.h",
    },
)
redox_c_package(name="hello-c", sources=["hello-c/*.c"], output_kind="executable", sysroot=":sysroot",
                install={"hello-c": "/usr/bin/hello-c"})
redox_c_package(name="hello-c-dynamic", sources=["hello-c/*.c"], output_kind="executable", sysroot=":sysroot",
                linkage="dynamic", install={"hello-c-dynamic": "/usr/bin/hello-c-dynamic"})
redox_cargo_package(
    name="hello-rust",
    sources=["hello-rust/Cargo.toml", "hello-rust/Cargo.lock", "hello-rust/src/**/*.rs"],
    build_std=["core", "compiler_builtins"],
    rustflags=["-Crelocation-model=static", "-Ctarget-feature=+crt-static"],
    entry="_start",
    sysroot=":sysroot",
    install={"hello-rust": "/usr/bin/hello-rust"},
)
redox_cargo_package(
    name="hello-std",
    sources=["hello-std/Cargo.toml", "hello-std/Cargo.lock", "hello-std/src/**/*.rs"],
    build_std=["std", "panic_abort"],
    rustflags=["-Crelocation-model=static"],
    entry="_start",
    sysroot=":sysroot",
    install={"hello-std": "/usr/bin/hello-std"},
)
redox_cargo_package(
    name="hello-rust-dynamic",
    sources=["hello-rust/Cargo.toml", "hello-rust/Cargo.lock", "hello-rust/src/**/*.rs"],
    build_std=["core", "compiler_builtins"],
    entry="_start",
    sysroot=":sysroot",
    linkage="dynamic",
    install={"hello-rust": "/usr/bin/hello-rust-dynamic"},
)
redox_sysroot(name="no-crt0", archives=[":libc-c"],
              crt_objects={"crti": ":crt=usr/lib/crti.o", "crtn": ":crt=usr/lib/crtn.o"})
redox_sysroot(name="missing-archive", archives=[":libc-c=usr/lib/nope.a"], crt_objects=CRT)
redox_c_package(name="exe-without-sysroot", sources=["hello-c/*.c"], output_kind="executable",
                install={"exe-without-sysroot": "/usr/bin/x"})
redox_sysroot(name="library-named-libc", archives=[":libc-c"], crt_objects=CRT,
              libraries={"libc.a": ":libgcc-shaped"})
redox_cargo_package(
    name="dynamic-without-sysroot",
    sources=["hello-rust/Cargo.toml", "hello-rust/Cargo.lock", "hello-rust/src/**/*.rs"],
    linkage="dynamic",
    install={"hello-rust": "/usr/bin/hello-rust"},
)
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
         "libdl.a", "libgcc_eh.a", "libm.a", "libpthread.a", "librt.a"]
    )
    members = subprocess.run([LLVM_AR, "t", str(lib / "libc.a")], check=True, capture_output=True, text=True).stdout
    names = members.split()
    assert any(n.startswith("relibc-") and n.endswith(".rcgu.o") for n in names)  # the Rust staticlib
    assert "stdio.o" in names and "fabs.o" in names  # the C archives
    shared = readelf(lib / "libc.so", "-h", "-d", "--dyn-syms")
    assert "DYN (Shared object file)" in shared and "Library soname: [libc.so.6]" in shared
    assert " puts" in shared and " write" in shared and "_dl_marker" in shared
    # openlibm's fabs, not hidden by compiler_builtins' weak hidden copy in the Rust half.
    assert " fabs" in shared and " malloc" in shared
    assert (lib / "libc.so.6").read_bytes() == (lib / "ld64.so.1").read_bytes() == (lib / "libc.so").read_bytes()
    assert "_start" in readelf(lib / "crt1.o", "-s")
    header = (sysroot / "usr/include/unistd.h").read_text()
    assert "intptr_t write(int fd, const void *buf, uintptr_t count);" in header
    assert "size_t strlen(const char *s);" in (sysroot / "usr/include/string.h").read_text()
    assert "void *malloc(size_t size);" in (sysroot / "usr/include/stdlib.h").read_text()
    assert "#define errno (*__errno())" in (sysroot / "usr/include/errno.h").read_text()
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
    "name, field_set, path",
    [
        ("hello-c-dynamic", CPackageFieldSet, "hello-c-dynamic/usr/bin/hello-c-dynamic"),
        ("hello-rust-dynamic", CargoPackageFieldSet, "hello-rust-dynamic/usr/bin/hello-rust-dynamic"),
    ],
)
def test_program_links_dynamically_against_libc_so(
    rule_runner: RuleRunner, sysroot: Path, name: str, field_set, path: str
) -> None:
    built = package(rule_runner, Address(FIXTURE, target_name=name), field_set)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / f"dist-{name}")
    binary = out / "packages.fixtures.relibc-shaped" / path
    info = readelf(binary, "-h", "-l", "-d")
    assert "ELF64" in info and ("EXEC (Executable file)" in info or "DYN (" in info)
    # PT_INTERP = where the sysroot's `interpreter` lands in the image; libc from libc.so (soname).
    assert "[Requesting program interpreter: /usr/lib/ld64.so.1]" in info
    assert "Shared library: [libc.so.6]" in info
    dynamic_symbols = readelf(binary, "--dyn-syms")
    assert " UND puts" in " ".join(dynamic_symbols.split())  # resolved at run time, not linked in


def nm_defined(path: Path) -> set:
    out = subprocess.run([LLVM_NM, "--defined-only", str(path)], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if len(line.split()) == 3}


def test_rust_std_program_links_statically_against_the_sysroot(rule_runner: RuleRunner, sysroot: Path) -> None:
    built = package(rule_runner, Address(FIXTURE, target_name="hello-std"), CargoPackageFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-hello-std")
    binary = out / "packages.fixtures.relibc-shaped/hello-std/usr/bin/hello-std"
    check_static_program(binary, ["main", "malloc", "write", "writev", "pthread_key_create", "__errno"])
    defined = nm_defined(binary)
    undefined = subprocess.run([LLVM_NM, "--undefined-only", str(binary)], check=True, capture_output=True, text=True)
    # Only weak references may stay unresolved (std's optional `__cxa_thread_atexit_impl`).
    assert [ln for ln in undefined.stdout.splitlines() if ln.split()[0] != "w"] == []
    demangled = subprocess.run([LLVM_NM, "--demangle", str(binary)], check=True, capture_output=True, text=True).stdout
    assert "std::io::stdio::_print" in demangled and "std::rt::lang_start_internal" in demangled
    # Every symbol std needs from the sysroot is defined by it (libc.a + libgcc_eh.a); the live ones
    # are in the program (--gc-sections drops the functions std only reaches from dead code).
    lib = sysroot / "usr/lib"
    provided = nm_defined(lib / "libc.a") | nm_defined(lib / "libgcc_eh.a")
    assert [s for s in STD_HELLO_NEEDS if s not in provided] == []
    live = {"write", "writev", "malloc", "free", "memcpy", "exit", "abort", "pthread_key_create", "__errno",
            "_Unwind_Backtrace", "_Unwind_GetIP", "signal", "fcntl"}
    assert sorted(live - defined) == []


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
        (
            "library-named-libc",
            SysrootFieldSet,
            ["relibc-shaped:library-named-libc", "`libraries` key 'libc.a' is a file the sysroot makes itself"],
        ),
        (
            "dynamic-without-sysroot",
            CargoPackageFieldSet,
            ["relibc-shaped:dynamic-without-sysroot", "linkage `dynamic` links against a `sysroot`'s libc.so"],
        ),
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
