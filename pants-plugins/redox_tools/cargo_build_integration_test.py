"""The cargo build driver with the real toolchain, run as the Pants rule runs it: a subprocess
`python -m redox_tools.cargo_build SPEC.json` whose CWD is the sandbox (here a tmp dir holding a
copy of a fixture crate) and whose environment is (almost) empty.

The two good builds (`-Z build-std`, ~25 s each) run once per module, in parallel; every bad
input is refused before build-std starts compiling (or, for the post-build check, reuses a
finished build's target dir).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

PLUGINS = Path(__file__).resolve().parent.parent
FIXTURES = PLUGINS.parent / "packages" / "fixtures"
RUST_SRC = "/usr/src/rustc-1.96.0"
READELF = "/usr/bin/llvm-readelf-22"
TOOLS = {
    "rustc": "/usr/bin/rustc",
    "cargo": "/usr/bin/cargo",
    "lld": "/usr/bin/ld.lld-22",
    "nasm": "/usr/bin/nasm",
    "clang": "/usr/bin/clang-22",
    "ar": "/usr/bin/llvm-ar-22",
    "objcopy": "/usr/bin/llvm-objcopy-22",
}
_needed = [TOOLS["rustc"], TOOLS["cargo"], TOOLS["lld"], READELF, f"{RUST_SRC}/library/core/Cargo.toml"]
pytestmark = pytest.mark.skipif(
    not all(os.path.exists(p) for p in _needed), reason="the system Rust toolchain / rust-src / llvm-22 is missing"
)

HELLO = "packages/fixtures/redox-hello:redox-hello"


def toolchain(**overrides: object) -> Dict[str, object]:
    tc: Dict[str, object] = {
        "tools": dict(TOOLS),
        "rust_src": RUST_SRC,
        "std_vendor": f"{RUST_SRC}/library/vendor",
        "sysroot": "/usr",
        "provider": "system",
        "fingerprint": "x",
    }
    tc.update(overrides)
    return tc


def hello_spec(**overrides: object) -> Dict[str, object]:
    """The spec `redox_cargo_package` writes for packages/fixtures/redox-hello/BUILD."""
    spec: Dict[str, object] = {
        "package": HELLO,
        "crate_dir": "packages/fixtures/redox-hello",
        "toolchain": toolchain(),
        "target": "x86_64-unknown-redox",
        "target_spec": None,
        "linker_script": None,
        "entry": "_start",
        "nasm_sources": [],
        "build_std": ["core", "compiler_builtins"],
        "build_std_features": ["compiler-builtins-mem"],
        "features": [],
        "no_default_features": False,
        "rustflags": ["-Crelocation-model=static", "-Ctarget-feature=+crt-static"],
        "profile": "release",
        "cargo_packages": [],
        "bins": [],
        "vendor_dirs": [],
        "install": {"redox-hello": "/usr/bin/redox-hello"},
        "out_dir": "__staged",
        "path": ["/usr/bin", "/bin"],
    }
    spec.update(overrides)
    return spec


def sandbox(root: Path, fixture: str = "redox-hello") -> Path:
    """A sandbox laid out like Pants': the crate at its repo path, the spec at the root."""
    crate = root / "packages" / "fixtures" / fixture
    crate.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(FIXTURES / fixture, crate, ignore=shutil.ignore_patterns("BUILD", "target"))
    return crate


def start(root: Path, spec: Dict[str, object], name: str = "spec.json") -> "subprocess.Popen[str]":
    (root / name).write_text(json.dumps(spec, sort_keys=True, indent=1))
    return subprocess.Popen(
        [sys.executable, "-m", "redox_tools.cargo_build", name],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PLUGINS)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: "subprocess.Popen[str]", timeout: float = 300) -> Tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def run(root: Path, spec: Dict[str, object], name: str = "spec.json") -> Tuple[int, str, str]:
    return finish(start(root, spec, name))


# --- the good build, twice in two directories (in parallel) ---------------------------------


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory) -> List[Path]:
    roots = [tmp_path_factory.mktemp("sandbox-a"), tmp_path_factory.mktemp("sandbox-b-longer-name")]
    procs = []
    for r in roots:
        sandbox(r)
        procs.append(start(r, hello_spec()))
    for r, p in zip(roots, procs):
        code, out, err = finish(p)
        assert code == 0, f"build in {r} failed:\n{err}"
        assert out.split() == ["usr/bin/redox-hello"]
        assert err.strip() == ""
    return roots


def readelf(*args: str) -> str:
    return subprocess.run([READELF, *args], check=True, stdout=subprocess.PIPE, text=True).stdout


def header_field(text: str, name: str) -> str:
    m = re.search(rf"^\s*{re.escape(name)}:\s*(.*)$", text, re.M)
    assert m, f"no {name!r} in readelf -h output"
    return m.group(1).strip()


def symbol_values(elf: Path) -> Dict[str, int]:
    syms: Dict[str, int] = {}
    for line in readelf("-sW", str(elf)).splitlines():
        parts = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(parts) >= 8 and parts[0].endswith(":") and parts[0][:-1].isdigit():
            syms.setdefault(parts[7], int(parts[1], 16))
    return syms


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
    spec = hello_spec(install={"redox-hello.efi": "/EFI/BOOT/BOOTX64.EFI"}, out_dir="__staged_bad")
    code, out, err = run(root, spec, "spec-bad.json")
    assert_one_error(code, err, "`install` names `redox-hello.efi`", "produced: redox-hello")
    assert not (root / "__staged_bad").exists()


# --- bad input: one `error:` line, exit 2, nothing staged -------------------------------------


def assert_one_error(code: int, err: str, *needles: str, package: str = HELLO) -> str:
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    line = errors[0]
    assert line.startswith(f"error: {package}: "), line
    for n in needles:
        assert n in line, (n, line)
    return line


def bad_build(tmp_path: Path, spec: Dict[str, object], cargo_toml_extra: Optional[str] = None) -> Tuple[int, str]:
    crate = sandbox(tmp_path)
    if cargo_toml_extra is not None:
        toml = crate / "Cargo.toml"
        toml.write_text(toml.read_text().replace("publish = false\n", "publish = false\n\n" + cargo_toml_extra, 1))
    code, out, err = run(tmp_path, spec)
    assert out == ""
    assert not (tmp_path / "__staged").exists()
    return code, err


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


# --- the kernel's objcopy step (split_debug) and profile settings --------------------------------


def kernel_spec(**overrides: object) -> Dict[str, object]:
    """The spec `redox_cargo_package` writes for packages/fixtures/kernel-shaped/BUILD."""
    return hello_spec(
        package="packages/fixtures/kernel-shaped:kernel-shaped",
        crate_dir="packages/fixtures/kernel-shaped",
        target="custom",
        target_spec="x86_64-kernel.json",
        linker_script="linker.ld",
        entry=None,
        nasm_sources=["trampoline.asm"],
        build_std=["core", "alloc", "compiler_builtins"],
        build_std_features=["compiler-builtins-mem"],
        rustflags=[],
        profile_settings={"debug": "full"},
        split_debug=["kernel-shaped"],
        install={
            "kernel-shaped": "/usr/lib/boot/kernel",
            "kernel-shaped.sym": "/usr/lib/boot/kernel.sym",
            "kernel-shaped.all": "/usr/lib/boot/kernel.all",
        },
        **overrides,
    )


def section_names(elf: Path) -> List[str]:
    return re.findall(r"^\s*\[\s*\d+\]\s+(\S+)", readelf("-SW", str(elf)), re.M)


def test_kernel_split_debug(tmp_path: Path) -> None:
    sandbox(tmp_path, "kernel-shaped")
    code, out, err = run(tmp_path, kernel_spec())
    assert code == 0, err
    assert sorted(out.split()) == ["usr/lib/boot/kernel", "usr/lib/boot/kernel.all", "usr/lib/boot/kernel.sym"]
    boot = tmp_path / "__staged" / "usr" / "lib" / "boot"
    kernel, sym, full = boot / "kernel", boot / "kernel.sym", boot / "kernel.all"
    # profile_settings reached cargo: debug = full although Cargo.toml says debug = false.
    assert ".debug_info" in section_names(full)
    assert ".debug_info" in section_names(sym)
    assert ".debug_info" not in section_names(kernel)
    assert kernel.stat().st_size < full.stat().st_size
    # The stripped kernel is still the same program: same entry, still `kstart`.
    entry = header_field(readelf("-h", str(kernel)), "Entry point address")
    assert entry == header_field(readelf("-h", str(full)), "Entry point address")
    assert int(entry, 16) == symbol_values(kernel)["kstart"]
    assert os.access(kernel, os.X_OK) and not os.access(sym, os.X_OK)


def test_bad_profile_setting(tmp_path: Path) -> None:
    code, err = bad_build(tmp_path, hello_spec(profile_settings={"opt_level": "s"}))
    assert_one_error(code, err, "`profile_settings` key 'opt_level'", "opt-level")


# --- base's two passes over one workspace ---------------------------------------------------


def base_pass_spec(members: List[str], install: Dict[str, str]) -> Dict[str, object]:
    """The spec of packages/fixtures/base-shaped:{rootfs,initfs}-bins (one cargo pass each)."""
    return hello_spec(
        package="packages/fixtures/base-shaped:pass",
        crate_dir="packages/fixtures/base-shaped",
        build_std=["core", "compiler_builtins"],
        build_std_features=["compiler-builtins-mem"],
        profile_settings={"opt-level": "s", "panic": "abort"},
        cargo_packages=members,
        install=install,
    )


def test_base_two_passes_keep_features_apart(tmp_path: Path) -> None:
    passes = {
        "pass1": (["rootd"], {"rootd": "/usr/bin/rootd"}),
        "pass2": (["initd"], {"initd": "/bin/initd"}),
        # The control: both members in one invocation -> cargo unifies common's features.
        "together": (["rootd", "initd"], {"rootd": "/usr/bin/rootd", "initd": "/bin/initd"}),
    }
    procs = {}
    for name, (members, install) in passes.items():
        sandbox(tmp_path / name, "base-shaped")
        procs[name] = start(tmp_path / name, base_pass_spec(members, install))
    for name, proc in procs.items():
        code, _out, err = finish(proc)
        assert code == 0, f"{name}: {err}"

    def banner(name: str, path: str) -> bytes:
        data = (tmp_path / name / "__staged" / path).read_bytes()
        return b"verbose" if b"COMMON: verbose logging" in data else b"quiet" if b"COMMON: quiet" in data else b"?"

    assert banner("pass1", "usr/bin/rootd") == b"verbose"
    assert banner("pass2", "bin/initd") == b"quiet"  # separate pass: initd keeps its own features
    assert banner("together", "bin/initd") == b"verbose"  # why base builds in two passes


# --- emit_object: relibc's crt0 way (`cargo rustc --lib -- --emit obj`) -----------------------


def crt0_spec(**overrides: object) -> Dict[str, object]:
    """The spec of packages/fixtures/relibc-shaped:crt0-rust (`emit_object=True`)."""
    spec = hello_spec(
        package="packages/fixtures/relibc-shaped:crt0-rust",
        crate_dir="packages/fixtures/relibc-shaped/crt0-rust",
        entry=None,
        rustflags=[],
        emit_object=True,
        install={"crt0.o": "/usr/lib/crt0.o"},
    )
    spec.update(overrides)
    return spec


def test_emit_object_is_relocatable_with_start(tmp_path: Path) -> None:
    crate = tmp_path / "packages" / "fixtures" / "relibc-shaped" / "crt0-rust"
    shutil.copytree(FIXTURES / "relibc-shaped" / "crt0-rust", crate, ignore=shutil.ignore_patterns("target"))
    code, out, err = run(tmp_path, crt0_spec())
    assert code == 0, err
    assert out.split() == ["usr/lib/crt0.o"]
    obj = tmp_path / "__staged" / "usr" / "lib" / "crt0.o"
    assert header_field(readelf("-h", str(obj)), "Type").startswith("REL")
    symbols = readelf("-sW", str(obj))
    assert re.search(r"FUNC\s+GLOBAL\s+DEFAULT\s+\d+\s+_start$", symbols, re.M), symbols
    # crt0 calls these; they stay undefined until the program is linked.
    for name in ("_init", "main", "exit"):
        assert re.search(rf"NOTYPE\s+GLOBAL\s+DEFAULT\s+UND\s+{name}$", symbols, re.M), name
    assert str(tmp_path) not in obj.read_bytes().decode("latin-1")
    # A name that is not `<crate>.o` is refused before the (long) build.
    code, _out, err = run(tmp_path, crt0_spec(install={"libcrt0.a": "/usr/lib/libcrt0.a"}), "bad.json")
    assert_one_error(code, err, "`install` names `libcrt0.a`", "crt0.o", package="packages/fixtures/relibc-shaped:crt0-rust")


def test_emit_object_needs_a_lib(tmp_path: Path) -> None:
    sandbox(tmp_path)
    code, _out, err = run(tmp_path, hello_spec(emit_object=True, install={"redox_hello.o": "/x.o"}))
    assert_one_error(code, err, "`emit_object` emits a package's lib", "redox-hello has no [lib] target")
