"""Pure tests of the cargo build driver's helpers (no cargo, no rustc: fast)."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Dict

import pytest

from redox_tools.builders.cargo_build import (
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


def test_explain_keeps_only_the_tail() -> None:
    err = "\n".join(f"line {i}" for i in range(100))
    lines = explain_cargo_failure(spec(), err).splitlines()
    assert len(lines) == 41 and lines[-1] == "  | line 99"
    assert indent("a\nb") == "  | a\n  | b"


# --- installable_outputs ------------------------------------------------------------------------


def test_installable_outputs_from_metadata() -> None:
    meta = {"packages": [
        {"name": "a", "targets": [{"kind": ["bin"], "name": "a-bin"}, {"kind": ["staticlib"], "name": "a-lib"}]},
        {"name": "b", "targets": [{"kind": ["bin"], "name": "b"}, {"kind": ["custom-build"], "name": "build-script-build"}]},
    ]}
    out = installable_outputs(meta, spec())
    assert {"a-bin", "a-bin.efi", "liba_lib.a", "b"} <= set(out)
    assert "build-script-build" not in out
    assert installable_outputs(meta, spec(cargo_packages=["b"])) == ["b", "b.efi", "b.exe"]
    assert "b" not in installable_outputs(meta, spec(bins=["a-bin"]))


# --- stage_outputs -----------------------------------------------------------------------------


def cargo_out(tmp: Path, files: Dict[str, int]) -> Path:
    out = tmp / "target" / "x86_64-unknown-redox" / "release"
    out.mkdir(parents=True)
    (out / "deps").mkdir()
    for name, mode in files.items():
        (out / name).write_bytes(name.encode())
        (out / name).chmod(mode)
    return out


def mode_of(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_stage_outputs_install_map_and_modes(tmp_path: Path) -> None:
    out = cargo_out(tmp_path, {"hello": 0o775, "hello.d": 0o644, "libfoo.a": 0o644, "tool": 0o700})
    staged = tmp_path / "__staged"
    s = spec(install={"hello": "/usr/bin/hello", "libfoo.a": "usr/lib/libfoo.a", "tool": "/usr/libexec/tool"})
    installed = stage_outputs(s, str(out), str(staged))
    assert installed == ["usr/bin/hello", "usr/lib/libfoo.a", "usr/libexec/tool"]
    assert (staged / "usr/bin/hello").read_bytes() == b"hello"
    assert mode_of(staged / "usr/bin/hello") == 0o755
    assert mode_of(staged / "usr/libexec/tool") == 0o755
    assert mode_of(staged / "usr/lib/libfoo.a") == 0o644


def test_stage_outputs_efi_candidate(tmp_path: Path) -> None:
    out = cargo_out(tmp_path, {"uefi-selftest.efi": 0o755})
    staged = tmp_path / "s"
    assert stage_outputs(spec(install={"uefi-selftest": "/EFI/BOOT/BOOTX64.EFI"}), str(out), str(staged)) == [
        "EFI/BOOT/BOOTX64.EFI"]
    assert (staged / "EFI/BOOT/BOOTX64.EFI").read_bytes() == b"uefi-selftest.efi"


def test_stage_outputs_missing_output_lists_produced_and_stages_nothing(tmp_path: Path) -> None:
    out = cargo_out(tmp_path, {"hello": 0o755, "hello.d": 0o644, "libx.rlib": 0o644, ".cargo-lock": 0o644})
    staged = tmp_path / "__staged"
    s = spec(install={"hello": "/usr/bin/hello", "nope": "/usr/bin/nope"})
    with pytest.raises(CargoBuildError) as e:
        stage_outputs(s, str(out), str(staged))
    assert str(e.value) == (
        f"{PKG}: `install` names `nope`, but cargo produced no output of that name (produced: hello, libx.rlib)"
    )
    assert not staged.exists()  # checked before anything was copied


def test_stage_outputs_nothing_produced(tmp_path: Path) -> None:
    with pytest.raises(CargoBuildError, match=r"produced: nothing"):
        stage_outputs(spec(install={"a": "/a"}), str(tmp_path / "no-such-dir"), str(tmp_path / "s"))


@pytest.mark.parametrize("dest", ["/usr/../../etc/passwd", "../x", "/", "", "usr//bin/x", "usr/./x"])
def test_stage_outputs_refuses_paths_outside_image(tmp_path: Path, dest: str) -> None:
    out = cargo_out(tmp_path, {"hello": 0o755})
    staged = tmp_path / "s"
    with pytest.raises(CargoBuildError, match=r"install path .* for `hello` is not a plain path inside the image"):
        stage_outputs(spec(install={"hello": dest}), str(out), str(staged))
    assert not staged.exists()
    assert not (tmp_path / "etc").exists() and not (tmp_path / "x").exists()


def test_stage_outputs_two_outputs_one_path(tmp_path: Path) -> None:
    out = cargo_out(tmp_path, {"a": 0o755, "b": 0o755})
    with pytest.raises(CargoBuildError, match=r"puts both `a` and `b` at /usr/bin/x"):
        stage_outputs(spec(install={"a": "/usr/bin/x", "b": "usr/bin/x"}), str(out), str(tmp_path / "s"))


# --- Spec.load --------------------------------------------------------------------------------


def test_spec_load_unknown_field(tmp_path: Path) -> None:
    p = tmp_path / "spec.json"
    p.write_text(json.dumps({"package": PKG, "crate_dir": ".", "toolchain": {}, "target": "host", "bogus": 1}))
    with pytest.raises(CargoBuildError, match="bad cargo build spec .*bogus"):
        Spec.load(str(p))
    data: Dict[str, object] = {"package": PKG, "crate_dir": ".", "toolchain": {}, "target": "host"}
    p.write_text(json.dumps(data))
    s = Spec.load(str(p))
    assert s.out_dir == "__staged" and s.profile == "release" and s.install == {}
    assert s.nasm_sources == [] and s.build_std == []


# --- linking against a sysroot -------------------------------------------------------------


def fake_sysroot(root: Path, files=("crt0.o", "crti.o", "crtn.o", "libc.a", "libc.so")) -> str:
    lib = root / "sysroot" / "usr" / "lib"
    lib.mkdir(parents=True)
    for f in files:
        (lib / f).write_bytes(b"")
    return "sysroot"


def test_rustflags_static_sysroot(tmp_path: Path) -> None:
    lib = f"{tmp_path}/sysroot/usr/lib"
    flags = rustflags(spec(sysroot=fake_sysroot(tmp_path)), str(tmp_path))
    assert flags[-5:] == [f"-Zpre-link-arg={lib}/crt0.o", f"-Zpre-link-arg={lib}/crti.o", f"-Clink-arg=-L{lib}",
                          "-Clink-arg=-lc", f"-Clink-arg={lib}/crtn.o"]
    assert not any("crt-static" in f or "dynamic-linker" in f for f in flags)


def test_rustflags_dynamic_sysroot(tmp_path: Path) -> None:
    s = spec(sysroot=fake_sysroot(tmp_path), linkage="dynamic", interpreter="/usr/lib/ld64.so.1")
    flags = rustflags(s, str(tmp_path))
    assert "-Ctarget-feature=-crt-static" in flags and "-Cprefer-dynamic=no" in flags
    assert "-Clink-arg=--dynamic-linker=/usr/lib/ld64.so.1" in flags
    assert "-Clink-arg=-lc" in flags


@pytest.mark.parametrize(
    "kw, files, expected",
    [
        (dict(linkage="dynamic", interpreter="/usr/lib/ld64.so.1"), None, "linkage `dynamic` links against a `sysroot`"),
        (dict(linkage="shared"), (), "unknown linkage 'shared'"),
        (dict(linkage="dynamic"), ("crt0.o", "crti.o", "crtn.o", "libc.a", "libc.so"), "needs the sysroot's dynamic loader path"),
        (dict(linkage="dynamic", interpreter="/usr/lib/ld64.so.1"), ("crt0.o", "crti.o", "crtn.o", "libc.a"),
         "the sysroot has no usr/lib/libc.so"),
    ],
)
def test_rustflags_bad_linkage(tmp_path: Path, kw: Dict[str, object], files, expected: str) -> None:
    if files is not None:
        kw = {**kw, "sysroot": fake_sysroot(tmp_path, files)}
    with pytest.raises(CargoBuildError, match=expected):
        rustflags(spec(**kw), str(tmp_path))


def test_toolchain_bin_dirs_only_with_a_prebuilt_std(tmp_path: Path) -> None:
    from redox_tools.builders.cargo_build import Spec, toolchain_bin_dirs

    bin_dir = tmp_path / "tc" / "lib" / "rustlib" / "x86_64-unknown-linux-gnu" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "rust-lld").write_text("")
    (tmp_path / "tc" / "lib" / "rustlib" / "src").mkdir()  # rust-src: no bin/rust-lld
    spec = Spec(package="p", crate_dir="c", toolchain={"sysroot": "tc"}, target="x86_64-unknown-uefi")
    assert toolchain_bin_dirs(spec, str(tmp_path)) == []
    spec.std_sysroot = "__std_sysroot"
    assert toolchain_bin_dirs(spec, str(tmp_path)) == [str(bin_dir)]


def test_prebuilt_std_replaces_build_std(tmp_path: Path) -> None:
    from redox_tools.builders.cargo_build import build_std_args, std_sysroot_flags

    spec = Spec(package=PKG, crate_dir="c", toolchain={}, target="x86_64-unknown-redox",
                build_std=["core", "compiler_builtins"], build_std_features=["compiler-builtins-mem"])
    assert build_std_args(spec) == ["-Z", "build-std=core,compiler_builtins", "-Z", "build-std-features=compiler-builtins-mem"]
    assert std_sysroot_flags(spec, str(tmp_path)) == []
    spec.std_sysroot = "__std_sysroot"
    assert build_std_args(spec) == []
    with pytest.raises(CargoBuildError, match=r"packages/x:pkg: the prebuilt std __std_sysroot has no lib/rustlib"):
        std_sysroot_flags(spec, str(tmp_path))
    (tmp_path / "__std_sysroot" / "lib" / "rustlib").mkdir(parents=True)
    assert std_sysroot_flags(spec, str(tmp_path)) == [f"--sysroot={tmp_path}/__std_sysroot"]


@pytest.mark.skipif(not os.path.isfile("/usr/bin/clang-22"), reason="needs clang-22")
def test_cc_rs_gets_the_target_compiler_not_the_host_gcc(tmp_path: Path) -> None:
    from redox_tools.builders.cargo_build import cc_target_env

    tools = {"clang": "/usr/bin/clang-22", "lld": "/usr/bin/ld.lld-22", "ar": "/usr/bin/llvm-ar-22"}
    env = cc_target_env(spec(toolchain={"tools": tools}), str(tmp_path), str(tmp_path / "w"))
    cc = env["CC_x86_64_unknown_redox"]
    assert env["CC_x86_64-unknown-redox"] == cc and "AR_x86_64_unknown_redox" in env
    assert "--target=x86_64-unknown-redox" in Path(cc).read_text()
    assert cc_target_env(spec(target="host"), str(tmp_path), str(tmp_path / "w")) == {}
    crate = tmp_path / "crate"
    crate.mkdir()
    (crate / "x86_64-kernel.json").write_text(json.dumps({"llvm-target": "x86_64-unknown-none"}))
    custom = cc_target_env(spec(target="custom", target_spec="x86_64-kernel.json", toolchain={"tools": tools}),
                           str(tmp_path), str(tmp_path / "w"))
    assert "--target=x86_64-unknown-none" in Path(custom["CC_x86_64_kernel"]).read_text()
