"""The Redox cross environment a build gets, as the cookbook gives it to recipes: the target's
C compiler, linker and binutils (LLVM's, behind `<triple>-<tool>` wrapper scripts), and the
variables make, cc-rs build scripts and cargo read.

    <bin>/x86_64-unknown-redox-clang   (also -cc, -clang++, -c++)  compile: clang --target=<triple>
                                       --sysroot=<sysroot or an empty dir> (never the host's headers);
                                       link: clang's ELF driver calling ld.lld with only what it is
                                       given (clang's Redox driver would run gcc)
    <bin>/x86_64-unknown-redox-{ld,ar,nm,objcopy,ranlib,strip,readelf}   ld.lld, llvm-ar, ...

`tool_env` gives CC/CXX/AR/LD/NM/OBJCOPY/RANLIB/STRIP and cc-rs' `CC_<triple>`, `CXX_<triple>`,
`AR_<triple>` (with `_` for `-`, which cc-rs also reads), so a build script never compiles
target C with the host's gcc. Pure: no Pants imports.
"""
from __future__ import annotations

import os
import shlex
from typing import Dict, Mapping, Optional

# Wrapper name -> (toolchain key it derives from, llvm tool name in place of the key's own).
BINUTILS = {
    "ld": ("lld", None),
    "ar": ("ar", None),
    "objcopy": ("objcopy", None),
    "nm": ("ar", "llvm-nm"),
    "ranlib": ("ar", "llvm-ranlib"),
    "strip": ("ar", "llvm-strip"),
    "readelf": ("ar", "llvm-readelf"),
}
# make/env variable -> wrapper suffix
VARIABLES = {
    "CC": "clang",
    "CXX": "clang++",
    "AR": "ar",
    "LD": "ld",
    "NM": "nm",
    "OBJCOPY": "objcopy",
    "RANLIB": "ranlib",
    "STRIP": "strip",
}
COMPILE_ONLY = ("-c", "-S", "-E", "-M", "-MM")

_CC_TEMPLATE = """#!/bin/sh
# {triple} C compiler (redox-pants cross environment).
for a in "$@"; do
  case "$a" in
    {compile_only}) exec {clang} --target={triple} --sysroot={sysroot} "$@" ;;
  esac
done
# Linking: clang's ELF driver runs ld.lld with only the given files and the sysroot's lib dirs.
exec {clang} --target={link_triple} --sysroot={sysroot} -fuse-ld=lld --ld-path={lld} "$@"
"""


def derived_tool(path: str, key_name: str, wanted: str) -> str:
    """`/usr/bin/llvm-ar-22` -> `/usr/bin/llvm-nm-22` (same directory and version suffix)."""
    d, base = os.path.split(path)
    prefix = "llvm-ar" if key_name == "ar" else key_name
    return os.path.join(d, base.replace(prefix, wanted, 1)) if prefix in base else ""


def _script(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def write_wrappers(
    bin_dir: str, triple: str, tools: Mapping[str, str], sysroot: Optional[str], empty_dir: str
) -> Dict[str, str]:
    """Write `<triple>-<tool>` scripts into `bin_dir` for the tools that exist; suffix -> path.
    `tools` are absolute paths (toolchain keys clang, lld, ar, objcopy)."""
    os.makedirs(bin_dir, exist_ok=True)
    os.makedirs(empty_dir, exist_ok=True)
    out: Dict[str, str] = {}
    clang = tools.get("clang")
    lld = tools.get("lld")
    root = sysroot or empty_dir
    if clang and lld and os.path.isfile(clang):
        clangxx = derived_tool(clang, "clang", "clang++")
        link_triple = triple.split("-", 1)[0] + "-unknown-linux-gnu"
        for names, compiler in ((("clang", "cc"), clang), (("clang++", "c++"), clangxx)):
            if not compiler or not os.path.isfile(compiler):
                continue
            text = _CC_TEMPLATE.format(
                triple=triple,
                link_triple=link_triple,
                clang=shlex.quote(compiler),
                lld=shlex.quote(lld),
                sysroot=shlex.quote(root),
                compile_only="|".join(COMPILE_ONLY),
            )
            for name in names:
                path = os.path.join(bin_dir, f"{triple}-{name}")
                _script(path, text)
                out[name] = path
    for suffix, (key, wanted) in sorted(BINUTILS.items()):
        base = tools.get(key)
        if not base:
            continue
        real = derived_tool(base, key, wanted) if wanted else base
        if not real or not os.path.isfile(real):
            continue
        path = os.path.join(bin_dir, f"{triple}-{suffix}")
        _script(path, f'#!/bin/sh\nexec {shlex.quote(real)} "$@"\n')
        out[suffix] = path
    return out


def tool_env(triple: str, wrappers: Mapping[str, str]) -> Dict[str, str]:
    """CC, CXX, AR, ... and cc-rs' per-target `CC_<triple>`, `CXX_<triple>`, `AR_<triple>`."""
    env: Dict[str, str] = {}
    for var, suffix in VARIABLES.items():
        if suffix in wrappers:
            env[var] = wrappers[suffix]
    env.update(cc_rs_env(triple, wrappers))
    return env


def cc_rs_env(triple: str, wrappers: Mapping[str, str]) -> Dict[str, str]:
    """What cc-rs reads for `--target <triple>` builds: both spellings of the triple."""
    env: Dict[str, str] = {}
    for var, suffix in (("CC", "clang"), ("CXX", "clang++"), ("AR", "ar"), ("RANLIB", "ranlib")):
        if suffix in wrappers:
            env[f"{var}_{triple}"] = wrappers[suffix]
            env[f"{var}_{triple.replace('-', '_')}"] = wrappers[suffix]
    return env
