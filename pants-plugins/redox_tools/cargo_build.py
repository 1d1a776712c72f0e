"""Build one Cargo package offline for a Redox/UEFI/custom/host target and stage its outputs.

Run by the `redox_cargo_package` rule inside a sandbox (and usable by hand):

    python -m redox_tools.cargo_build SPEC.json

The spec (JSON) says where the crate and the toolchain are, which target, build-std crates,
features, rustflags, vendor directories and the install map. The driver

1. merges the vendor directories (the package's own first, then the toolchain's std vendor)
   into one cargo directory source, version-aware: the same crate + version appears once;
2. writes a private CARGO_HOME/config.toml that replaces crates.io with that source;
3. runs `cargo build --offline --frozen` with `-Z build-std` as asked, remapping the sandbox path
   out of the binaries so outputs do not depend on where the build ran;
4. copies each installed output to `<out_dir>/<install path>` (mode 755 for programs).

Every failure the user can fix becomes one `error:` line naming the package and the fix.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from redox_tools.errors import ToolError, run_main

# Per target: the linker rustc should use and its flavor. The redox target's built-in default
# (x86_64-unknown-redox-gcc) exists only in Redox's prefix toolchain; freestanding code links
# with lld directly.
LINKER_FLAVOR = {
    "x86_64-unknown-redox": "ld.lld",
    "custom": "ld.lld",
}


class CargoBuildError(ToolError):
    pass


@dataclass
class Spec:
    package: str  # the Pants address, for messages
    crate_dir: str
    toolchain: Dict[str, object]
    target: str  # triple, "host", or "custom"
    target_spec: Optional[str] = None
    linker_script: Optional[str] = None
    entry: Optional[str] = None
    nasm_sources: List[str] = field(default_factory=list)
    build_std: List[str] = field(default_factory=list)
    build_std_features: List[str] = field(default_factory=list)
    features: List[str] = field(default_factory=list)
    no_default_features: bool = False
    rustflags: List[str] = field(default_factory=list)
    profile: str = "release"
    cargo_package: Optional[str] = None
    bins: List[str] = field(default_factory=list)
    vendor_dirs: List[str] = field(default_factory=list)
    install: Dict[str, str] = field(default_factory=dict)
    out_dir: str = "__staged"
    path: List[str] = field(default_factory=lambda: ["/usr/bin", "/bin"])
    work_dir: str = "__cargo"

    @classmethod
    def load(cls, path: str) -> "Spec":
        with open(path) as f:
            data = json.load(f)
        try:
            return cls(**data)
        except TypeError as e:
            raise CargoBuildError(f"bad cargo build spec {path}: {e}") from None


_PKG_NAME = re.compile(r'^\s*name\s*=\s*"([^"]+)"', re.M)
_PKG_VERSION = re.compile(r'^\s*version\s*=\s*"([^"]+)"', re.M)


def crate_identity(crate_dir: str) -> Optional[Tuple[str, str]]:
    """(name, version) from a vendored crate's Cargo.toml [package] table, or None."""
    try:
        with open(os.path.join(crate_dir, "Cargo.toml"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    start = text.find("[package]")
    if start < 0:
        return None
    end = text.find("\n[", start + 1)
    section = text[start : end if end > 0 else len(text)]
    name, version = _PKG_NAME.search(section), _PKG_VERSION.search(section)
    if not name or not version:
        return None
    return name.group(1), version.group(1)


def merge_vendor_dirs(dirs: Sequence[str], dest: str) -> Dict[str, str]:
    """Symlink every crate of `dirs` into `dest` as `<name>-<version>`; the first wins on a tie.

    Returns {name-version: source dir}.
    """
    os.makedirs(dest, exist_ok=True)
    chosen: Dict[str, str] = {}
    for d in dirs:
        if not os.path.isdir(d):
            raise CargoBuildError(f"vendor directory {d} does not exist")
        for entry in sorted(os.listdir(d)):
            crate = os.path.join(d, entry)
            ident = crate_identity(crate)
            if ident is None or not os.path.exists(os.path.join(crate, ".cargo-checksum.json")):
                continue
            key = f"{ident[0]}-{ident[1]}"
            if key in chosen:
                continue
            chosen[key] = crate
            os.symlink(os.path.abspath(crate), os.path.join(dest, key))
    return chosen


def cargo_config(vendor_dir: str) -> str:
    return (
        "[source.crates-io]\n"
        'replace-with = "redox-pants-vendor"\n\n'
        "[source.redox-pants-vendor]\n"
        f'directory = "{vendor_dir}"\n\n'
        "[net]\noffline = true\n"
    )


def target_args(spec: Spec, root: str) -> Tuple[List[str], str]:
    """cargo --target args and the directory name cargo uses under target/."""
    if spec.target == "host":
        return [], ""
    if spec.target == "custom":
        if not spec.target_spec:
            raise CargoBuildError(f"{spec.package}: a custom target needs `target_spec` (a target JSON)")
        path = os.path.join(root, spec.crate_dir, spec.target_spec)
        if not os.path.isfile(path):
            raise CargoBuildError(f"{spec.package}: target_spec {spec.target_spec} not found in the crate")
        return ["--target", path, "-Z", "json-target-spec"], os.path.splitext(os.path.basename(path))[0]
    return ["--target", spec.target], spec.target


def assemble_nasm(spec: Spec, root: str, obj_dir: str) -> List[str]:
    """Assemble the crate's nasm sources to ELF64 objects; returns absolute object paths (the
    linker runs from a temporary directory, so relative paths would not resolve)."""
    if not spec.nasm_sources:
        return []
    tools = spec.toolchain.get("tools", {})
    assert isinstance(tools, dict)
    nasm = tools.get("nasm")
    if not nasm:
        raise CargoBuildError(f"{spec.package}: `nasm_sources` needs nasm, and the toolchain has none (install nasm)")
    os.makedirs(obj_dir, exist_ok=True)
    objects = []
    for src in spec.nasm_sources:
        path = os.path.join(root, spec.crate_dir, src)
        if not os.path.isfile(path):
            raise CargoBuildError(f"{spec.package}: nasm source {src} not found in the crate")
        obj = os.path.join(obj_dir, os.path.splitext(src.replace("/", "_"))[0] + ".o")
        proc = subprocess.run(
            [resolve(str(nasm), root), "-f", "elf64", "-o", obj, src],
            cwd=os.path.join(root, spec.crate_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode != 0:
            raise CargoBuildError(f"{spec.package}: nasm failed on {src}:\n{tail(proc.stdout)}")
        objects.append(obj)
    return objects


def rustflags(spec: Spec, root: str, objects: Sequence[str] = ()) -> List[str]:
    tools = spec.toolchain.get("tools", {})
    assert isinstance(tools, dict)
    flags = [f"--remap-path-prefix={root}=/redox-pants"]
    flavor = LINKER_FLAVOR.get(spec.target)
    if flavor and tools.get("lld"):
        flags += [f"-Clinker={resolve(str(tools['lld']), root)}", f"-Clinker-flavor={flavor}"]
    if spec.target == "x86_64-unknown-uefi":
        # lld-link otherwise stamps the build time and a path-derived PDB GUID into the PE.
        flags += ["-Clink-arg=/Brepro", "-Clink-arg=/DEBUG:NONE"]
    if spec.linker_script:
        script = os.path.join(root, spec.crate_dir, spec.linker_script)
        if not os.path.isfile(script):
            raise CargoBuildError(f"{spec.package}: linker_script {spec.linker_script} not found in the crate")
        flags.append(f"-Clink-arg=-T{script}")
    if spec.entry:
        flags.append(f"-Clink-arg=--entry={spec.entry}")
    flags += [f"-Clink-arg={o}" for o in objects]
    return flags + list(spec.rustflags)


def resolve(path: str, root: str) -> str:
    return path if os.path.isabs(path) else os.path.join(root, path)


def profile_dir(profile: str) -> str:
    return {"dev": "debug", "test": "debug", "bench": "release"}.get(profile, profile)


_MISSING_CRATE = re.compile(r"no matching package named `([^`]+)` found")
_LOCK_MISMATCH = re.compile(r"lock file .* needs to be updated but --(frozen|locked) was passed", re.S)


def explain_cargo_failure(spec: Spec, stderr: str) -> str:
    m = _MISSING_CRATE.search(stderr)
    if m:
        return (
            f"{spec.package}: the crate needs `{m.group(1)}`, which is in none of the vendor directories "
            "(the package's `vendor` targets and the toolchain's std vendor); add a vendor target that provides it"
        )
    if _LOCK_MISMATCH.search(stderr):
        return f"{spec.package}: Cargo.lock is out of date with Cargo.toml; regenerate it (`cargo generate-lockfile`) and commit it"
    if "failed to select a version for the requirement" in stderr or "failed to get `" in stderr:
        return f"{spec.package}: a dependency version is not in the vendor directories:\n" + tail(stderr)
    return f"{spec.package}: cargo build failed:\n" + tail(stderr)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def build(spec: Spec) -> List[str]:
    root = os.getcwd()
    tools = spec.toolchain.get("tools", {})
    assert isinstance(tools, dict)
    work = os.path.join(root, spec.work_dir)
    cargo_home = os.path.join(work, "home")
    vendor = os.path.join(work, "vendor")
    target_dir = os.path.join(work, "target")
    os.makedirs(cargo_home, exist_ok=True)

    vendor_dirs = [resolve(d, root) for d in spec.vendor_dirs]
    std_vendor = str(spec.toolchain.get("std_vendor") or "")
    if std_vendor:
        vendor_dirs.append(resolve(std_vendor, root))
    merge_vendor_dirs(vendor_dirs, vendor)
    with open(os.path.join(cargo_home, "config.toml"), "w") as f:
        f.write(cargo_config(vendor))

    manifest = os.path.join(root, spec.crate_dir, "Cargo.toml")
    if not os.path.isfile(manifest):
        raise CargoBuildError(f"{spec.package}: no Cargo.toml in {spec.crate_dir}")
    targs, target_name = target_args(spec, root)
    objects = assemble_nasm(spec, root, os.path.join(work, "obj"))
    args = [
        resolve(str(tools["cargo"]), root),
        "build",
        "--offline",
        "--frozen",
        "--manifest-path",
        manifest,
        "--target-dir",
        target_dir,
        "--profile",
        spec.profile,
        *targs,
    ]
    if spec.build_std:
        args += ["-Z", "build-std=" + ",".join(spec.build_std)]
        if spec.build_std_features:
            args += ["-Z", "build-std-features=" + ",".join(spec.build_std_features)]
    if spec.features:
        args += ["--features", ",".join(spec.features)]
    if spec.no_default_features:
        args.append("--no-default-features")
    if spec.cargo_package:
        args += ["-p", spec.cargo_package]
    for b in spec.bins:
        args += ["--bin", b]

    env = {
        "PATH": os.pathsep.join(spec.path),
        "HOME": work,
        "CARGO_HOME": cargo_home,
        "RUSTC": resolve(str(tools["rustc"]), root),
        "RUSTC_BOOTSTRAP": "1",
        "CARGO_ENCODED_RUSTFLAGS": "\x1f".join(rustflags(spec, root, objects)),
        "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0"),
        "CARGO_TERM_COLOR": "never",
        "CARGO_INCREMENTAL": "0",
    }
    proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise CargoBuildError(explain_cargo_failure(spec, proc.stderr))

    out_root = os.path.join(target_dir, target_name, profile_dir(spec.profile)) if target_name else os.path.join(
        target_dir, profile_dir(spec.profile)
    )
    return stage_outputs(spec, out_root, os.path.join(root, spec.out_dir))


def stage_outputs(spec: Spec, out_root: str, staged: str) -> List[str]:
    produced = sorted(
        n for n in os.listdir(out_root) if os.path.isfile(os.path.join(out_root, n)) and not n.endswith(".d")
    ) if os.path.isdir(out_root) else []
    os.makedirs(staged, exist_ok=True)
    installed = []
    for name, dest in sorted(spec.install.items()):
        candidates = [name, f"{name}.efi", f"{name}.exe"]
        src = next((os.path.join(out_root, c) for c in candidates if c in produced), None)
        if src is None:
            raise CargoBuildError(
                f"{spec.package}: `install` names `{name}`, but cargo produced no output of that name "
                f"(produced: {', '.join(produced) or 'nothing'})"
            )
        rel = dest.lstrip("/")
        if not rel or ".." in rel.split("/"):
            raise CargoBuildError(f"{spec.package}: install path {dest!r} for `{name}` is not inside the image")
        target = os.path.join(staged, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(src, target)
        executable = os.access(src, os.X_OK) and not src.endswith((".a", ".rlib"))
        os.chmod(target, 0o755 if executable else 0o644)
        installed.append(rel)
    return installed


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redox_tools.cargo_build", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="JSON build spec")
    args = parser.parse_args(argv)
    for path in build(Spec.load(args.spec)):
        print(path)
    return 0


if __name__ == "__main__":
    run_main(main)
