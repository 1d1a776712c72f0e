"""Compile C for Redox with clang (freestanding until a relibc sysroot is wired in).

    python -m redox_tools.builders.c_build SPEC.json

The spec names the sources (repository files, or `source_files` globs over a source checkout
under `source_dir`, `!<glob>` dropping earlier matches), `-I` include_dirs, the target triple, the clang/ar paths, extra flags, the output kind
(`object`: one .o per source; `static_lib`: lib<name>.a; `executable`: a static program linked
against a sysroot) and the install map. Host include directories are never searched
(`-nostdinc`): only clang's own freestanding headers, plus the sysroot's usr/include when one is
given. An executable is linked by ld.lld directly (clang's Redox driver would call gcc):
`ld.lld -static -o prog crt0.o crti.o <objects> -L<sysroot>/usr/lib -lc crtn.o`; with
`linkage: dynamic` the same without -static, with `-dynamic-linker <interpreter>`, so libc comes
from libc.so (DT_NEEDED = its soname) and the program gets PT_INTERP. Source paths stay relative
so objects do not record the sandbox directory.
"""
from __future__ import annotations

import glob
import os
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from redox_tools.builders.driver import image_relpath, load_spec, spec_main, stage
from redox_tools.errors import ToolError, run_main


class CBuildError(ToolError):
    pass


@dataclass
class CSpec:
    package: str
    name: str
    sources: List[str]
    clang: str
    ar: Optional[str] = None
    triple: str = "x86_64-unknown-redox"
    cflags: List[str] = field(default_factory=list)
    output_kind: str = "object"
    sysroot_include: Optional[str] = None
    sysroot: Optional[str] = None  # a relibc sysroot tree (usr/include, usr/lib)
    lld: Optional[str] = None
    linkage: str = "static"  # or "dynamic": against the sysroot's libc.so
    interpreter: Optional[str] = None  # PT_INTERP for a dynamic executable (/usr/lib/ld64.so.1)
    install: Dict[str, str] = field(default_factory=dict)
    # A `redox_source` checkout: its root and the directory `source_files`/`include_dirs` are
    # relative to (both sandbox-relative); without one, include_dirs are relative to include_base.
    source_root: Optional[str] = None
    source_dir: Optional[str] = None
    source_files: List[str] = field(default_factory=list)
    include_dirs: List[str] = field(default_factory=list)
    include_base: str = ""
    out_dir: str = "__staged"
    work_dir: str = "__cbuild"
    path: List[str] = field(default_factory=lambda: ["/usr/bin", "/bin"])


REDOX_DEFINES = ["-D__redox__", "-D__unix__"]
OUTPUT_KINDS = ("object", "static_lib", "executable")
LINKAGES = ("static", "dynamic")
SYSROOT_LINK_FILES = ("crt0.o", "crti.o", "crtn.o", "libc.a")


def plain_relative(path: str) -> bool:
    return not os.path.isabs(path) and ".." not in path.replace("\\", "/").split("/")


def select_source_files(spec: CSpec) -> List[str]:
    """The checkout's files `source_files` selects (sandbox-relative, in pattern order)."""
    if not spec.source_dir:
        if spec.source_files:
            raise CBuildError(f"{spec.package}: `source_files` selects files of a `source` checkout; the target has no `source`")
        return []
    if not spec.source_files:
        raise CBuildError(
            f"{spec.package}: with `source`, `source_files` must name the files to compile "
            '(globs relative to `source_subdir`, e.g. ["src/*.c", "amd64/*.S"])'
        )
    if not os.path.isdir(spec.source_dir):
        raise CBuildError(f"{spec.package}: `source_subdir` {spec.source_dir} is not a directory of the checkout")
    chosen: Dict[str, None] = {}
    for pattern in spec.source_files:
        drop = pattern.startswith("!")
        pat = pattern[1:] if drop else pattern
        if not pat or not plain_relative(pat):
            raise CBuildError(f"{spec.package}: `source_files` pattern {pattern!r} must be relative to `source_subdir`, without '..'")
        found = sorted(p for p in glob.glob(os.path.join(spec.source_dir, pat), recursive=True) if os.path.isfile(p))
        if drop:
            for p in found:
                chosen.pop(p, None)
            continue
        found = [p for p in found if p.endswith((".c", ".S", ".s"))]
        if not found:
            raise CBuildError(f"{spec.package}: `source_files` pattern {pat!r} matches no .c/.S/.s file in {spec.source_dir}")
        for p in found:
            chosen.setdefault(p, None)
    return list(chosen)


def include_flags(spec: CSpec) -> List[str]:
    """`-I` for each include_dirs entry, kept inside the checkout (or the sandbox)."""
    base = spec.source_dir or spec.include_base or "."
    root = os.path.normpath(spec.source_root or ".")
    flags = []
    for d in spec.include_dirs:
        path = os.path.normpath(os.path.join(base, d))
        inside = root == "." and not path.startswith("..") or path == root or path.startswith(root + os.sep)
        if os.path.isabs(d) or not inside:
            raise CBuildError(f"{spec.package}: include_dirs entry {d!r} leaves the {'checkout' if spec.source_root else 'repository'}")
        if not os.path.isdir(path):
            raise CBuildError(f"{spec.package}: include_dirs entry {d!r} is not a directory ({path})")
        flags.append("-I" + path)
    return flags


def compile_flags(spec: CSpec, resource_include: str) -> List[str]:
    flags = [f"--target={spec.triple}", "-ffreestanding", "-nostdinc", "-isystem", resource_include]
    if spec.sysroot_include:
        flags += ["-isystem", spec.sysroot_include]
    if spec.sysroot:
        flags += ["-isystem", os.path.join(spec.sysroot, "usr", "include")]
    flags += include_flags(spec)
    if spec.triple.endswith("-redox"):
        flags += REDOX_DEFINES
    return flags + ["-O2", "-ffile-prefix-map=" + os.getcwd() + "=/redox-pants", *spec.cflags]


def run(args: Sequence[str], spec: CSpec, what: str) -> str:
    env = {"PATH": os.pathsep.join(spec.path), "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0")}
    proc = subprocess.run(list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        # The tool's output is quoted below our one `error:` line.
        raise CBuildError(
            f"{spec.package}: {what} failed:\n" + "\n".join("  | " + ln for ln in proc.stdout.splitlines()[-40:])
        )
    return proc.stdout


def check_tool(spec: CSpec, key: str, path: Optional[str], why: str) -> str:
    if not path:
        raise CBuildError(f"{spec.package}: the toolchain has no `{key}` ({why})")
    if not os.path.isfile(path):
        raise CBuildError(f"{spec.package}: the toolchain's `{key}` ({path}) does not exist; it is needed {why}")
    return path


def install_plan(spec: CSpec, outputs: Dict[str, str]) -> List[Tuple[str, str]]:
    """[(output name, image-relative path)], checked before anything is staged."""
    plan = []
    for name, dest in sorted(spec.install.items()):
        if name not in outputs:
            raise CBuildError(
                f"{spec.package}: `install` names `{name}`, but the build produced {', '.join(sorted(outputs))}"
            )
        plan.append((name, image_relpath(spec.package, name, dest, CBuildError)))
    return plan


def check_sysroot(spec: CSpec) -> str:
    """The sysroot's usr/lib, checked to hold what a static link needs."""
    if not spec.sysroot:
        raise CBuildError(
            f"{spec.package}: output_kind `executable` needs a `sysroot` (a redox_sysroot target, e.g. "
            "//packages/relibc:relibc) to link against"
        )
    lib = os.path.join(spec.sysroot, "usr", "lib")
    needed = SYSROOT_LINK_FILES + (("libc.so",) if spec.linkage == "dynamic" else ())
    missing = [f for f in needed if not os.path.isfile(os.path.join(lib, f))]
    if missing:
        raise CBuildError(f"{spec.package}: the sysroot has no usr/lib/{', usr/lib/'.join(missing)}; is it a redox_sysroot?")
    return lib


def check_linkage(spec: CSpec) -> None:
    if spec.linkage not in LINKAGES:
        raise CBuildError(f"{spec.package}: unknown linkage {spec.linkage!r} (expected one of {', '.join(LINKAGES)})")
    if spec.linkage == "dynamic":
        if spec.output_kind != "executable":
            raise CBuildError(
                f"{spec.package}: linkage `dynamic` applies to programs (output_kind `executable`), "
                f"not to output_kind `{spec.output_kind}`"
            )
        if not spec.interpreter or not spec.interpreter.startswith("/"):
            raise CBuildError(
                f"{spec.package}: linkage `dynamic` needs the sysroot's dynamic loader path (PT_INTERP), "
                f"got {spec.interpreter!r}"
            )


def link_executable(spec: CSpec, objects: Sequence[str]) -> str:
    lib = check_sysroot(spec)
    assert spec.lld
    out = os.path.join(spec.work_dir, spec.name)
    crt = {n: os.path.join(lib, n) for n in ("crt0.o", "crti.o", "crtn.o")}
    if spec.linkage == "dynamic":
        assert spec.interpreter
        mode = ["-dynamic-linker", spec.interpreter, "-Bdynamic"]
    else:
        mode = ["-static"]
    run(
        [spec.lld, *mode, "--entry=_start", "--gc-sections", "--build-id=none", "-o", out, crt["crt0.o"], crt["crti.o"],
         *objects, "-L" + lib, "-lc", crt["crtn.o"]],
        spec,
        f"linking ({spec.linkage}, ld.lld)",
    )
    return out


def expected_outputs(spec: CSpec, c_sources: Sequence[str]) -> List[str]:
    if spec.output_kind == "static_lib":
        return [f"lib{spec.name}.a"]
    if spec.output_kind == "executable":
        return [spec.name]
    return sorted(os.path.splitext(os.path.basename(s))[0] + ".o" for s in c_sources)


def build(spec: CSpec) -> List[str]:
    if spec.output_kind not in OUTPUT_KINDS:
        raise CBuildError(
            f"{spec.package}: unknown output_kind {spec.output_kind!r} (expected one of {', '.join(OUTPUT_KINDS)})"
        )
    c_sources = [s for s in spec.sources if s.endswith((".c", ".S", ".s"))] + select_source_files(spec)
    if not c_sources:
        raise CBuildError(f"{spec.package}: no C sources (.c/.S/.s) among `sources`")
    check_linkage(spec)
    check_tool(spec, "clang", spec.clang, "to compile C")
    if spec.output_kind == "static_lib":
        check_tool(spec, "ar", spec.ar, "to make a static library (install llvm-22)")
    if spec.output_kind == "executable":
        check_sysroot(spec)
        check_tool(spec, "lld", spec.lld, "to link a program (install lld-22)")
    # An `install` typo is reported before compiling anything.
    install_plan(spec, {n: n for n in expected_outputs(spec, c_sources)})
    resource_include = run([spec.clang, "-print-resource-dir"], spec, "clang -print-resource-dir").strip() + "/include"
    os.makedirs(spec.work_dir, exist_ok=True)
    flags = compile_flags(spec, resource_include)
    objects: Dict[str, str] = {}
    sources_of: Dict[str, str] = {}
    for src in sorted(c_sources):
        obj_name = os.path.splitext(os.path.basename(src))[0] + ".o"
        if obj_name in objects:
            raise CBuildError(
                f"{spec.package}: two sources compile to {obj_name}: {sources_of[obj_name]} and {src} "
                "(drop one, e.g. with a `!<glob>` in `source_files`)"
            )
        out = os.path.join(spec.work_dir, obj_name)
        run([spec.clang, *flags, "-c", src, "-o", out], spec, f"compiling {src}")
        objects[obj_name] = out
        sources_of[obj_name] = src
    outputs = dict(objects)
    if spec.output_kind == "static_lib":
        assert spec.ar
        lib = os.path.join(spec.work_dir, f"lib{spec.name}.a")
        # 'D': deterministic archive (zero uid/gid/mtime).
        run([spec.ar, "rcsD", lib, *[objects[k] for k in sorted(objects)]], spec, "llvm-ar")
        outputs = {f"lib{spec.name}.a": lib}
    if spec.output_kind == "executable":
        outputs = {spec.name: link_executable(spec, [objects[k] for k in sorted(objects)])}
    mode = 0o755 if spec.output_kind == "executable" else 0o644
    return stage(spec.out_dir, [(outputs[name], rel, mode) for name, rel in install_plan(spec, outputs)])


def main(argv: Optional[Sequence[str]] = None) -> int:
    return spec_main("redox_tools.builders.c_build", __doc__, lambda path: build(load_spec(CSpec, path, CBuildError, "C build")), argv)


if __name__ == "__main__":
    run_main(main)
