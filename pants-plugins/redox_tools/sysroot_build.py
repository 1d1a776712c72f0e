"""Assemble a relibc-shaped C sysroot: headers, libc.a, libc.so, crt objects, libm.a.

    python -m redox_tools.sysroot_build SPEC.json

Run by the `redox_sysroot` rule inside a sandbox (and usable by hand). The spec names input files
already in the sandbox (the staged trees of the packages that built the parts, and the target's
own files or source checkout) and the tools (ld.lld, llvm-ar, llvm-objcopy, cbindgen). The
driver writes, under `<out_dir>/usr/`, what relibc's `make install` writes:

    include/*.h            static header directories + one cbindgen header per (crate source, config)
    lib/libc.a             the listed archives merged with an `llvm-ar -M` MRI script (deterministic)
    lib/libc.so            ld.lld -shared --gc-sections -soname <soname> [ld_so.o] --whole-archive libc.a
    lib/<soname>, lib/<interpreter>   copies of libc.so (relibc installs symlinks; copies keep
                                      every consumer - staged trees, RedoxFS, initfs - simple)
    lib/crt0.o, crt1.o, Scrt1.o (copies of crt0.o), crti.o, crtn.o
    lib/libm.a             the given libm archive (an empty archive when none: libm is in libc.a)
    lib/libdl.a, libpthread.a, librt.a   empty archives
    lib/<name>             each of `libraries` (libgcc_eh.a: upstream's prefix sysroot has libgcc's)

Rust-mangled symbols defined in libc.a (core/alloc internals, the panic handler) get a prefix,
as relibc's renamesyms.sh does, so that a Rust program that links libc.a and carries its own core
does not collide with libc's copy. A weak *hidden* definition in one archive of a symbol another
archive defines globally (compiler_builtins' `fabs`, `sqrt`, ... beside openlibm's) is made local
in its archive first: otherwise the hidden visibility wins the merge and libc.so does not export
the real function. Every output is byte-for-byte deterministic.
"""
from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

from redox_tools.elf import ElfError, ElfFile
from redox_tools.driver import load_spec
from redox_tools.errors import ToolError, run_main


class SysrootBuildError(ToolError):
    pass


CRT_KEYS = ("crt0", "crti", "crtn")
EMPTY_ARCHIVE = b"!<arch>\n"
EMPTY_LIBS = ("libdl.a", "libpthread.a", "librt.a")


@dataclass
class SysrootSpec:
    package: str  # the Pants address, for messages
    tools: Dict[str, Optional[str]]  # lld, ar, objcopy, cbindgen
    archives: List[str]  # sandbox paths, merged into libc.a in this order
    crt_objects: Dict[str, str]  # crt0/crti/crtn -> sandbox path
    ld_so_object: Optional[str] = None
    libm: Optional[str] = None
    libraries: Dict[str, str] = field(default_factory=dict)  # file name in usr/lib -> sandbox path
    src_dir: str = ""  # where `headers` and `cbindgen` paths are relative to
    headers: List[str] = field(default_factory=list)  # directories under src_dir
    cbindgen: Dict[str, str] = field(default_factory=dict)  # rust source (under src_dir) -> header
    cbindgen_common: Optional[str] = None  # a TOML appended to every cbindgen config (globdefs)
    soname: str = "libc.so.6"
    interpreter: str = "ld64.so.1"
    rust_symbol_prefix: str = "__relibc_"
    out_dir: str = "__staged"
    work_dir: str = "__sysroot_build"
    path: List[str] = field(default_factory=lambda: ["/usr/bin", "/bin"])
    labels: Dict[str, str] = field(default_factory=dict)  # sandbox path -> how the user named it
    fingerprints: Dict[str, str] = field(default_factory=dict)  # tool versions (process key only)

    @classmethod
    def load(cls, path: str) -> "SysrootSpec":
        return load_spec(cls, path, SysrootBuildError, "sysroot build")


def run(spec: SysrootSpec, args: Sequence[str], what: str, stdin: Optional[str] = None, cwd: Optional[str] = None) -> str:
    env = {"PATH": os.pathsep.join(spec.path), "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0"), "ZERO_AR_DATE": "1"}
    proc = subprocess.run(
        list(args), env=env, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd
    )
    if proc.returncode != 0:
        raise SysrootBuildError(
            f"{spec.package}: {what} failed:\n" + "\n".join("  | " + ln for ln in proc.stdout.splitlines()[-40:])
        )
    return proc.stdout


def tool(spec: SysrootSpec, key: str, why: str) -> str:
    path = spec.tools.get(key)
    if not path:
        raise SysrootBuildError(f"{spec.package}: the toolchain has no `{key}` ({why})")
    full = path if os.path.isabs(path) else os.path.abspath(path)
    if not os.path.isfile(full):
        raise SysrootBuildError(f"{spec.package}: the toolchain's `{key}` ({path}) does not exist; it is needed {why}")
    return full


def label(spec: SysrootSpec, path: str) -> str:
    return spec.labels.get(path, path)


def check_inputs(spec: SysrootSpec) -> None:
    """Every input must be there before any tool runs; each failure names the field and the fix."""
    missing = [k for k in CRT_KEYS if not spec.crt_objects.get(k)]
    if missing:
        raise SysrootBuildError(
            f"{spec.package}: `crt_objects` has no {', '.join(missing)}; a sysroot needs crt0 (_start), crti and "
            'crtn (.init/.fini), e.g. crt_objects={"crt0": "<address>=usr/lib/crt0.o", ...}'
        )
    unknown = sorted(set(spec.crt_objects) - set(CRT_KEYS))
    if unknown:
        raise SysrootBuildError(
            f"{spec.package}: `crt_objects` has unknown key(s) {', '.join(unknown)} (expected {', '.join(CRT_KEYS)})"
        )
    if not spec.archives:
        raise SysrootBuildError(f"{spec.package}: `archives` is empty; list the static libraries that make up libc.a")
    files: List[Tuple[str, str]] = [(f"`archives` entry {label(spec, a)}", a) for a in spec.archives]
    files += [(f"`crt_objects` {k} ({label(spec, p)})", p) for k, p in sorted(spec.crt_objects.items())]
    if spec.ld_so_object:
        files.append((f"`ld_so_object` {label(spec, spec.ld_so_object)}", spec.ld_so_object))
    if spec.libm:
        files.append((f"`libm` {label(spec, spec.libm)}", spec.libm))
    reserved = own_library_names(spec)
    for name, path in sorted(spec.libraries.items()):
        if not name or "/" in name or name in (".", ".."):
            raise SysrootBuildError(f"{spec.package}: `libraries` key {name!r} must be a file name (it goes in usr/lib)")
        if name in reserved:
            raise SysrootBuildError(
                f"{spec.package}: `libraries` key {name!r} is a file the sysroot makes itself; "
                f"choose another name (taken: {', '.join(sorted(reserved))})"
            )
        files.append((f"`libraries` {name} ({label(spec, path)})", path))
    archives = {*spec.archives, *([spec.libm] if spec.libm else []), *(p for n, p in spec.libraries.items() if n.endswith(".a"))}
    for what, path in files:
        if not os.path.isfile(path):
            raise SysrootBuildError(f"{spec.package}: {what} does not exist; the package must install that file")
    for what, path in files:
        with open(path, "rb") as f:
            magic = f.read(8)
        want_archive = path in archives
        if want_archive and magic != EMPTY_ARCHIVE:
            raise SysrootBuildError(f"{spec.package}: {what} is not an ar archive (a static library `lib<name>.a`)")
        if not want_archive and magic[:4] != b"\x7fELF":
            raise SysrootBuildError(f"{spec.package}: {what} is not an ELF object file")
    for d in spec.headers:
        if not os.path.isdir(os.path.join(spec.src_dir, d)):
            raise SysrootBuildError(
                f"{spec.package}: header directory {d!r} does not exist in the target's files; "
                "include its headers in `sources` (or fix the path, relative to the target or `source_subdir`)"
            )
    for src, header in sorted(spec.cbindgen.items()):
        if not os.path.isfile(os.path.join(spec.src_dir, src)):
            raise SysrootBuildError(f"{spec.package}: cbindgen source {src!r} does not exist in the target's files")
        if cbindgen_config(spec, src) is None:
            raise SysrootBuildError(
                f"{spec.package}: no cbindgen.toml beside {src!r} or in a directory above it; cbindgen needs one"
            )
        if not header.endswith(".h") or not plain_relpath(header):
            raise SysrootBuildError(f"{spec.package}: cbindgen header {header!r} must be a plain relative path ending .h")
    if spec.cbindgen_common and not os.path.isfile(os.path.join(spec.src_dir, spec.cbindgen_common)):
        raise SysrootBuildError(f"{spec.package}: cbindgen_common {spec.cbindgen_common!r} does not exist")
    for name in (spec.soname, spec.interpreter):
        if not name or "/" in name or name in ("libc.so", "libc.a"):
            raise SysrootBuildError(f"{spec.package}: {name!r} is not a usable library file name")


def own_library_names(spec: SysrootSpec) -> List[str]:
    """The usr/lib file names the sysroot writes itself."""
    return [
        "libc.a", "libc.so", spec.soname, spec.interpreter, "libm.a", "crt1.o", "Scrt1.o",
        *(f"{k}.o" for k in CRT_KEYS), *EMPTY_LIBS,
    ]


def plain_relpath(p: str) -> bool:
    parts = p.split("/")
    return bool(p) and not p.startswith("/") and not ({"", ".", ".."} & set(parts))


def cbindgen_config(spec: SysrootSpec, src: str) -> Optional[str]:
    """The nearest cbindgen.toml at or above the source's directory (within src_dir)."""
    d = os.path.dirname(src)
    while True:
        cand = os.path.join(spec.src_dir, d, "cbindgen.toml")
        if os.path.isfile(cand):
            return cand
        if not d:
            return None
        d = os.path.dirname(d)


class Tree:
    """The output tree; refuses two different files at one path."""

    def __init__(self, root: str, package: str) -> None:
        self.root = root
        self.package = package
        self.origin: Dict[str, str] = {}

    def put(self, rel: str, src: str, origin: str, mode: int = 0o644) -> None:
        dest = os.path.join(self.root, rel)
        if rel in self.origin:
            with open(src, "rb") as a, open(dest, "rb") as b:
                if a.read() == b.read():
                    return
            raise SysrootBuildError(f"{self.package}: /{rel} comes from both {self.origin[rel]} and {origin}")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(src, dest)
        os.chmod(dest, mode)
        self.origin[rel] = origin

    def write(self, rel: str, data: bytes, origin: str) -> None:
        dest = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(data)
        os.chmod(dest, 0o644)
        self.origin[rel] = origin

    def files(self) -> List[str]:
        return sorted(self.origin)


def archive_symbols(path: str) -> List[str]:
    """Global defined symbols from an ar archive's symbol table (GNU `/` or 64-bit `/SYM64/`)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(EMPTY_ARCHIVE) or len(data) < 68:
        return []
    name = data[8:24].decode("ascii", "replace").rstrip()
    size = int(data[56:66].decode().strip() or 0)
    body = data[68 : 68 + size]
    if name == "/":
        width = 4
    elif name == "/SYM64/":
        width = 8
    else:
        return []
    (count,) = struct.unpack(">I" if width == 4 else ">Q", body[:width])
    strings = body[width + count * width :]
    return [s.decode("utf-8", "replace") for s in strings.split(b"\0")[:count]]


def archive_members(path: str) -> List[Tuple[str, bytes]]:
    """(name, data) of each member of a GNU/BSD-style ar archive (symbol and name tables skipped)."""
    with open(path, "rb") as f:
        data = f.read()
    members: List[Tuple[str, bytes]] = []
    names = b""
    pos = len(EMPTY_ARCHIVE)
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode("ascii", "replace").rstrip()
        size = int(header[48:58].decode("ascii", "replace").strip() or 0)
        body = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size & 1)
        if name in ("/", "/SYM64/"):
            continue
        if name == "//":
            names = body
            continue
        if name.startswith("/") and name[1:].isdigit() and names:
            start = int(name[1:])
            name = names[start : names.find(b"\n", start)].decode("utf-8", "replace")
        members.append((name.rstrip("/"), body))
    return members


STB_GLOBAL, STB_WEAK, STV_DEFAULT, STV_HIDDEN = 1, 2, 0, 2


def definitions(path: str) -> Tuple[Set[str], Set[str]]:
    """C-ABI symbols an archive defines: (weak hidden ones, global default ones)."""
    weak_hidden: Set[str] = set()
    strong: Set[str] = set()
    for name, body in archive_members(path):
        if body[:4] != b"\x7fELF":
            continue
        try:
            symbols = ElfFile(body, name=f"{path}({name})").symbols()
        except ElfError:
            continue
        for sym in symbols:
            if not sym.defined or not sym.name or is_rust_mangled(sym.name):
                continue
            visibility = sym.other & 3
            if sym.bind == STB_WEAK and visibility == STV_HIDDEN:
                weak_hidden.add(sym.name)
            elif sym.bind == STB_GLOBAL and visibility == STV_DEFAULT:
                strong.add(sym.name)
    return weak_hidden, strong


def unshadow_archives(spec: SysrootSpec, objcopy: Optional[str], work: str) -> List[str]:
    """The archives to merge: a copy of each one whose weak hidden definitions would hide another
    archive's global function in libc.so, with those symbols made local; the others as given."""
    defs = [definitions(a) for a in spec.archives]
    out = []
    for i, archive in enumerate(spec.archives):
        others: Set[str] = set().union(*(strong for j, (_, strong) in enumerate(defs) if j != i))
        shadowing = sorted((defs[i][0] & others) - defs[i][1])
        if not shadowing:
            out.append(archive)
            continue
        if not objcopy:
            raise SysrootBuildError(
                f"{spec.package}: {label(spec, archive)} has weak hidden copies of {', '.join(shadowing[:5])} "
                "(defined by another archive); localizing them needs the toolchain's `objcopy` (install llvm-22)"
            )
        copy = os.path.join(work, f"unshadowed-{i}.a")
        shutil.copyfile(archive, copy)
        names = os.path.join(work, f"unshadowed-{i}.syms")
        with open(names, "w") as f:
            f.writelines(f"{s}\n" for s in shadowing)
        run(spec, [objcopy, f"--localize-symbols={names}", copy], f"localizing shadowing symbols of {label(spec, archive)}")
        out.append(copy)
    return out


def is_rust_mangled(sym: str) -> bool:
    return sym.startswith("_R") or (sym.startswith("_ZN") and sym.endswith("E"))


def merge_archives(spec: SysrootSpec, ar: str, objcopy: Optional[str], work: str) -> str:
    libc = os.path.join(work, "libc.a")
    archives = unshadow_archives(spec, objcopy, work)
    # MRI: CREATE, one ADDLIB per archive, SAVE. llvm-ar's MRI output is deterministic (zero
    # dates/uids); paths are relative so nothing of the sandbox leaks in.
    script = "CREATE {}\n{}SAVE\nEND\n".format(
        os.path.relpath(libc), "".join(f"ADDLIB {os.path.relpath(a)}\n" for a in archives)
    )
    for a in archives:
        if any(c in os.path.relpath(a) for c in " ;*"):
            raise SysrootBuildError(f"{spec.package}: archive path {a!r} cannot be written in an MRI script")
    run(spec, [ar, "-M"], "merging the archives into libc.a (llvm-ar -M)", stdin=script)
    if spec.rust_symbol_prefix:
        rust = sorted({s for s in archive_symbols(libc) if is_rust_mangled(s)})
        if rust:
            if not objcopy:
                raise SysrootBuildError(
                    f"{spec.package}: libc.a defines Rust symbols to prefix with {spec.rust_symbol_prefix!r}, "
                    "but the toolchain has no `objcopy` (install llvm-22, or set rust_symbol_prefix=\"\")"
                )
            mapping = os.path.join(work, "rename.syms")
            with open(mapping, "w") as f:
                f.writelines(f"{s} {spec.rust_symbol_prefix}{s}\n" for s in rust)
            run(spec, [objcopy, f"--redefine-syms={mapping}", libc], "prefixing Rust symbols in libc.a (llvm-objcopy)")
    # Rebuild the symbol table deterministically after objcopy.
    run(spec, [ar, "sD", libc], "indexing libc.a (llvm-ar s)")
    return libc


def link_shared(spec: SysrootSpec, lld: str, libc_a: str, work: str) -> str:
    out = os.path.join(work, "libc.so")
    args = [lld, "-shared", "-o", out, "--gc-sections", "--sort-common", "-soname", spec.soname, "--build-id=none"]
    if spec.ld_so_object:
        args.append(spec.ld_so_object)
    args += ["--whole-archive", libc_a, "--no-whole-archive"]
    run(spec, args, "linking libc.so (ld.lld -shared)")
    return out


def generate_headers(spec: SysrootSpec, cbindgen: str, work: str, tree: Tree) -> None:
    common = ""
    if spec.cbindgen_common:
        with open(os.path.join(spec.src_dir, spec.cbindgen_common)) as f:
            common = f.read()
    for i, (src, header) in enumerate(sorted(spec.cbindgen.items())):
        config = cbindgen_config(spec, src)
        assert config is not None
        with open(config) as f:
            text = f.read()
        merged = os.path.join(work, f"cbindgen-{i}.toml")
        with open(merged, "w") as f:
            f.write(text + "\n" + common)
        out = os.path.join(work, f"cbindgen-{i}.h")
        run(
            spec,
            [cbindgen, "--quiet", os.path.join(spec.src_dir, src), "--config", merged, "--output", out],
            f"cbindgen on {src}",
        )
        tree.put(f"usr/include/{header}", out, f"cbindgen {src}")


def build(spec: SysrootSpec) -> List[str]:
    check_inputs(spec)
    lld = tool(spec, "lld", "to link libc.so (install lld-22)")
    ar = tool(spec, "ar", "to merge libc.a (install llvm-22)")
    objcopy = tool(spec, "objcopy", "to prefix libc's Rust symbols (install llvm-22)") if spec.tools.get("objcopy") else None
    cbindgen = tool(spec, "cbindgen", "to generate headers (install cbindgen)") if spec.cbindgen else ""
    work = spec.work_dir
    os.makedirs(work, exist_ok=True)
    tree = Tree(spec.out_dir, spec.package)

    for d in spec.headers:
        base = os.path.join(spec.src_dir, d)
        for dirpath, dirnames, names in os.walk(base):
            dirnames.sort()
            for n in sorted(names):
                src = os.path.join(dirpath, n)
                tree.put("usr/include/" + os.path.relpath(src, base), src, f"header directory {d}")
    if spec.cbindgen:
        generate_headers(spec, cbindgen, work, tree)

    libc_a = merge_archives(spec, ar, objcopy, work)
    tree.put("usr/lib/libc.a", libc_a, "the merged archives")
    libc_so = link_shared(spec, lld, libc_a, work)
    for name in ("libc.so", spec.soname, spec.interpreter):
        tree.put(f"usr/lib/{name}", libc_so, "libc.so", 0o755)
    for key in CRT_KEYS:
        tree.put(f"usr/lib/{key}.o", spec.crt_objects[key], f"crt_objects {key}")
    for alias in ("crt1.o", "Scrt1.o"):
        tree.put(f"usr/lib/{alias}", spec.crt_objects["crt0"], "crt_objects crt0")
    if spec.libm:
        tree.put("usr/lib/libm.a", spec.libm, "libm")
    else:
        tree.write("usr/lib/libm.a", EMPTY_ARCHIVE, "empty libm")
    for name in EMPTY_LIBS:
        tree.write(f"usr/lib/{name}", EMPTY_ARCHIVE, f"empty {name}")
    for name, path in sorted(spec.libraries.items()):
        tree.put(f"usr/lib/{name}", path, f"libraries {name}", 0o644 if name.endswith(".a") else 0o755)
    return tree.files()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redox_tools.sysroot_build", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="JSON build spec")
    args = parser.parse_args(argv)
    for path in build(SysrootSpec.load(args.spec)):
        print(path)
    return 0


if __name__ == "__main__":
    run_main(main)
