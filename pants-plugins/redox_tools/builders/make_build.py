"""Run an upstream's own build entry point (its Makefile, or a cookbook-style script) offline in
the Redox cross environment, and stage what it installs.

Run by the `redox_make_package` rule inside a sandbox (and usable by hand):

    python -m redox_tools.builders.make_build SPEC.json

The driver

1. merges the vendor directories (the package's Cargo.lock crates, then the toolchain's std
   vendor) into one cargo directory source and writes a CARGO_HOME whose config replaces
   crates.io with it (`redox_tools.builders.cargo_build.cargo_config`; offline);
2. writes `<triple>-clang`, `-ar`, `-ld`, ... wrappers (`redox_tools.builders.cross_env`) and sets the
   environment the cookbook gives recipes: TARGET, CC/CXX/AR/LD/NM/OBJCOPY/RANLIB/STRIP,
   cc-rs' `CC_<triple>` & co., CARGO, RUSTC, RUSTC_BOOTSTRAP=1, the target's linker and
   rustflags (`CARGO_TARGET_<TRIPLE>_LINKER`/`_RUSTFLAGS`), host tool packages first on PATH;
3. runs `make -j<cpus> <entry> TARGET=... CC=... <make_variables>` for each `make` entry in the
   source directory (`{stage}` in an entry is the staging directory, so
   `install DESTDIR={stage}/usr PREFIX=` is upstream's install), or the `script` with bash;
4. copies the staging directory to `<out_dir>` (symlinks stay symlinks; files 755 if
   executable, else 644). A symlink leaving the tree, or an empty install, is an error.

Every failure becomes one `error:` line naming the package (the tool's output tail, indented,
below it).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from redox_tools.builders import cross_env
from redox_tools.builders.cargo_build import cargo_config, merge_vendor_dirs
from redox_tools.builders.driver import load_spec, resolve, spec_main
from redox_tools.errors import ToolError, run_main
from redox_tools.sources.cargo_git import read_index

STAGE_PLACEHOLDER = "{stage}"


class MakeBuildError(ToolError):
    pass


@dataclass
class MakeSpec:
    package: str  # the Pants address, for messages
    src_dir: str  # the upstream tree (relative to the sandbox root)
    toolchain: Dict[str, object]
    target: str = "x86_64-unknown-redox"
    make: List[str] = field(default_factory=list)  # one `make` run per entry (shell-quoted args)
    script: Optional[str] = None  # or a bash script (cookbook-style)
    make_variables: Dict[str, str] = field(default_factory=dict)
    rustflags: List[str] = field(default_factory=list)
    vendor_dirs: List[str] = field(default_factory=list)
    git_vendor_dir: Optional[str] = None  # git dependencies laid out by redox_tools.sources.cargo_git
    host_tools: List[str] = field(default_factory=list)  # trees of host packages (their bin/ on PATH)
    sysroot: Optional[str] = None  # a tree to compile and link against
    jobs: int = 0  # 0: the machine's CPU count
    path: List[str] = field(default_factory=lambda: ["/usr/bin", "/bin"])
    out_dir: str = "__staged"
    work_dir: str = "__make"

    @classmethod
    def load(cls, path: str) -> "MakeSpec":
        return load_spec(cls, path, MakeBuildError, "make build")


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def indent(text: str) -> str:
    return "\n".join("  | " + line for line in text.splitlines())


def toolchain_tools(spec: MakeSpec, root: str) -> Dict[str, str]:
    tools = spec.toolchain.get("tools", {})
    if not isinstance(tools, dict):
        return {}
    return {str(k): resolve(str(v), root) for k, v in tools.items() if v}


def require(spec: MakeSpec, tools: Dict[str, str], key: str, why: str) -> str:
    path = tools.get(key)
    if not path or not os.path.isfile(path):
        raise MakeBuildError(f"{spec.package}: the toolchain has no `{key}` ({path or 'not configured'}); it is needed {why}")
    return path


def build_env(spec: MakeSpec, root: str, work: str) -> Dict[str, str]:
    """The whole environment of the build (nothing is inherited from the caller)."""
    tools = toolchain_tools(spec, root)
    cargo = require(spec, tools, "cargo", "for the build's cargo runs (CARGO)")
    rustc = require(spec, tools, "rustc", "for the build's cargo runs (RUSTC)")
    require(spec, tools, "clang", "as the target C compiler (CC)")
    lld = require(spec, tools, "lld", "as the target linker (LD)")
    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    vendor_dirs = [resolve(d, root) for d in spec.vendor_dirs]
    std_vendor = str(spec.toolchain.get("std_vendor") or "")
    if std_vendor:
        vendor_dirs.append(resolve(std_vendor, root))
    vendor = os.path.join(work, "vendor")
    try:
        merge_vendor_dirs(vendor_dirs, vendor)
    except ToolError as e:
        raise MakeBuildError(f"{spec.package}: {e}") from None
    with open(os.path.join(home, "config.toml"), "w") as f:
        git = read_index(resolve(spec.git_vendor_dir, root)) if spec.git_vendor_dir else ()
        f.write(cargo_config(vendor, git))

    sysroot = resolve(spec.sysroot, root) if spec.sysroot else None
    wrappers = cross_env.write_wrappers(
        os.path.join(work, "bin"), spec.target, tools, sysroot, os.path.join(work, "empty-sysroot")
    )
    host_bins = []
    for d in spec.host_tools:
        for sub in ("bin", "usr/bin"):
            p = os.path.join(resolve(d, root), sub)
            if os.path.isdir(p):
                host_bins.append(p)
    triple_var = spec.target.upper().replace("-", "_")
    rustflags = [f"--remap-path-prefix={root}=/redox-pants", "-Clinker-flavor=ld.lld", *spec.rustflags]
    env = {
        "PATH": os.pathsep.join([*host_bins, os.path.join(work, "bin"), *spec.path]),
        "HOME": home,
        "CARGO_HOME": home,
        "CARGO": cargo,
        "RUSTC": rustc,
        "RUSTC_BOOTSTRAP": "1",
        "CARGO_NET_OFFLINE": "true",
        "CARGO_INCREMENTAL": "0",
        "CARGO_TERM_COLOR": "never",
        f"CARGO_TARGET_{triple_var}_LINKER": lld,
        f"CARGO_TARGET_{triple_var}_RUSTFLAGS": " ".join(rustflags),
        "TARGET": spec.target,
        "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0"),
        "LC_ALL": "C",
        "TZ": "UTC",
    }
    env.update(cross_env.tool_env(spec.target, wrappers))
    return env


def make_command(spec: MakeSpec, make: str, entry: str, env: Dict[str, str], stage: str, jobs: int) -> List[str]:
    """`make -j<n> <entry args> TARGET=... CC=... <make_variables>`: the cross tools as command-line
    variables, which beat a Makefile's own `CC = <triple>-gcc` (the package's own variables last)."""
    try:
        args = shlex.split(entry.replace(STAGE_PLACEHOLDER, stage))
    except ValueError as e:
        raise MakeBuildError(f"{spec.package}: `make` entry {entry!r} is not valid shell quoting: {e}") from None
    variables = {"TARGET": spec.target}
    variables.update({k: env[k] for k in cross_env.VARIABLES if k in env})
    variables.update(spec.make_variables)
    return [make, f"-j{jobs}", *args, *(f"{k}={v}" for k, v in sorted(variables.items()))]


def run(spec: MakeSpec, cmd: List[str], what: str, cwd: str, env: Dict[str, str]) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace")
    if proc.returncode != 0:
        raise MakeBuildError(f"{spec.package}: {what} failed (exit {proc.returncode}):\n{indent(tail(proc.stdout))}")


def stage_tree(spec: MakeSpec, stage: str, out: str) -> List[str]:
    """Copy `stage` to `out` (sorted, symlinks kept, modes normalised); the paths staged.
    Everything is checked before anything is written."""
    entries: List[str] = []
    for dirpath, dirnames, filenames in os.walk(stage):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, stage)
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            entries.append(os.path.normpath(os.path.join(rel_dir, name)))
    if not entries:
        raise MakeBuildError(f"{spec.package}: the build installed nothing into the staging directory ({STAGE_PLACEHOLDER})")
    for rel in entries:
        src = os.path.join(stage, rel)
        if os.path.islink(src):
            link = os.readlink(src)
            target = os.path.normpath(os.path.join(os.path.dirname(rel), link))
            if os.path.isabs(link) or target == ".." or target.startswith("../"):
                raise MakeBuildError(
                    f"{spec.package}: installed symlink /{rel} -> {link} points outside the installed tree "
                    "(use a relative link inside it)"
                )
        elif not os.path.isfile(src):
            raise MakeBuildError(f"{spec.package}: installed /{rel} is not a regular file, directory or symlink")
    for rel in entries:
        src, dst = os.path.join(stage, rel), os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755 if os.stat(src).st_mode & 0o111 else 0o644)
    return entries


def build(spec: MakeSpec) -> List[str]:
    root = os.getcwd()
    src = resolve(spec.src_dir or ".", root)
    if bool(spec.make) == bool(spec.script):
        raise MakeBuildError(f"{spec.package}: give exactly one of `make` (make runs) or `script` (a bash script)")
    if spec.make and not any(os.path.isfile(os.path.join(src, m)) for m in ("GNUmakefile", "makefile", "Makefile")):
        raise MakeBuildError(f"{spec.package}: no Makefile in {spec.src_dir or 'the source root'}")
    work = resolve(spec.work_dir, root)
    stage = os.path.join(work, "stage")
    os.makedirs(stage, exist_ok=True)
    env = build_env(spec, root, work)
    jobs = spec.jobs or os.cpu_count() or 1
    if spec.make:
        make = shutil.which("make", path=env["PATH"])
        if not make:
            raise MakeBuildError(f"{spec.package}: `make` is not on the build PATH ({env['PATH']}); install make")
        for entry in spec.make:
            run(spec, make_command(spec, make, entry, env, stage, jobs), f"`make {entry}`", src, env)
    else:
        bash = shutil.which("bash", path=env["PATH"]) or "/bin/bash"
        script_env = {**env, "COOKBOOK_SOURCE": src, "COOKBOOK_STAGE": stage, "COOKBOOK_MAKE_JOBS": str(jobs)}
        run(spec, [bash, "-euo", "pipefail", "-c", str(spec.script)], "the build script", src, script_env)
    return stage_tree(spec, stage, resolve(spec.out_dir, root))


def main(argv: Optional[Sequence[str]] = None) -> int:
    return spec_main("redox_tools.builders.make_build", __doc__, lambda path: build(MakeSpec.load(path)), argv)


if __name__ == "__main__":
    run_main(main)
