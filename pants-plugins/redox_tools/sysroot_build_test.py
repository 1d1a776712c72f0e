"""redox_tools.sysroot_build with real clang/ld.lld/llvm-ar/cbindgen on tiny inputs."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from redox_tools.sysroot_build import SysrootBuildError, SysrootSpec, archive_symbols, build

CLANG, LLD, AR, OBJCOPY, READELF = (
    "/usr/bin/clang-22",
    "/usr/bin/ld.lld-22",
    "/usr/bin/llvm-ar-22",
    "/usr/bin/llvm-objcopy-22",
    "/usr/bin/llvm-readelf-22",
)
CBINDGEN = shutil.which("cbindgen", path="/usr/bin")
TOOLS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    not all(os.path.isfile(t) for t in (CLANG, LLD, AR, OBJCOPY, READELF)) or not CBINDGEN,
    reason="needs clang-22, lld-22, llvm-22 and cbindgen",
)

SOURCES = {
    # The "Rust" archive: a C-ABI function plus a symbol with Rust (v0) mangling, like core's,
    # and compiler_builtins' weak hidden copy of a libm function (the C archive's fabs must win).
    "rust.S": """
        .text
        .weak fabs
        .hidden fabs
        .type fabs,@function
fabs:   ret
        .globl write
        .type write,@function
write:  mov $42, %eax
        call _RNvCs123_4core9rust_fake
        ret
        .globl _RNvCs123_4core9rust_fake
        .type _RNvCs123_4core9rust_fake,@function
_RNvCs123_4core9rust_fake:
        ret
""",
    "stdio.c": "long write(int, const void *, unsigned long);\nint puts(const char *s) { return (int)write(1, s, 1); }\n",
    "fabs.c": "double fabs(double x) { return x < 0 ? -x : x; }\n",
    "crt0.S": ".text\n.globl _start\n_start: call main\n call puts\n hlt\n",
    "crti.S": '.section .init,"ax",@progbits\n.globl _init\n_init: push %rbp\n',
    "crtn.S": '.section .init,"ax",@progbits\n pop %rbp\n ret\n',
    "ld_so.c": "int _dl_marker(void) { return 7; }\n",
}


def compile_inputs(root: Path) -> None:
    obj = root / "obj"
    obj.mkdir()
    for name, text in SOURCES.items():
        (obj / name).write_text(text)
        subprocess.run(
            [CLANG, "--target=x86_64-unknown-redox", "-fPIC", "-c", name, "-o", name.rsplit(".", 1)[0] + ".o"],
            cwd=obj, check=True,
        )
    for lib, member in (("librelibc.a", "rust.o"), ("libcpart.a", "stdio.o"), ("libm.a", "fabs.o")):
        subprocess.run([AR, "rcsD", lib, member], cwd=obj, check=True)
    (root / "src/include/sys").mkdir(parents=True)
    (root / "src/include/stdio.h").write_text("int puts(const char *s);\n")
    (root / "src/include/sys/types.h").write_text("typedef long ssize_t;\n")
    (root / "src/rust/src").mkdir(parents=True)
    (root / "src/rust/src/lib.rs").write_text(
        '#[no_mangle]\npub extern "C" fn write(fd: i32, buf: *const u8, n: usize) -> isize { 0 }\n'
    )
    (root / "src/rust/cbindgen.toml").write_text('language = "C"\ninclude_guard = "_UNISTD_H"\nno_includes = true\n')


def spec_data(**overrides) -> Dict:
    data: Dict = {
        "package": "packages/x:sysroot",
        "tools": {"lld": LLD, "ar": AR, "objcopy": OBJCOPY, "cbindgen": CBINDGEN},
        "archives": ["obj/librelibc.a", "obj/libcpart.a", "obj/libm.a"],
        "crt_objects": {"crt0": "obj/crt0.o", "crti": "obj/crti.o", "crtn": "obj/crtn.o"},
        "ld_so_object": "obj/ld_so.o",
        "libm": "obj/libm.a",
        "src_dir": "src",
        "headers": ["include"],
        "cbindgen": {"rust/src/lib.rs": "unistd.h"},
        "labels": {"obj/libcpart.a": "//packages/x:c=usr/lib/libcpart.a"},
    }
    data.update(overrides)
    return data


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    compile_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def readelf(path: Path, *flags: str) -> str:
    return subprocess.run([READELF, *flags, str(path)], check=True, capture_output=True, text=True).stdout


def test_builds_the_relibc_layout(inputs: Path) -> None:
    files = build(SysrootSpec(**spec_data()))
    lib = inputs / "__staged/usr/lib"
    assert files == sorted(
        ["usr/include/stdio.h", "usr/include/sys/types.h", "usr/include/unistd.h"]
        + [f"usr/lib/{n}" for n in ("Scrt1.o", "crt0.o", "crt1.o", "crti.o", "crtn.o", "ld64.so.1", "libc.a",
                                    "libc.so", "libc.so.6", "libdl.a", "libm.a", "libpthread.a", "librt.a")]
    )
    members = subprocess.run([AR, "t", str(lib / "libc.a")], check=True, capture_output=True, text=True).stdout.split()
    assert members == ["rust.o", "stdio.o", "fabs.o"]
    symbols = archive_symbols(str(lib / "libc.a"))
    # Rust-mangled symbols get relibc's prefix; the C ABI keeps its names.
    assert "__relibc__RNvCs123_4core9rust_fake" in symbols and "_RNvCs123_4core9rust_fake" not in symbols
    assert {"write", "puts", "fabs"} <= set(symbols)
    dyn = readelf(lib / "libc.so", "-h", "-d", "--dyn-syms")
    assert "DYN (Shared object file)" in dyn and "Library soname: [libc.so.6]" in dyn
    assert "_dl_marker" in dyn and "puts" in dyn
    assert " fabs" in dyn  # the C archive's, not hidden by the "Rust" archive's weak hidden copy
    for copy in ("libc.so.6", "ld64.so.1"):
        assert (lib / copy).read_bytes() == (lib / "libc.so").read_bytes()
    assert (lib / "crt1.o").read_bytes() == (lib / "Scrt1.o").read_bytes() == (inputs / "obj/crt0.o").read_bytes()
    for empty in ("libdl.a", "libpthread.a", "librt.a"):
        assert (lib / empty).read_bytes() == b"!<arch>\n"
    header = (inputs / "__staged/usr/include/unistd.h").read_text()
    assert "intptr_t write(int32_t fd, const uint8_t *buf, uintptr_t n);" in header
    assert "_UNISTD_H" in header


def test_libraries_are_installed_beside_libc(inputs: Path) -> None:
    # libgcc's unwinder archive, which upstream's prefix sysroot has from the libgcc package.
    files = build(SysrootSpec(**spec_data(libraries={"libgcc_eh.a": "obj/libm.a"})))
    assert "usr/lib/libgcc_eh.a" in files
    staged = inputs / "__staged/usr/lib/libgcc_eh.a"
    assert staged.read_bytes() == (inputs / "obj/libm.a").read_bytes()
    assert staged.stat().st_mode & 0o777 == 0o644


def test_outputs_are_deterministic(inputs: Path) -> None:
    def digest() -> str:
        h = hashlib.sha256()
        for rel in build(SysrootSpec(**spec_data())):
            h.update(rel.encode() + (inputs / "__staged" / rel).read_bytes())
        return h.hexdigest()

    first = digest()
    shutil.rmtree(inputs / "__staged")
    shutil.rmtree(inputs / "__sysroot_build")
    assert digest() == first


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            {"crt_objects": {"crti": "obj/crti.o", "crtn": "obj/crtn.o"}},
            "packages/x:sysroot: `crt_objects` has no crt0",
        ),
        (
            {"archives": ["obj/librelibc.a", "obj/missing.a"]},
            "packages/x:sysroot: `archives` entry obj/missing.a does not exist",
        ),
        ({"archives": ["obj/librelibc.a", "obj/stdio.o"]}, "obj/stdio.o is not an ar archive"),
        ({"archives": []}, "`archives` is empty"),
        ({"headers": ["nope"]}, "header directory 'nope' does not exist"),
        ({"cbindgen": {"rust/src/none.rs": "x.h"}}, "cbindgen source 'rust/src/none.rs' does not exist"),
        ({"libraries": {"libc.a": "obj/libm.a"}}, "`libraries` key 'libc.a' is a file the sysroot makes itself"),
        ({"libraries": {"sub/libx.a": "obj/libm.a"}}, "`libraries` key 'sub/libx.a' must be a file name"),
        ({"libraries": {"libgcc_eh.a": "obj/fabs.o"}}, "`libraries` libgcc_eh.a (obj/fabs.o) is not an ar archive"),
        ({"libraries": {"libgcc_eh.a": "obj/nope.a"}}, "`libraries` libgcc_eh.a (obj/nope.a) does not exist"),
    ],
)
def test_bad_input_is_one_clear_error(inputs: Path, overrides: Dict, expected: str) -> None:
    with pytest.raises(SysrootBuildError) as excinfo:
        build(SysrootSpec(**spec_data(**overrides)))
    assert expected in str(excinfo.value)
    assert not (inputs / "__staged/usr/lib/libc.a").exists()


def test_cli_reports_one_error_line(inputs: Path) -> None:
    (inputs / "spec.json").write_text(json.dumps(spec_data(crt_objects={})))
    env = {**os.environ, "PYTHONPATH": TOOLS_DIR}
    proc = subprocess.run(
        [sys.executable, "-m", "redox_tools.sysroot_build", "spec.json"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: packages/x:sysroot: `crt_objects` has no crt0, crti, crtn")
    assert len(proc.stderr.strip().splitlines()) == 1
