"""Pure tests of the cargo build driver's helpers (no cargo, no rustc: fast)."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Dict

import pytest

from redox_tools.cargo_build import (
    CargoBuildError,
    Spec,
    cargo_config,
    check_toolchain,
    crate_identity,
    explain_cargo_failure,
    indent,
    installable_outputs,
    merge_vendor_dirs,
    profile_dir,
    rustflags,
    stage_outputs,
    target_args,
)

PKG = "packages/x:pkg"


def spec(**kw) -> Spec:
    base: Dict[str, object] = dict(
        package=PKG,
        crate_dir="crate",
        toolchain={"tools": {"rustc": "/usr/bin/rustc", "cargo": "/usr/bin/cargo", "lld": "/usr/bin/ld.lld-22"}},
        target="x86_64-unknown-redox",
    )
    base.update(kw)
    return Spec(**base)  # type: ignore[arg-type]


def vendored(d: Path, name: str, version: str, *, checksum: bool = True, marker: str = "") -> Path:
    c = d / f"{name}-{version}{marker}"
    c.mkdir(parents=True)
    (c / "Cargo.toml").write_text(
        f'# generated\n[package]\nedition = "2021"\nname = "{name}"\nversion = "{version}"\n\n'
        f'[dependencies.other]\nversion = "9.9.9"\n'
    )
    if checksum:
        (c / ".cargo-checksum.json").write_text('{"files":{},"package":"00"}')
    return c


# --- crate_identity / merge_vendor_dirs ---------------------------------------------------


def test_crate_identity_reads_package_table_only(tmp_path: Path) -> None:
    c = vendored(tmp_path, "memchr", "2.7.6")
    # the [dependencies.other] table's `version` must not be taken for the package's
    assert crate_identity(str(c)) == ("memchr", "2.7.6")
    (tmp_path / "nopkg").mkdir()
    (tmp_path / "nopkg" / "Cargo.toml").write_text('[workspace]\nmembers = ["a"]\n')
    assert crate_identity(str(tmp_path / "nopkg")) is None
    assert crate_identity(str(tmp_path / "missing")) is None


def test_merge_vendor_dirs_version_aware_first_wins(tmp_path: Path) -> None:
    own, std = tmp_path / "own", tmp_path / "std"
    a = vendored(own, "cfg-if", "1.0.4")
    vendored(std, "cfg-if", "1.0.4", marker="-copy")  # same name+version from a second dir: loses
    vendored(own, "memchr", "2.7.6")
    vendored(std, "memchr", "2.5.0")  # a different version of the same crate: both present
    vendored(std, "nochecksum", "1.0.0", checksum=False)  # skipped
    (std / "no-manifest").mkdir()  # skipped
    (std / "no-manifest" / ".cargo-checksum.json").write_text("{}")
    (std / "README").write_text("a file, not a crate")
    dest = tmp_path / "merged"
    chosen = merge_vendor_dirs([str(own), str(std)], str(dest))
    assert sorted(chosen) == ["cfg-if-1.0.4", "memchr-2.5.0", "memchr-2.7.6"]
    assert chosen["cfg-if-1.0.4"] == str(a)
    assert sorted(os.listdir(dest)) == ["cfg-if-1.0.4", "memchr-2.5.0", "memchr-2.7.6"]
    assert os.path.realpath(dest / "cfg-if-1.0.4") == os.path.realpath(a)
    assert all(os.path.islink(dest / n) for n in os.listdir(dest))
    # a rerun into the same destination (same work dir) works and gives the same result
    assert merge_vendor_dirs([str(own), str(std)], str(dest)) == chosen


def test_merge_vendor_dirs_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(CargoBuildError, match="vendor directory .*nope does not exist"):
        merge_vendor_dirs([str(tmp_path / "nope")], str(tmp_path / "m"))


def test_merge_real_std_vendor(tmp_path: Path) -> None:
    std = "/usr/src/rustc-1.96.0/library/vendor"
    if not os.path.isdir(std):
        pytest.skip("no std vendor dir")
    chosen = merge_vendor_dirs([std], str(tmp_path / "m"))
    assert "cfg-if-1.0.4" in chosen and "rustc-literal-escaper-0.0.7" in chosen
    # both wasi versions of the std vendor survive
    assert len([k for k in chosen if k.startswith("wasi-")]) == 2


# --- cargo_config --------------------------------------------------------------------------


def test_cargo_config_text() -> None:
    text = cargo_config("/sb/__cargo/vendor")
    assert text == (
        "[source.crates-io]\n"
        'replace-with = "redox-pants-vendor"\n\n'
        "[source.redox-pants-vendor]\n"
        'directory = "/sb/__cargo/vendor"\n\n'
        "[net]\noffline = true\n"
    )
    # quotes/backslashes in the path stay a valid TOML string
    assert 'directory = "/a\\"b\\\\c"' in cargo_config('/a"b\\c')


def test_cargo_config_parses_as_toml() -> None:
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads(cargo_config('/x y/"q"/v'))
    assert data["source"]["redox-pants-vendor"]["directory"] == '/x y/"q"/v'
    assert data["source"]["crates-io"]["replace-with"] == "redox-pants-vendor"
    assert data["net"]["offline"] is True


# --- target_args -----------------------------------------------------------------------------


def test_target_args_host_and_triple(tmp_path: Path) -> None:
    assert target_args(spec(target="host"), str(tmp_path)) == ([], "")
    assert target_args(spec(), str(tmp_path)) == (["--target", "x86_64-unknown-redox"], "x86_64-unknown-redox")
    assert target_args(spec(target="x86_64-unknown-uefi"), str(tmp_path))[1] == "x86_64-unknown-uefi"


def test_target_args_custom(tmp_path: Path) -> None:
    (tmp_path / "crate").mkdir()
    (tmp_path / "crate" / "x86_64-kernel.json").write_text("{}")
    args, name = target_args(spec(target="custom", target_spec="x86_64-kernel.json"), str(tmp_path))
    assert args == ["--target", str(tmp_path / "crate" / "x86_64-kernel.json"), "-Z", "json-target-spec"]
    assert name == "x86_64-kernel"


def test_target_args_custom_errors(tmp_path: Path) -> None:
    with pytest.raises(CargoBuildError, match=f"{PKG}: a custom target needs `target_spec`"):
        target_args(spec(target="custom"), str(tmp_path))
    with pytest.raises(CargoBuildError, match=f"{PKG}: target_spec nope.json not found in the crate"):
        target_args(spec(target="custom", target_spec="nope.json"), str(tmp_path))


# --- rustflags -----------------------------------------------------------------------------


def test_rustflags_redox_remap_linker_entry_objects(tmp_path: Path) -> None:
    root = str(tmp_path)
    flags = rustflags(spec(entry="_start", rustflags=["-Crelocation-model=static"]), root, ["/abs/a.o", "/abs/b.o"])
    assert flags[0] == f"--remap-path-prefix={root}=/redox-pants"
    assert "-Clinker=/usr/bin/ld.lld-22" in flags and "-Clinker-flavor=ld.lld" in flags
    assert "-Clink-arg=--entry=_start" in flags
    assert flags.index("-Clink-arg=/abs/a.o") < flags.index("-Clink-arg=/abs/b.o")
    assert flags[-1] == "-Crelocation-model=static"  # the user's flags come last (they win)


def test_rustflags_relative_lld_resolved_against_root(tmp_path: Path) -> None:
    s = spec(toolchain={"tools": {"lld": "__redox_toolchain/bin/ld.lld"}})
    assert f"-Clinker={tmp_path}/__redox_toolchain/bin/ld.lld" in rustflags(s, str(tmp_path))


def test_rustflags_custom_uses_lld_host_does_not(tmp_path: Path) -> None:
    (tmp_path / "crate").mkdir()
    (tmp_path / "crate" / "linker.ld").write_text("SECTIONS {}")
    flags = rustflags(spec(target="custom", target_spec="k.json", linker_script="linker.ld"), str(tmp_path))
    assert "-Clinker-flavor=ld.lld" in flags
    assert f"-Clink-arg=-T{tmp_path}/crate/linker.ld" in flags
    host = rustflags(spec(target="host"), str(tmp_path))
    assert host == [f"--remap-path-prefix={tmp_path}=/redox-pants"]


def test_rustflags_uefi_reproducible_link(tmp_path: Path) -> None:
    flags = rustflags(spec(target="x86_64-unknown-uefi"), str(tmp_path))
    assert "-Clink-arg=/Brepro" in flags and "-Clink-arg=/DEBUG:NONE" in flags
    assert not any(f.startswith("-Clinker=") for f in flags)  # lld-link via rust-lld on PATH
    assert "-Clink-arg=/Brepro" not in rustflags(spec(), str(tmp_path))


def test_rustflags_missing_linker_script(tmp_path: Path) -> None:
    with pytest.raises(CargoBuildError, match=f"{PKG}: linker_script linker.ld not found in the crate"):
        rustflags(spec(linker_script="linker.ld"), str(tmp_path))


def test_profile_dir() -> None:
    assert [profile_dir(p) for p in ("dev", "test", "bench", "release", "kernel")] == [
        "debug", "debug", "release", "release", "kernel"]


# --- check_toolchain -----------------------------------------------------------------------


def toolchain(tmp: Path, **tools: str) -> dict:
    src = tmp / "rust-src"
    (src / "library" / "core").mkdir(parents=True, exist_ok=True)
    (src / "library" / "core" / "Cargo.toml").write_text("[package]\n")
    bins = {}
    for key in ("rustc", "cargo", "lld", "nasm"):
        p = tmp / "bin" / key
        p.parent.mkdir(exist_ok=True)
        p.write_text("")
        bins[key] = str(p)
    bins.update(tools)
    return {"tools": bins, "rust_src": str(src), "std_vendor": str(src / "library" / "vendor")}


def test_check_toolchain_ok(tmp_path: Path) -> None:
    check_toolchain(spec(toolchain=toolchain(tmp_path), build_std=["core"], nasm_sources=["a.asm"]), str(tmp_path))


@pytest.mark.parametrize("key", ["cargo", "rustc", "lld"])
def test_check_toolchain_tool_path_missing(tmp_path: Path, key: str) -> None:
    tc = toolchain(tmp_path, **{key: "/nonexistent/" + key})
    with pytest.raises(CargoBuildError, match=rf"{PKG}: the toolchain's `{key}` \(/nonexistent/{key}\) does not exist"):
        check_toolchain(spec(toolchain=tc), str(tmp_path))


def test_check_toolchain_nasm_only_when_used(tmp_path: Path) -> None:
    tc = toolchain(tmp_path, nasm="/nonexistent/nasm")
    check_toolchain(spec(toolchain=tc), str(tmp_path))
    with pytest.raises(CargoBuildError, match=r"`nasm` \(/nonexistent/nasm\) does not exist.*nasm_sources"):
        check_toolchain(spec(toolchain=tc, nasm_sources=["t.asm"]), str(tmp_path))
    del tc["tools"]["nasm"]
    with pytest.raises(CargoBuildError, match="the toolchain has no `nasm`"):
        check_toolchain(spec(toolchain=tc, nasm_sources=["t.asm"]), str(tmp_path))


def test_check_toolchain_no_cargo_key(tmp_path: Path) -> None:
    tc = toolchain(tmp_path)
    del tc["tools"]["cargo"]
    with pytest.raises(CargoBuildError, match=f"{PKG}: the toolchain has no `cargo`"):
        check_toolchain(spec(toolchain=tc), str(tmp_path))


def test_check_toolchain_rust_src(tmp_path: Path) -> None:
    tc = toolchain(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    tc["rust_src"] = str(empty)
    check_toolchain(spec(toolchain=tc), str(tmp_path))  # not needed without build_std
    with pytest.raises(CargoBuildError, match=f"{PKG}: the toolchain has no rust-src .*{empty}"):
        check_toolchain(spec(toolchain=tc, build_std=["core"]), str(tmp_path))
    tc["rust_src"] = ""
    with pytest.raises(CargoBuildError, match="has no rust-src"):
        check_toolchain(spec(toolchain=tc, build_std=["core"]), str(tmp_path))


# --- explain_cargo_failure ---------------------------------------------------------------------


def test_explain_missing_crate() -> None:
    msg = explain_cargo_failure(spec(), "error: no matching package named `serde` found\nlocation searched: ...")
    assert msg.startswith(f"{PKG}: the crate needs `serde`, which is in none of the vendor directories")
    assert "\n" not in msg


def test_explain_version_not_vendored() -> None:
    err = (
        'error: failed to select a version for the requirement `memchr = "=9.9.9"`\n'
        "candidate versions found which didn't match: 2.7.6\n"
        "location searched: directory source `/sb/__cargo/vendor`\n"
    )
    msg = explain_cargo_failure(spec(), err)
    assert msg == (
        f'{PKG}: the crate needs `memchr = "=9.9.9"`, but the vendor directories only have 2.7.6; '
        "vendor that version (a `vendor` target) or change the requirement"
    )


@pytest.mark.parametrize(
    "err",
    [
        "error: the lock file /sb/Cargo.lock needs to be updated but --frozen was passed to prevent this",
        "error: cannot update the lock file /sb/crate/Cargo.lock because --frozen was passed to prevent this",
    ],
)
def test_explain_lock_out_of_date(err: str) -> None:
    assert explain_cargo_failure(spec(), err) == (
        f"{PKG}: Cargo.lock is out of date with Cargo.toml; regenerate it (`cargo generate-lockfile`) and commit it"
    )


def test_explain_lock_missing() -> None:
    err = "error: cannot create the lock file /sb/crate/Cargo.lock because --frozen was passed to prevent this"
    assert "has no Cargo.lock" in explain_cargo_failure(spec(), err)


def test_explain_unknown_target() -> None:
    err = (
        "error: failed to run `rustc` to learn about target-specific information\n\nCaused by:\n"
        '  error: error loading target specification: could not find specification for target "x86_64-unknown-nope"\n'
    )
    msg = explain_cargo_failure(spec(target="x86_64-unknown-nope"), err)
    assert msg.startswith(f"{PKG}: rustc does not know the target triple `x86_64-unknown-nope`")
    assert "\n" not in msg


def test_explain_other_failure_quotes_cargo_indented() -> None:
    err = "   Compiling x v0.1.0\nerror[E0425]: cannot find value `y`\nerror: could not compile `x`\n"
    msg = explain_cargo_failure(spec(), err)
    lines = msg.splitlines()
    assert lines[0] == f"{PKG}: cargo build failed:"
    assert lines[1:] == [
        "  | error[E0425]: cannot find value `y`", "  | error: could not compile `x`",
        "  | --- last 40 lines of cargo's output ---",
        "  |    Compiling x v0.1.0", "  | error[E0425]: cannot find value `y`", "  | error: could not compile `x`",
    ]
    assert not any(ln.startswith("error") for ln in lines)  # only the driver's own line says error:


def test_errors_come_first_even_behind_pages_of_warnings() -> None:
    # relibc-rust's failure: errors far above the end, the last 40 lines all warnings.
    err = "   Compiling relibc v0.2.5\n"
    err += "".join(f"error[E0432]: unresolved import `x{i}`\n --> src/a.rs:{i}:5\n  |\n\n" for i in range(3))
    err += "".join(f"warning: unused variable `w{i}`\n --> src/b.rs:{i}:9\n\n" for i in range(60))
    err += "error: could not compile `relibc` (lib) due to 3 previous errors; 60 warnings emitted\n"
    lines = explain_cargo_failure(spec(), err).splitlines()
    assert lines[1:4] == ["  | error[E0432]: unresolved import `x0`", "  |  --> src/a.rs:0:5", "  |   |"]
    first_tail = lines.index("  | --- last 40 lines of cargo's output ---")
    errors = [ln for ln in lines[:first_tail] if ln.startswith("  | error")]
    assert len(errors) == 4 and not any(ln.startswith("  | warning") for ln in lines[:first_tail])
    assert lines[-1] == "  | error: could not compile `relibc` (lib) due to 3 previous errors; 60 warnings emitted"
