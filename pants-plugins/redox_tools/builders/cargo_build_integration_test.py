"""The cargo build driver with the real toolchain, run as the Pants rule runs it: a subprocess
`python -m redox_tools.builders.cargo_build SPEC.json` whose CWD is the sandbox (here a tmp dir holding a
copy of a fixture crate) and whose environment is (almost) empty.

The std is built once per module (`redox_tools.stdlib.build`, as the rule does) and mounted into
each sandbox; the good builds link against it in parallel; every bad input is refused before
cargo starts compiling (or, for the post-build check, reuses a finished build's target dir).
The kernel, base and emit_object builds are in their own files so Pants schedules them apart.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import List

import pytest

from redox_tools.builders.cargo_build_testutil import (
    HELLO_STD,
    assert_one_error,
    bad_build,
    finish,
    header_field,
    hello_spec,
    mount_std,
    needs_toolchain,
    readelf,
    run,
    sandbox,
    start,
    std_for,
    std_spec,
    symbol_values,
    toolchain,
    TOOLS,
)

pytestmark = needs_toolchain


# --- the good build, twice in two directories (in parallel) ---------------------------------


@pytest.fixture(scope="module")
def std(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """redox-hello's std (core + compiler_builtins): the rule's own build (`HELLO_STD`)."""
    return std_for(HELLO_STD, tmp_path_factory.mktemp("std"), std_spec())


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory, std: Path) -> List[Path]:
    roots = [tmp_path_factory.mktemp("sandbox-a"), tmp_path_factory.mktemp("sandbox-b-longer-name")]
    procs = []
    for r in roots:
        sandbox(r)
        procs.append(start(r, hello_spec(std_sysroot=mount_std(r, std))))
    for r, p in zip(roots, procs):
        code, out, err = finish(p)
        assert code == 0, f"build in {r} failed:\n{err}"
        assert out.split() == ["usr/bin/redox-hello"]
        assert err.strip() == ""
    return roots


def test_redox_hello_is_static_exec_with_entry_start(two_builds: List[Path]) -> None:
    elf = two_builds[0] / "__staged" / "usr" / "bin" / "redox-hello"
    assert elf.is_file() and (elf.stat().st_mode & 0o777) == 0o755
    hdr = readelf("-hW", str(elf))
    assert header_field(hdr, "Class") == "ELF64"
    assert header_field(hdr, "Type").startswith("EXEC")
    assert header_field(hdr, "Machine") == "Advanced Micro Devices X86-64"
    syms = symbol_values(elf)
    assert "_start" in syms and "redox_hello_marker" in syms
    assert int(header_field(hdr, "Entry point address"), 16) == syms["_start"] != 0
    segments = readelf("-lW", str(elf))
    assert not re.search(r"^\s*(INTERP|DYNAMIC)\s", segments, re.M), segments
    assert "LOAD" in segments
    # the staged tree holds exactly the installed file
    staged = sorted(str(p.relative_to(two_builds[0] / "__staged")) for p in (two_builds[0] / "__staged").rglob("*"))
    assert staged == ["usr", "usr/bin", "usr/bin/redox-hello"]


def test_reproducible_across_sandboxes(two_builds: List[Path]) -> None:
    a, b = (r / "__staged" / "usr" / "bin" / "redox-hello" for r in two_builds)
    assert hashlib.sha256(a.read_bytes()).hexdigest() == hashlib.sha256(b.read_bytes()).hexdigest()
    for r in two_builds:  # the sandbox path is remapped out of the binary
        assert str(r).encode() not in a.read_bytes()


def test_missing_output_after_build_stages_nothing(two_builds: List[Path]) -> None:
    """Passes the pre-build check (a `.efi` name) but cargo makes no such file: reported after the
    (no-op) build from the same target dir, and nothing is staged."""
    root = two_builds[0]
    spec = hello_spec(
        install={"redox-hello.efi": "/EFI/BOOT/BOOTX64.EFI"}, out_dir="__staged_bad", std_sysroot="__std_sysroot"
    )
    code, out, err = run(root, spec, "spec-bad.json")
    assert_one_error(code, err, "`install` names `redox-hello.efi`", "produced: redox-hello")
    assert not (root / "__staged_bad").exists()


# --- bad input: one `error:` line, exit 2, nothing staged -------------------------------------


def test_dependency_absent_from_vendor_dirs(tmp_path: Path) -> None:
    code, err = bad_build(tmp_path, hello_spec(), '[dependencies]\nserde = "1"\n')
    assert_one_error(code, err, "needs `serde`", "none of the vendor directories")


def test_dependency_version_absent_from_vendor_dirs(tmp_path: Path) -> None:
    code, err = bad_build(tmp_path, hello_spec(), '[dependencies]\nmemchr = "=9.9.9"\n')
    assert_one_error(code, err, 'needs `memchr = "=9.9.9"`', "only have 2.7.6")


def test_lock_out_of_date(tmp_path: Path) -> None:
    code, err = bad_build(tmp_path, hello_spec(), '[dependencies]\ncfg-if = "1"\n')
    assert_one_error(code, err, "Cargo.lock is out of date")


def test_install_names_missing_binary(tmp_path: Path) -> None:
    code, err = bad_build(tmp_path, hello_spec(install={"redox-hallo": "/usr/bin/redox-hallo"}))
    line = assert_one_error(code, err, "`install` names `redox-hallo`", "it builds: redox-hello")
    assert "\n" not in line
    assert not (tmp_path / "__cargo" / "target").exists()  # refused before cargo build started


def test_unknown_target_triple(tmp_path: Path) -> None:
    code, err = bad_build(tmp_path, hello_spec(target="x86_64-unknown-nonsense"))
    assert_one_error(code, err, "does not know the target triple `x86_64-unknown-nonsense`", "target_spec")


def test_missing_rust_src(tmp_path: Path) -> None:
    empty = tmp_path / "empty-rust-src"
    (empty / "library" / "vendor").mkdir(parents=True)
    spec = hello_spec(toolchain=toolchain(rust_src=str(empty), std_vendor=str(empty / "library" / "vendor")))
    code, err = bad_build(tmp_path, spec)
    assert_one_error(code, err, "has no rust-src", str(empty))


def test_missing_linker(tmp_path: Path) -> None:
    tools = dict(TOOLS, lld="/nonexistent/ld.lld-22")
    code, err = bad_build(tmp_path, hello_spec(toolchain=toolchain(tools=tools)))
    assert_one_error(code, err, "`lld`", "/nonexistent/ld.lld-22", "does not exist")


def test_missing_cargo(tmp_path: Path) -> None:
    tools = dict(TOOLS, cargo="__redox_toolchain/bin/cargo")  # relative: resolved in the sandbox
    code, err = bad_build(tmp_path, hello_spec(toolchain=toolchain(tools=tools)))
    assert_one_error(code, err, "`cargo`", "__redox_toolchain/bin/cargo", "does not exist")


def test_missing_cargo_toml(tmp_path: Path) -> None:
    code, err = bad_build(tmp_path, hello_spec(crate_dir="packages/fixtures/nothing-here"))
    assert_one_error(code, err, "no Cargo.toml in packages/fixtures/nothing-here")


def test_bad_spec_field(tmp_path: Path) -> None:
    spec = hello_spec()
    spec["instal"] = spec.pop("install")
    code, _out, err = run(tmp_path, spec)
    assert code == 2 and len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1
    assert "bad cargo build spec spec.json" in err and "instal" in err


def test_build_std_in_the_package_by_hand(two_builds: List[Path], tmp_path: Path) -> None:
    """Without a prebuilt std (by hand) the driver runs `-Z build-std` itself: the same program
    (std's symbol hashes differ, so not the same bytes)."""
    sandbox(tmp_path)
    code, out, err = run(tmp_path, hello_spec())
    assert code == 0, err
    own = tmp_path / "__staged" / "usr" / "bin" / "redox-hello"
    assert list((tmp_path / "__cargo" / "target" / "x86_64-unknown-redox" / "release" / "deps").glob("libcore-*.rlib"))
    hdr = readelf("-hW", str(own))
    assert header_field(hdr, "Type").startswith("EXEC")
    assert int(header_field(hdr, "Entry point address"), 16) == symbol_values(own)["_start"] != 0


def test_prebuilt_std_missing(tmp_path: Path) -> None:
    code, err = bad_build(tmp_path, hello_spec(std_sysroot="__std_sysroot"))
    assert_one_error(code, err, "the prebuilt std __std_sysroot has no lib/rustlib")
