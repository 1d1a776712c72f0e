"""Helpers shared by the cargo driver's integration tests (`cargo_build*_integration_test.py`):
run `python -m redox_tools.builders.cargo_build SPEC.json` (and `redox_tools.stdlib.build`) as the Pants
rules do, in a tmp dir laid out like a sandbox, with the real toolchain and the project's fixtures.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

PLUGINS = Path(__file__).resolve().parents[2]
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
needs_toolchain = pytest.mark.skipif(
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
        [sys.executable, "-m", "redox_tools.builders.cargo_build", name],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PLUGINS)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: "subprocess.Popen[str]") -> Tuple[int, str, str]:
    # No wall-clock limit: a cold build on a loaded machine takes what it takes (Pants' test
    # timeout is the guard).
    out, err = proc.communicate()
    return proc.returncode, out, err


def run(root: Path, spec: Dict[str, object], name: str = "spec.json") -> Tuple[int, str, str]:
    return finish(start(root, spec, name))


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


def section_names(elf: Path) -> List[str]:
    return re.findall(r"^\s*\[\s*\d+\]\s+(\S+)", readelf("-SW", str(elf)), re.M)


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


def crt0_spec(**overrides: object) -> Dict[str, object]:
    """The spec of packages/fixtures/crt0-rust:crt0-rust (`emit_object=True`)."""
    spec = hello_spec(
        package="packages/fixtures/crt0-rust:crt0-rust",
        crate_dir="packages/fixtures/crt0-rust",
        entry=None,
        rustflags=[],
        emit_object=True,
        install={"crt0.o": "/usr/lib/crt0.o"},
    )
    spec.update(overrides)
    return spec


# --- the prebuilt std (redox_tools.stdlib.build), as the rule provides it -----------------------


def std_spec(**overrides: object) -> Dict[str, object]:
    """The std spec the rule writes for redox-hello (its manifest: opt-level s, panic abort)."""
    spec: Dict[str, object] = {
        "key": "test",
        "toolchain": toolchain(),
        "target": "x86_64-unknown-redox",
        "target_spec": None,
        "crates": ["compiler_builtins", "core"],
        "features": ["compiler-builtins-mem"],
        "profile": "release",
        "profile_settings": {"opt-level": "s", "panic": "abort"},
        "rustflags": ["-Crelocation-model=static", "-Ctarget-feature=+crt-static"],
        "embed_bitcode": False,
    }
    spec.update(overrides)
    return spec


def start_std(root: Path, spec: Dict[str, object]) -> "subprocess.Popen[str]":
    root.mkdir(parents=True, exist_ok=True)
    (root / "std.json").write_text(json.dumps(spec, sort_keys=True, indent=1))
    return subprocess.Popen(
        [sys.executable, "-m", "redox_tools.stdlib.build", "std.json"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PLUGINS)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def build_std(root: Path, spec: Dict[str, object]) -> Path:
    """Build a std sysroot in `root`; returns it (`root/__std_sysroot`)."""
    code, _out, err = finish(start_std(root, spec))
    assert code == 0, err
    return root / "__std_sysroot"


# The `redox_rust_std` targets whose std the tests link against (BUILD: runtime_package_dependencies).
HELLO_STD = "packages/fixtures/redox-hello:std"
KERNEL_STD = "packages/fixtures/kernel-shaped:std"
UEFI_STD = "packages/fixtures/uefi-selftest:std"


def packaged_std(address: str) -> Optional[Path]:
    """The std sysroot `./pants package <address>` writes, where Pants puts a test's
    `runtime_package_dependencies` (its output path under the sandbox root): the rule's own cached
    build, the std the package really links against. None outside Pants (pytest by hand)."""
    spec_path, name = address.split(":")
    path = PLUGINS.parent / spec_path.replace("/", ".") / name
    return path if (path / "lib" / "rustlib").is_dir() else None


def std_for(address: str, root: Path, spec: Dict[str, object]) -> Path:
    """The packaged std of `address`, or (by hand, outside Pants) the same std built here from `spec`."""
    return packaged_std(address) or build_std(root, spec)


def mount_std(sandbox_root: Path, sysroot: Path) -> str:
    """Put a prebuilt std into a sandbox the way Pants mounts an immutable input (a symlink)."""
    link = sandbox_root / "__std_sysroot"
    sandbox_root.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(sysroot)
    return "__std_sysroot"
