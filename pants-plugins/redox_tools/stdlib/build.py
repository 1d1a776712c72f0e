"""Build the Rust standard library crates once, as a sysroot for `rustc --sysroot`.

Run by the `redox_cargo_package` rules (one cached process per std key) and usable by hand:

    python -m redox_tools.stdlib.build SPEC.json

The spec says which toolchain, target (triple or target JSON), `-Z build-std` crates and
features, profile settings and codegen rustflags. The driver

1. writes a tiny `#![no_std]` lib crate and a private CARGO_HOME whose crates.io is the
   toolchain's std vendor directory (the std library's own dependencies, offline);
2. runs `cargo build --lib -Z build-std=<crates>` for the target with those settings (a lib is
   never linked, so `std` for Redox builds without relibc: libc is needed only when a program
   links), remapping the sandbox path out of the rlibs;
3. copies the std crates' rlibs to `<out_dir>/lib/rustlib/<target name>/lib/`, the layout rustc
   searches under `--sysroot` (the target name of a target JSON is its file stem).

Rust packages then build with `--sysroot=<out_dir>` in their target RUSTFLAGS and no
`-Z build-std`: build scripts and proc macros (host artifacts) keep the host's std.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from redox_tools.builders.driver import cargo_env, load_spec, resolve, spec_main
from redox_tools.errors import ToolError, run_main

DUMMY_CRATE = "redox_pants_std"
# Cargo profile keys that change how the std crates are compiled (the rule decides which of a
# package's settings reach the std build; lto is handled by `embed_bitcode`).
PROFILE_KEYS = ("opt-level", "debug", "debug-assertions", "overflow-checks", "panic", "codegen-units")
PROFILES = ("release", "dev")


class StdBuildError(ToolError):
    pass


@dataclass
class Spec:
    key: str  # what this std is, for messages (e.g. "core,alloc for x86_64-unknown-redox")
    toolchain: Dict[str, object]
    target: str  # a triple, or "custom" with `target_spec`
    crates: List[str]
    target_spec: Optional[str] = None  # path of the target JSON (its stem is the target name)
    features: List[str] = field(default_factory=list)
    profile: str = "release"  # "release" or "dev": the base the settings apply to
    profile_settings: Dict[str, str] = field(default_factory=dict)
    rustflags: List[str] = field(default_factory=list)  # codegen flags the packages share
    embed_bitcode: bool = False  # rlibs usable by LTO builds
    path: List[str] = field(default_factory=lambda: ["/usr/bin", "/bin"])
    out_dir: str = "__std_sysroot"
    work_dir: str = "__std"

    @classmethod
    def load(cls, path: str) -> "Spec":
        return load_spec(cls, path, StdBuildError, "std build")


def target_args(spec: Spec, root: str) -> Tuple[List[str], str]:
    """cargo --target args and the target's name (the directory under target/ and rustlib/)."""
    if spec.target == "custom":
        if not spec.target_spec:
            raise StdBuildError(f"std {spec.key}: a custom target needs `target_spec` (a target JSON)")
        path = resolve(spec.target_spec, root)
        if not os.path.isfile(path):
            raise StdBuildError(f"std {spec.key}: target JSON {spec.target_spec} not found")
        return ["--target", path, "-Z", "json-target-spec"], os.path.splitext(os.path.basename(path))[0]
    if not spec.target or spec.target == "host":
        raise StdBuildError(f"std {spec.key}: a std sysroot is built for a cross target, not {spec.target!r}")
    return ["--target", spec.target], spec.target


def dummy_manifest() -> str:
    return (
        "[package]\n"
        f'name = "{DUMMY_CRATE}"\n'
        'version = "0.0.0"\n'
        'edition = "2021"\n'
        "publish = false\n\n"
        "[lib]\n"
        'path = "lib.rs"\n\n'
        "[workspace]\n"
    )


def cargo_home_config(std_vendor: str) -> str:
    # json.dumps gives a valid TOML basic string.
    return (
        "[source.crates-io]\n"
        'replace-with = "redox-pants-std-vendor"\n\n'
        "[source.redox-pants-std-vendor]\n"
        f"directory = {json.dumps(std_vendor)}\n\n"
        "[net]\noffline = true\n"
    )


def profile_env(spec: Spec) -> Dict[str, str]:
    if spec.profile not in PROFILES:
        raise StdBuildError(f"std {spec.key}: profile {spec.profile!r} is not one of {', '.join(PROFILES)}")
    env = {}
    for key, value in sorted(spec.profile_settings.items()):
        if key not in PROFILE_KEYS:
            raise StdBuildError(
                f"std {spec.key}: profile setting {key!r} does not shape the std build (one of: {', '.join(PROFILE_KEYS)})"
            )
        env[f"CARGO_PROFILE_{spec.profile.upper()}_{key.upper().replace('-', '_')}"] = str(value)
    return env


def std_rustflags(spec: Spec, root: str) -> List[str]:
    flags = [f"--remap-path-prefix={root}=/redox-pants"]
    if spec.embed_bitcode:
        # Cargo passes -C embed-bitcode=no when the (dummy) build itself does no LTO; RUSTFLAGS
        # come after its own flags, so this wins and LTO packages can use the rlibs.
        flags.append("-Cembed-bitcode=yes")
    return flags + list(spec.rustflags)


def check_toolchain(spec: Spec, root: str) -> Tuple[str, str, str]:
    tools = spec.toolchain.get("tools", {})
    found = []
    for key in ("cargo", "rustc"):
        path = tools.get(key) if isinstance(tools, dict) else None
        if not path or not os.path.isfile(resolve(str(path), root)):
            raise StdBuildError(f"std {spec.key}: the toolchain's `{key}` ({path or 'none'}) does not exist")
        found.append(resolve(str(path), root))
    rust_src = str(spec.toolchain.get("rust_src") or "")
    if not rust_src or not os.path.isfile(os.path.join(resolve(rust_src, root), "library", "core", "Cargo.toml")):
        raise StdBuildError(
            f"std {spec.key}: the toolchain has no rust-src (no library/core/Cargo.toml under "
            f"{rust_src or 'its rust_src'}); building std needs it: install rust-web-src or use provider=download"
        )
    std_vendor = str(spec.toolchain.get("std_vendor") or "")
    if not std_vendor or not os.path.isdir(resolve(std_vendor, root)):
        raise StdBuildError(f"std {spec.key}: the toolchain's std vendor directory ({std_vendor or 'none'}) does not exist")
    return found[0], found[1], resolve(std_vendor, root)


def build(spec: Spec) -> List[str]:
    root = os.getcwd()
    if not spec.crates:
        raise StdBuildError(f"std {spec.key}: no crates to build")
    cargo, rustc, std_vendor = check_toolchain(spec, root)
    targs, target_name = target_args(spec, root)
    work = os.path.join(root, spec.work_dir)
    crate = os.path.join(work, "crate")
    cargo_home = os.path.join(work, "home")
    target_dir = os.path.join(work, "target")
    os.makedirs(crate, exist_ok=True)
    os.makedirs(cargo_home, exist_ok=True)
    with open(os.path.join(crate, "Cargo.toml"), "w") as f:
        f.write(dummy_manifest())
    with open(os.path.join(crate, "lib.rs"), "w") as f:
        f.write("#![no_std]\n")
    with open(os.path.join(cargo_home, "config.toml"), "w") as f:
        f.write(cargo_home_config(std_vendor))
    env = {
        **cargo_env(spec.path, work, cargo_home, rustc),
        **profile_env(spec),
        "CARGO_ENCODED_RUSTFLAGS": "\x1f".join(std_rustflags(spec, root)),
    }
    args = [
        cargo, "build", "--offline", "--lib",
        "--manifest-path", os.path.join(crate, "Cargo.toml"),
        "--target-dir", target_dir,
        "--profile", spec.profile,
        *targs,
        "-Z", "build-std=" + ",".join(spec.crates),
    ]
    if spec.features:
        args += ["-Z", "build-std-features=" + ",".join(spec.features)]
    proc = subprocess.run(args, cwd=crate, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise StdBuildError(f"std {spec.key}: cargo -Z build-std failed:\n{indent(tail(proc.stderr))}")
    deps = os.path.join(target_dir, target_name, "debug" if spec.profile == "dev" else spec.profile, "deps")
    return collect(spec, deps, os.path.join(root, spec.out_dir, "lib", "rustlib", target_name, "lib"))


def collect(spec: Spec, deps: str, dest: str) -> List[str]:
    """Copy the std crates' rlibs (not the dummy crate's) into the sysroot's lib directory."""
    rlibs = sorted(
        n for n in (os.listdir(deps) if os.path.isdir(deps) else [])
        if n.endswith(".rlib") and not n.startswith(f"lib{DUMMY_CRATE}-")
    )
    if not rlibs:
        raise StdBuildError(f"std {spec.key}: cargo built no rlibs in {deps}")
    os.makedirs(dest, exist_ok=True)
    for name in rlibs:
        shutil.copyfile(os.path.join(deps, name), os.path.join(dest, name))
        os.chmod(os.path.join(dest, name), 0o644)
    return rlibs


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def indent(text: str) -> str:
    return "\n".join("  | " + line for line in text.splitlines())


def main(argv: Optional[Sequence[str]] = None) -> int:
    return spec_main("redox_tools.stdlib.build", __doc__, lambda path: build(Spec.load(path)), argv)


if __name__ == "__main__":
    run_main(main)
