"""Build one Cargo package offline for a Redox/UEFI/custom/host target and stage its outputs.

Run by the `redox_cargo_package` rule inside a sandbox (and usable by hand):

    python -m redox_tools.builders.cargo_build SPEC.json

The spec (JSON) says where the crate and the toolchain are, which target, build-std crates,
features, rustflags, vendor directories and the install map. The driver

1. merges the vendor directories (the package's own first, then the toolchain's std vendor)
   into one cargo directory source, version-aware: the same crate + version appears once;
2. writes a private CARGO_HOME/config.toml that replaces crates.io with that source;
3. runs `cargo build --offline --frozen` with `-Z build-std` as asked, remapping the sandbox path
   out of the binaries so outputs do not depend on where the build ran (with `emit_object`:
   `cargo rustc --lib -- --emit obj=<crate>.o` per package, relibc's crt0/crti/crtn/ld_so way);
4. copies each installed output to `<out_dir>/<install path>` (mode 755 for programs).

Every failure the user can fix becomes one `error:` line naming the package and the fix.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from redox_tools.builders import cross_env
from redox_tools.builders.driver import cargo_env, image_relpath, load_spec, resolve, spec_main
from redox_tools.errors import ToolError, run_main
from redox_tools.sources.cargo_git import VendoredGitSource, read_index, source_replacement_config

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
    cargo_packages: List[str] = field(default_factory=list)
    profile_settings: Dict[str, str] = field(default_factory=dict)
    split_debug: List[str] = field(default_factory=list)
    bins: List[str] = field(default_factory=list)
    emit_object: bool = False  # `cargo rustc --lib -- --emit obj=<crate>.o` per package
    lib_only: bool = False  # `cargo build --lib`
    vendor_dirs: List[str] = field(default_factory=list)
    git_vendor_dir: Optional[str] = None  # git dependencies laid out by redox_tools.sources.cargo_git
    install: Dict[str, str] = field(default_factory=dict)
    sysroot: Optional[str] = None  # a sysroot tree (relibc's install [+ libgcc]) to link programs against
    linkage: str = "static"  # or "dynamic": against the sysroot's libc.so (needs `interpreter`)
    interpreter: Optional[str] = None  # PT_INTERP of dynamically linked programs (/usr/lib/ld64.so.1)
    # A prebuilt std for `build_std` (redox_tools.stdlib.build): `--sysroot` instead of -Z build-std.
    std_sysroot: Optional[str] = None
    out_dir: str = "__staged"
    path: List[str] = field(default_factory=lambda: ["/usr/bin", "/bin"])
    work_dir: str = "__cargo"

    @classmethod
    def load(cls, path: str) -> "Spec":
        return load_spec(cls, path, CargoBuildError, "cargo build")


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
            link = os.path.join(dest, key)
            if os.path.lexists(link):  # a rerun in the same work dir
                os.unlink(link)
            os.symlink(os.path.abspath(crate), link)
    return chosen


def cargo_config(vendor_dir: str, git_sources: Sequence[VendoredGitSource] = ()) -> str:
    """The cargo config of an offline build: crates.io replaced by the directory source
    `vendor_dir`, and each git source of the lock (`[source."git+URL?rev=..."]` with its git=,
    rev=/branch=/tag=) replaced by the directory its crates were vendored to
    (`redox_tools.sources.cargo_git.read_index(<git vendor dir>)`), so cargo never fetches."""
    # json.dumps gives a valid TOML basic string (quotes and backslashes escaped).
    text = (
        "[source.crates-io]\n"
        'replace-with = "redox-pants-vendor"\n\n'
        "[source.redox-pants-vendor]\n"
        f"directory = {json.dumps(vendor_dir)}\n\n"
    )
    if git_sources:
        text += source_replacement_config(git_sources) + "\n"
    return text + "[net]\noffline = true\n"


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
            raise CargoBuildError(f"{spec.package}: nasm failed on {src}:\n{indent(tail(proc.stdout))}")
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
    return flags + sysroot_link_flags(spec, root) + list(spec.rustflags)


def cc_target_env(spec: Spec, root: str, work: str) -> Dict[str, str]:
    """cc-rs' `CC_<target>`, `AR_<target>`, ... (`redox_tools.builders.cross_env`): build scripts compile
    target C with the target's clang (against the `sysroot`, else no headers but clang's own),
    never the host's gcc. Custom target JSONs: named by the JSON's file stem, compiled for its
    `llvm-target`."""
    if spec.target == "host":
        return {}
    name = triple = spec.target
    if spec.target == "custom" and spec.target_spec:
        path = os.path.join(root, spec.crate_dir, spec.target_spec)
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            with open(path) as f:
                triple = str(json.load(f).get("llvm-target") or name)
        except (OSError, ValueError):
            triple = name
    tools = spec.toolchain.get("tools", {})
    paths = {str(k): resolve(str(v), root) for k, v in tools.items() if v} if isinstance(tools, dict) else {}
    sysroot = resolve(spec.sysroot, root) if spec.sysroot else None
    wrappers = cross_env.write_wrappers(
        os.path.join(work, "cross-bin"), triple, paths, sysroot, os.path.join(work, "empty-sysroot")
    )
    return cross_env.cc_rs_env(name, wrappers)


SYSROOT_LINK_FILES = ("crt0.o", "crti.o", "crtn.o", "libc.a")
LINKAGES = ("static", "dynamic")


def sysroot_link_flags(spec: Spec, root: str) -> List[str]:
    """Link programs against a relibc sysroot: `crt0.o crti.o <objects> -L<lib> -lc crtn.o`
    (the crt objects before everything through `-Z pre-link-arg`, libc and crtn after).

    Static (the target's crt-static default): libc.a, and std's `-lgcc_eh` from the same
    directory. Dynamic (upstream's DYNAMIC_INIT): `-C target-feature=-crt-static -C
    prefer-dynamic=no`, so rustc links without -static and `-lc` finds libc.so (DT_NEEDED =
    its soname), plus `--dynamic-linker=<interpreter>` (PT_INTERP); std then links `-lgcc_s`."""
    if spec.linkage not in LINKAGES:
        raise CargoBuildError(f"{spec.package}: unknown linkage {spec.linkage!r} (expected one of {', '.join(LINKAGES)})")
    if not spec.sysroot:
        if spec.linkage == "dynamic":
            raise CargoBuildError(f"{spec.package}: linkage `dynamic` links against a `sysroot`'s libc.so; set `sysroot`")
        return []
    lib = os.path.join(resolve(spec.sysroot, root), "usr", "lib")
    dynamic = spec.linkage == "dynamic"
    needed = SYSROOT_LINK_FILES + (("libc.so",) if dynamic else ())
    missing = [f for f in needed if not os.path.isfile(os.path.join(lib, f))]
    if missing:
        raise CargoBuildError(
            f"{spec.package}: the sysroot has no usr/lib/{', usr/lib/'.join(missing)}; is it a redox_sysroot?"
        )
    flags = []
    if dynamic:
        if not spec.interpreter or not spec.interpreter.startswith("/"):
            raise CargoBuildError(
                f"{spec.package}: linkage `dynamic` needs the sysroot's dynamic loader path (PT_INTERP), "
                f"got {spec.interpreter!r}"
            )
        flags += [
            "-Ctarget-feature=-crt-static",
            "-Cprefer-dynamic=no",
            f"-Clink-arg=--dynamic-linker={spec.interpreter}",
        ]
    return flags + [
        f"-Zpre-link-arg={os.path.join(lib, 'crt0.o')}",
        f"-Zpre-link-arg={os.path.join(lib, 'crti.o')}",
        f"-Clink-arg=-L{lib}",
        "-Clink-arg=-lc",
        f"-Clink-arg={os.path.join(lib, 'crtn.o')}",
    ]


def profile_dir(profile: str) -> str:
    return {"dev": "debug", "test": "debug", "bench": "release"}.get(profile, profile)


_MISSING_CRATE = re.compile(r"no matching package named `([^`]+)` found")
_NO_VERSION = re.compile(r"failed to select a version for the requirement `([^`]+)`")
_CANDIDATES = re.compile(r"candidate versions found which didn't match: ([^\n]+)")
_LOCK_MISMATCH = re.compile(
    r"lock file .* needs to be updated but --(frozen|locked) was passed|cannot update the lock file", re.S
)
_LOCK_MISSING = re.compile(r"cannot create the lock file")
_UNKNOWN_TARGET = re.compile(r'could not find specification for target "([^"]+)"')


def explain_cargo_failure(spec: Spec, stderr: str) -> str:
    """One line naming the package and the fix (cargo's own output, indented, below it for the
    cases not recognised), so that only the first line starts with `error:`."""
    m = _MISSING_CRATE.search(stderr)
    if m:
        return (
            f"{spec.package}: the crate needs `{m.group(1)}`, which is in none of the vendor directories "
            "(the package's `vendor` targets and the toolchain's std vendor); add a vendor target that provides it"
        )
    m = _NO_VERSION.search(stderr)
    if m:
        c = _CANDIDATES.search(stderr)
        have = f"the vendor directories only have {c.group(1).strip()}" if c else "no vendor directory has a match"
        return (
            f"{spec.package}: the crate needs `{m.group(1)}`, but {have}; vendor that version "
            "(a `vendor` target) or change the requirement"
        )
    if _LOCK_MISSING.search(stderr):
        return (
            f"{spec.package}: the crate has no Cargo.lock; generate it (`cargo generate-lockfile`), commit it "
            "and list it in the target's `sources`"
        )
    if _LOCK_MISMATCH.search(stderr):
        return f"{spec.package}: Cargo.lock is out of date with Cargo.toml; regenerate it (`cargo generate-lockfile`) and commit it"
    m = _UNKNOWN_TARGET.search(stderr)
    if m:
        return (
            f"{spec.package}: rustc does not know the target triple `{m.group(1)}` "
            "(`rustc --print target-list` lists the built-in ones; for a custom target set `target_spec`)"
        )
    if "failed to get `" in stderr:
        return f"{spec.package}: a dependency is not in the vendor directories:\n" + indent(errors_then_tail(stderr))
    return f"{spec.package}: cargo build failed:\n" + indent(errors_then_tail(stderr))


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


_ERROR_START = re.compile(r"^error(\[E\d+\])?:")


def error_blocks(text: str, limit: int = 80) -> List[str]:
    """The compiler's `error` diagnostics (each from its `error...:` line to the next blank
    line or the next diagnostic), at most `limit` lines; warnings are left out."""
    out: List[str] = []
    inside = False
    for line in text.splitlines():
        if _ERROR_START.match(line):
            inside = True
        elif inside and (not line.strip() or re.match(r"^(warning|note|help)(\[\w+\])?:", line) or line.startswith("   Compiling")):
            inside = False
            if out and out[-1] != "":
                out.append("")
            continue
        if inside:
            out.append(line)
        if len(out) >= limit:
            out.append("... (more errors)")
            break
    return out


def errors_then_tail(text: str, lines: int = 40) -> str:
    """A failed build's output as the user needs it: the `error` diagnostics first (they are
    often far above the end, behind pages of warnings), then the last `lines` lines."""
    errors = error_blocks(text)
    if not errors:
        return tail(text, lines)
    return "\n".join(errors).rstrip() + f"\n--- last {lines} lines of cargo's output ---\n" + tail(text, lines)


def indent(text: str) -> str:
    """Quote a tool's output below our own `error:` line (its `error:` lines must not look like ours)."""
    return "\n".join("  | " + line for line in text.splitlines())


def tool_path(spec: Spec, key: str, root: str, why: str) -> str:
    """The toolchain's `key` tool as an existing path, else a CargoBuildError naming tool and path."""
    tools = spec.toolchain.get("tools", {})
    path = tools.get(key) if isinstance(tools, dict) else None
    if not path:
        raise CargoBuildError(f"{spec.package}: the toolchain has no `{key}` ({why})")
    full = resolve(str(path), root)
    if not os.path.isfile(full):
        raise CargoBuildError(
            f"{spec.package}: the toolchain's `{key}` ({path}) does not exist; it is needed {why}"
        )
    return full


def check_toolchain(spec: Spec, root: str) -> None:
    """Every tool and directory the build will use must exist: fail before cargo starts."""
    tool_path(spec, "cargo", root, "to run the build")
    tool_path(spec, "rustc", root, "to compile")
    tools = spec.toolchain.get("tools", {})
    if spec.target in LINKER_FLAVOR and isinstance(tools, dict) and tools.get("lld"):
        tool_path(spec, "lld", root, f"to link for {spec.target}")
    if spec.nasm_sources:
        tool_path(spec, "nasm", root, "to assemble `nasm_sources`")
    if spec.build_std:
        rust_src = str(spec.toolchain.get("rust_src") or "")
        if not rust_src or not os.path.isfile(os.path.join(resolve(rust_src, root), "library", "core", "Cargo.toml")):
            raise CargoBuildError(
                f"{spec.package}: the toolchain has no rust-src (no library/core/Cargo.toml under "
                f"{rust_src or 'its rust_src'}); `build_std` needs it: install rust-web-src or use provider=download"
            )


def installable_outputs(metadata: dict, spec: Spec) -> List[str]:
    """The output file names `cargo build` can produce for the crate (from `cargo metadata`)."""
    names = set()
    for pkg in metadata.get("packages", []):
        if spec.cargo_packages and pkg.get("name") not in spec.cargo_packages:
            continue
        for t in pkg.get("targets", []):
            kinds = set(t.get("kind", []))
            name = t.get("name", "")
            if "bin" in kinds and (not spec.bins or name in spec.bins):
                names.update({name, f"{name}.efi", f"{name}.exe"})
                if name in spec.split_debug:
                    names.update({f"{name}.sym", f"{name}.all"})
            if kinds & {"lib", "rlib", "staticlib", "cdylib", "dylib"}:
                n = name.replace("-", "_")
                if spec.emit_object:
                    names.add(f"{n}.o")
                else:
                    names.update({f"lib{n}.a", f"lib{n}.so", f"lib{n}.rlib", f"{n}.lib", f"{n}.dll"})
    return sorted(names)


def cargo_metadata(cargo: str, manifest: str, env: Dict[str, str]) -> Tuple[Optional[dict], str]:
    """`cargo metadata --no-deps` of the crate, or (None, cargo's stderr)."""
    proc = subprocess.run(
        [cargo, "metadata", "--offline", "--frozen", "--no-deps", "--format-version", "1", "--manifest-path", manifest],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    if proc.returncode != 0:
        return None, proc.stderr
    try:
        return json.loads(proc.stdout), ""
    except ValueError as e:
        return None, str(e)


LIB_KINDS = {"lib", "rlib", "staticlib", "cdylib", "dylib"}


def object_crates(spec: Spec, metadata: Optional[dict], manifest: str, why: str) -> List[Tuple[Optional[str], str]]:
    """[(`-p` member or None for the root package, lib crate name)] for `emit_object`."""
    if spec.bins:
        raise CargoBuildError(f"{spec.package}: `emit_object` emits each package's lib; `bins` does not apply to it")
    if metadata is None:
        raise CargoBuildError(f"{spec.package}: `emit_object` needs `cargo metadata` of the crate, which failed:\n{indent(tail(why))}")
    packages = metadata.get("packages", [])
    chosen: List[Tuple[Optional[str], Optional[dict]]]
    if spec.cargo_packages:
        chosen = [(m, next((p for p in packages if p.get("name") == m), None)) for m in spec.cargo_packages]
        missing = [str(m) for m, p in chosen if p is None]
        if missing:
            raise CargoBuildError(f"{spec.package}: `cargo_packages` names {', '.join(missing)}, not members of the workspace")
    else:
        real = os.path.realpath(manifest)
        root = next((p for p in packages if os.path.realpath(p.get("manifest_path", "")) == real), None)
        if root is None:
            raise CargoBuildError(
                f"{spec.package}: `emit_object` on a virtual workspace needs `cargo_packages` (the members to emit)"
            )
        chosen = [(None, root)]
    crates: List[Tuple[Optional[str], str]] = []
    for member, pkg in chosen:
        assert pkg is not None
        lib = next((t for t in pkg.get("targets", []) if LIB_KINDS & set(t.get("kind", []))), None)
        if lib is None:
            raise CargoBuildError(
                f"{spec.package}: `emit_object` emits a package's lib, and {pkg.get('name')} has no [lib] target"
            )
        crates.append((member, str(lib["name"]).replace("-", "_")))
    return crates


def check_install_names(spec: Spec, metadata: Optional[dict]) -> None:
    """Refuse an `install` key that names no output of the crate before a long build starts.
    If `cargo metadata` itself failed, the build reports the problem instead."""
    if metadata is None:
        return
    outputs = installable_outputs(metadata, spec)
    if not outputs:
        return
    for name in sorted(spec.install):
        if name not in outputs:
            bins = sorted(o for o in outputs if "." not in o and not o.startswith("lib")) or outputs
            raise CargoBuildError(
                f"{spec.package}: `install` names `{name}`, but the crate builds no output of that name "
                f"(it builds: {', '.join(bins)})"
            )


def build(spec: Spec) -> List[str]:
    root = os.getcwd()
    work = os.path.join(root, spec.work_dir)
    cargo_home = os.path.join(work, "home")
    vendor = os.path.join(work, "vendor")
    target_dir = os.path.join(work, "target")

    manifest = os.path.join(root, spec.crate_dir, "Cargo.toml")
    if not os.path.isfile(manifest):
        raise CargoBuildError(f"{spec.package}: no Cargo.toml in {spec.crate_dir or 'the sandbox root'}")
    check_toolchain(spec, root)
    targs, target_name = target_args(spec, root)
    cargo = tool_path(spec, "cargo", root, "to run the build")
    rustc = tool_path(spec, "rustc", root, "to compile")

    os.makedirs(cargo_home, exist_ok=True)
    vendor_dirs = [resolve(d, root) for d in spec.vendor_dirs]
    std_vendor = str(spec.toolchain.get("std_vendor") or "")
    if std_vendor:
        vendor_dirs.append(resolve(std_vendor, root))
    merge_vendor_dirs(vendor_dirs, vendor)
    with open(os.path.join(cargo_home, "config.toml"), "w") as f:
        f.write(cargo_config(vendor, read_index(resolve(spec.git_vendor_dir, root)) if spec.git_vendor_dir else ()))

    env = cargo_env(spec.path, work, cargo_home, rustc)
    env["PATH"] = os.pathsep.join(toolchain_bin_dirs(spec, root) + [env["PATH"]])
    env.update(cc_target_env(spec, root, work))
    metadata, metadata_error = cargo_metadata(cargo, manifest, env)
    crates = object_crates(spec, metadata, manifest, metadata_error) if spec.emit_object else []
    check_install_names(spec, metadata)
    objects = assemble_nasm(spec, root, os.path.join(work, "obj"))
    args = [
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
    args += build_std_args(spec)
    if spec.features:
        args += ["--features", ",".join(spec.features)]
    if spec.no_default_features:
        args.append("--no-default-features")
    env.update(profile_env(spec))
    env["CARGO_ENCODED_RUSTFLAGS"] = "\x1f".join(std_sysroot_flags(spec, root) + rustflags(spec, root, objects))
    out_root = os.path.join(target_dir, target_name, profile_dir(spec.profile)) if target_name else os.path.join(
        target_dir, profile_dir(spec.profile)
    )
    if spec.emit_object:
        emit_objects(spec, [cargo, "rustc", *args], crates, env, os.path.join(work, "emit"), out_root)
    else:
        for member in spec.cargo_packages:
            args += ["-p", member]
        if spec.lib_only:
            if spec.bins:
                raise CargoBuildError(f"{spec.package}: `lib_only` builds the lib alone; `bins` does not apply to it")
            args.append("--lib")
        for b in spec.bins:
            args += ["--bin", b]
        proc = subprocess.run([cargo, "build", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise CargoBuildError(explain_cargo_failure(spec, proc.stderr))
    split_debug_info(spec, root, out_root)
    return stage_outputs(spec, out_root, os.path.join(root, spec.out_dir))


def build_std_args(spec: Spec) -> List[str]:
    """`-Z build-std` when the package compiles its own std (no prebuilt `std_sysroot`)."""
    if not spec.build_std or spec.std_sysroot:
        return []
    args = ["-Z", "build-std=" + ",".join(spec.build_std)]
    if spec.build_std_features:
        args += ["-Z", "build-std-features=" + ",".join(spec.build_std_features)]
    return args


def std_sysroot_flags(spec: Spec, root: str) -> List[str]:
    """`--sysroot` of the prebuilt std (target RUSTFLAGS only: host artifacts keep the host std)."""
    if not spec.std_sysroot:
        return []
    path = resolve(spec.std_sysroot, root)
    if not os.path.isdir(os.path.join(path, "lib", "rustlib")):
        raise CargoBuildError(f"{spec.package}: the prebuilt std {spec.std_sysroot} has no lib/rustlib")
    return [f"--sysroot={path}"]


def toolchain_bin_dirs(spec: Spec, root: str) -> List[str]:
    """With `--sysroot` at the prebuilt std, rustc no longer looks for its self-contained tools
    (rust-lld, the UEFI linker) in the toolchain's own `lib/rustlib/<host>/bin`: put that on PATH."""
    sysroot = str(spec.toolchain.get("sysroot") or "")
    if not spec.std_sysroot or not sysroot:
        return []
    rustlib = os.path.join(resolve(sysroot, root), "lib", "rustlib")
    if not os.path.isdir(rustlib):
        return []
    return [
        os.path.join(rustlib, d, "bin")
        for d in sorted(os.listdir(rustlib))
        if os.path.isfile(os.path.join(rustlib, d, "bin", "rust-lld"))
    ]


def emit_objects(
    spec: Spec, base: List[str], crates: Sequence[Tuple[Optional[str], str]], env: Dict[str, str], emit_dir: str, out_root: str
) -> None:
    """`cargo rustc --lib -- --emit obj=<crate>.o -C codegen-units=1` per package (one target dir,
    so build-std's crates are compiled once); the objects land in `out_root` for staging."""
    os.makedirs(emit_dir, exist_ok=True)
    for member, crate in crates:
        obj = os.path.join(emit_dir, f"{crate}.o")
        args = [*base, *(["-p", member] if member else []), "--lib", "--", "--emit", f"obj={obj}", "-C", "codegen-units=1"]
        proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise CargoBuildError(explain_cargo_failure(spec, proc.stderr))
        if not os.path.isfile(obj):
            raise CargoBuildError(f"{spec.package}: cargo rustc --emit obj produced no {crate}.o:\n{indent(tail(proc.stderr))}")
        os.makedirs(out_root, exist_ok=True)
        shutil.copyfile(obj, os.path.join(out_root, f"{crate}.o"))


# Profile keys Cargo reads from CARGO_PROFILE_<NAME>_<KEY> (the ones upstream recipes set).
PROFILE_KEYS = (
    "opt-level", "debug", "split-debuginfo", "strip", "debug-assertions", "overflow-checks", "lto", "panic",
    "incremental", "codegen-units", "rpath",
)


def profile_env(spec: Spec) -> Dict[str, str]:
    env = {}
    profile = spec.profile.upper().replace("-", "_")
    for key, value in sorted(spec.profile_settings.items()):
        if key not in PROFILE_KEYS:
            raise CargoBuildError(
                f"{spec.package}: `profile_settings` key {key!r} is not a Cargo profile setting "
                f"(one of: {', '.join(PROFILE_KEYS)})"
            )
        env[f"CARGO_PROFILE_{profile}_{key.upper().replace('-', '_')}"] = value
    return env


def split_debug_info(spec: Spec, root: str, out_root: str) -> None:
    """The kernel's objcopy step: `<bin>.all` (as linked), `<bin>.sym` (debug only), `<bin>` stripped."""
    if not spec.split_debug:
        return
    objcopy = tool_path(spec, "objcopy", root, "to split debug info (`split_debug`)")
    for name in spec.split_debug:
        linked = os.path.join(out_root, name)
        if not os.path.isfile(linked):
            raise CargoBuildError(f"{spec.package}: `split_debug` names `{name}`, but cargo built no bin of that name")
        full = linked + ".all"
        shutil.copyfile(linked, full)
        os.chmod(full, 0o755)
        for args in (["--only-keep-debug", full, linked + ".sym"], ["--strip-debug", full, linked]):
            proc = subprocess.run([objcopy, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if proc.returncode != 0:
                raise CargoBuildError(f"{spec.package}: objcopy {args[0]} failed on {name}:\n{indent(tail(proc.stdout))}")
        os.chmod(linked + ".sym", 0o644)


def stage_outputs(spec: Spec, out_root: str, staged: str) -> List[str]:
    """Copy each `install` output into `staged`. Everything is checked before anything is
    written, so a failure leaves no (partial) staged tree."""
    # cargo's own files there: dep-info (*.d) and lock files (.cargo-lock, .cargo-build-lock, ...)
    produced = sorted(
        n
        for n in os.listdir(out_root)
        if os.path.isfile(os.path.join(out_root, n)) and not n.endswith(".d") and not n.startswith(".")
    ) if os.path.isdir(out_root) else []
    plan: List[Tuple[str, str, str]] = []
    for name, dest in sorted(spec.install.items()):
        candidates = [name, f"{name}.efi", f"{name}.exe"]
        src = next((os.path.join(out_root, c) for c in candidates if c in produced), None)
        if src is None:
            raise CargoBuildError(
                f"{spec.package}: `install` names `{name}`, but cargo produced no output of that name "
                f"(produced: {', '.join(produced) or 'nothing'})"
            )
        rel = image_relpath(spec.package, name, dest, CargoBuildError)
        plan.append((name, src, rel))
    seen: Dict[str, str] = {}
    for name, _src, rel in plan:
        if rel in seen:
            raise CargoBuildError(f"{spec.package}: `install` puts both `{seen[rel]}` and `{name}` at /{rel}")
        seen[rel] = name
    created = not os.path.isdir(staged)
    installed = []
    try:
        for name, src, rel in plan:
            target = os.path.join(staged, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(src, target)
            executable = os.access(src, os.X_OK) and not src.endswith((".a", ".rlib"))
            os.chmod(target, 0o755 if executable else 0o644)
            installed.append(rel)
    except OSError as e:
        if created:
            shutil.rmtree(staged, ignore_errors=True)
        raise CargoBuildError(f"{spec.package}: cannot stage {e.filename}: {e.strerror}") from None
    return installed


def main(argv: Optional[Sequence[str]] = None) -> int:
    return spec_main("redox_tools.builders.cargo_build", __doc__, lambda path: build(Spec.load(path)), argv)


if __name__ == "__main__":
    run_main(main)
