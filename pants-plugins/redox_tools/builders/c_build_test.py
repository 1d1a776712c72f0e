"""The C build driver with the real clang-22 / llvm-ar-22 (each compile takes well under a second)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import pytest

from redox_tools.builders.c_build import CBuildError, CSpec, build, compile_flags

PLUGINS = Path(__file__).resolve().parents[2]
HELLO_C = PLUGINS.parent / "packages" / "fixtures" / "c-object" / "hello.c"
CLANG = "/usr/bin/clang-22"
AR = "/usr/bin/llvm-ar-22"
READELF = "/usr/bin/llvm-readelf-22"
pytestmark = pytest.mark.skipif(
    not all(os.path.exists(p) for p in (CLANG, AR, READELF)), reason="clang-22 / llvm-22 not installed"
)
PKG = "packages/fixtures/c-object:c-object"


def sandbox(root: Path, extra: Dict[str, str] = {}) -> None:  # noqa: B006 (read only)
    d = root / "packages" / "fixtures" / "c-object"
    d.mkdir(parents=True)
    shutil.copyfile(HELLO_C, d / "hello.c")
    for name, text in extra.items():
        (d / name).write_text(text)


def spec(**kw: object) -> CSpec:
    """The spec `redox_c_package` writes for packages/fixtures/c-object/BUILD (sources relative)."""
    base: Dict[str, object] = dict(
        package=PKG,
        name="c-object",
        sources=["packages/fixtures/c-object/hello.c"],
        clang=CLANG,
        ar=AR,
        triple="x86_64-unknown-redox",
        cflags=[],
        output_kind="object",
        install={"hello.o": "/usr/lib/redox-pants/hello.o"},
        out_dir="__staged",
    )
    base.update(kw)
    return CSpec(**base)  # type: ignore[arg-type]


def build_in(root: Path, s: CSpec, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(root)
    return build(s)


def readelf(*args: str) -> str:
    return subprocess.run([READELF, *args], check=True, stdout=subprocess.PIPE, text=True).stdout


def run_cli(root: Path, data: Dict[str, object]) -> Tuple[int, str, str]:
    (root / "spec.json").write_text(json.dumps(data))
    p = subprocess.run(
        [sys.executable, "-m", "redox_tools.builders.c_build", "spec.json"],
        cwd=root, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PLUGINS)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    return p.returncode, p.stdout, p.stderr


def one_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_object_is_elf64_rel_with_symbols(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox(tmp_path)
    assert build_in(tmp_path, spec(), monkeypatch) == ["usr/lib/redox-pants/hello.o"]
    obj = tmp_path / "__staged" / "usr" / "lib" / "redox-pants" / "hello.o"
    assert (obj.stat().st_mode & 0o777) == 0o644
    hdr = readelf("-hW", str(obj))
    assert re.search(r"Class:\s+ELF64", hdr) and re.search(r"Type:\s+REL ", hdr)
    assert re.search(r"Machine:\s+Advanced Micro Devices X86-64", hdr)
    syms = {ln.split()[7]: ln.split()[3] for ln in readelf("-sW", str(obj)).splitlines() if len(ln.split()) >= 8}
    assert syms.get("redox_c_hello") == "FUNC"
    assert syms.get("redox_c_hello_marker") == "OBJECT"
    # the sandbox path does not leak into the object
    assert str(tmp_path).encode() not in obj.read_bytes()


def test_object_reproducible_across_sandboxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digests = []
    for sub in ("a", "bb-longer"):
        root = tmp_path / sub
        sandbox(root)
        build_in(root, spec(cflags=["-g"]), monkeypatch)  # even with debug info
        digests.append(hashlib.sha256((root / "__staged/usr/lib/redox-pants/hello.o").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_static_lib_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"second.c": "int redox_c_second(void) { return 2; }\n"}
    s = spec(
        output_kind="static_lib",
        sources=["packages/fixtures/c-object/hello.c", "packages/fixtures/c-object/second.c",
                 "packages/fixtures/c-object/README.md"],
        install={"libc-object.a": "/usr/lib/libc-object.a"},
    )
    libs = []
    for sub in ("a", "b"):
        root = tmp_path / sub
        sandbox(root, extra)
        os.utime(root / "packages/fixtures/c-object/hello.c", (1234567, 1234567 + (sub == "b") * 999))
        assert build_in(root, s, monkeypatch) == ["usr/lib/libc-object.a"]
        libs.append((root / "__staged/usr/lib/libc-object.a").read_bytes())
    assert libs[0] == libs[1] and libs[0].startswith(b"!<arch>\n")
    members = subprocess.run([AR, "tv", str(tmp_path / "a/__staged/usr/lib/libc-object.a")], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
    assert [ln.split()[-1] for ln in members.splitlines()] == ["hello.o", "second.o"]
    assert all(" 0/0 " in ln and "1970" in ln for ln in members.splitlines()), members  # uid/gid 0, time 0


def test_missing_output_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox(tmp_path)
    with pytest.raises(CBuildError) as e:
        build_in(tmp_path, spec(install={"helo.o": "/usr/lib/helo.o"}), monkeypatch)
    assert str(e.value) == f"{PKG}: `install` names `helo.o`, but the build produced hello.o"
    assert not (tmp_path / "__staged").exists() and not (tmp_path / "__cbuild").exists()  # nothing compiled


def test_missing_output_name_static_lib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox(tmp_path)
    with pytest.raises(CBuildError, match=r"`install` names `hello.o`, but the build produced libc-object.a"):
        build_in(tmp_path, spec(output_kind="static_lib"), monkeypatch)


def test_no_c_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox(tmp_path)
    with pytest.raises(CBuildError, match=rf"^{re.escape(PKG)}: no C sources \(\.c/\.S/\.s\) among `sources`$"):
        build_in(tmp_path, spec(sources=["packages/fixtures/c-object/hello.h", "x/BUILD"]), monkeypatch)


def test_compile_error_names_the_source_cli(tmp_path: Path) -> None:
    sandbox(tmp_path, {"broken.c": "int f(void) { return undefined_thing; }\n"})
    data = dict(spec().__dict__, sources=["packages/fixtures/c-object/broken.c"], install={"broken.o": "/x/broken.o"})
    code, out, err = run_cli(tmp_path, data)
    assert code == 2 and out == ""
    line = one_error(err)
    assert line == f"error: {PKG}: compiling packages/fixtures/c-object/broken.c failed:"
    assert "  | packages/fixtures/c-object/broken.c:1:" in err and "undefined_thing" in err
    assert not (tmp_path / "__staged").exists()


def test_host_headers_never_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox(tmp_path, {"uses_stdio.c": "#include <stdio.h>\nint x;\n"})
    with pytest.raises(CBuildError, match=r"compiling .*uses_stdio.c failed:\n  \| .*stdio.h' file not found"):
        build_in(tmp_path, spec(sources=["packages/fixtures/c-object/uses_stdio.c"], install={}), monkeypatch)


def test_missing_clang_or_ar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox(tmp_path)
    with pytest.raises(CBuildError, match=r"the toolchain's `clang` \(/nope/clang\) does not exist"):
        build_in(tmp_path, spec(clang="/nope/clang"), monkeypatch)
    with pytest.raises(CBuildError, match=r"the toolchain has no `ar`"):
        build_in(tmp_path, spec(ar=None, output_kind="static_lib"), monkeypatch)
    build_in(tmp_path, spec(ar="/nope/ar"), monkeypatch)  # ar is not needed for objects


def test_bad_output_kind_and_install_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox(tmp_path)
    with pytest.raises(CBuildError, match=r"unknown output_kind 'shared_lib'"):
        build_in(tmp_path, spec(output_kind="shared_lib"), monkeypatch)
    with pytest.raises(CBuildError, match=r"install path '/usr/\.\./\.\./x' for `hello.o` is not a plain path"):
        build_in(tmp_path, spec(install={"hello.o": "/usr/../../x"}), monkeypatch)
    assert not (tmp_path / "__staged").exists()


def test_compile_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    f = compile_flags(spec(cflags=["-DX=1"], sysroot_include="sysroot/include"), "/res/include")
    assert f[:5] == ["--target=x86_64-unknown-redox", "-ffreestanding", "-nostdinc", "-isystem", "/res/include"]
    assert f[5:7] == ["-isystem", "sysroot/include"]
    assert "-D__redox__" in f and "-D__unix__" in f
    assert f"-ffile-prefix-map={tmp_path}=/redox-pants" in f
    assert f[-1] == "-DX=1"
    assert "-D__redox__" not in compile_flags(spec(triple="x86_64-unknown-linux-gnu"), "/r")


# --- C from a source checkout: source_files globs (with `!` drops) and include_dirs -------------


def checkout(root: Path) -> None:
    """An openlibm-shaped checkout under __upstream: relibc's include/ beside openlibm/."""
    files = {
        "include/sys_defs.h": "#define RELIBC_ONE 1\n",
        "openlibm/include/openlibm_math.h": "double sqrt(double);\n",
        "openlibm/src/e_sqrt.c": '#include <openlibm_math.h>\n#include "sys_defs.h"\n'
        "double sqrt(double x) { return x * RELIBC_ONE; }\n",
        "openlibm/src/s_fabs.c": "double fabs(double x) { return x < 0 ? -x : x; }\n",
        "openlibm/amd64/e_sqrt.S": ".globl sqrt\n.type sqrt,@function\nsqrt:\n sqrtsd %xmm0, %xmm0\n ret\n",
        "openlibm/README": "not C\n",
    }
    for name, text in files.items():
        p = root / "__upstream" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def source_spec(**kw: object) -> CSpec:
    base: Dict[str, object] = dict(
        package="packages/relibc:openlibm",
        name="openlibm",
        sources=[],
        output_kind="static_lib",
        source_root="__upstream",
        source_dir="__upstream/openlibm",
        source_files=["src/*.c", "amd64/*.S", "!src/e_sqrt.c"],
        include_dirs=["include", "../include"],
        install={"libopenlibm.a": "/usr/lib/libopenlibm.a"},
    )
    base.update(kw)
    return spec(**base)


def test_source_files_with_drops_and_include_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout(tmp_path)
    assert build_in(tmp_path, source_spec(), monkeypatch) == ["usr/lib/libopenlibm.a"]
    members = subprocess.run([AR, "t", str(tmp_path / "__staged/usr/lib/libopenlibm.a")], check=True,
                             stdout=subprocess.PIPE, text=True).stdout.split()
    assert members == ["e_sqrt.o", "s_fabs.o"]  # e_sqrt.o from amd64/e_sqrt.S


def test_source_files_collision_and_bad_patterns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout(tmp_path)
    cases: Dict[str, Dict[str, object]] = {
        "two sources compile to e_sqrt.o": dict(source_files=["src/*.c", "amd64/*.S"]),
        "pattern 'ld80/*.c' matches no .c/.S/.s file": dict(source_files=["src/*.c", "ld80/*.c"]),
        "must be relative to `source_subdir`, without '..'": dict(source_files=["../include/*.h"]),
        "with `source`, `source_files` must name the files": dict(source_files=[]),
        "include_dirs entry '../../etc' leaves the checkout": dict(include_dirs=["../../etc"]),
        "include_dirs entry 'nope' is not a directory": dict(include_dirs=["nope"]),
        "`source_files` selects files of a `source` checkout": dict(source_dir=None, source_root=None),
    }
    for needle, kw in cases.items():
        with pytest.raises(CBuildError) as e:
            build_in(tmp_path, source_spec(**kw), monkeypatch)
        assert needle in str(e.value), (needle, str(e.value))


LLD = "/usr/bin/ld.lld-22"


def tiny_sysroot(root: Path) -> Path:
    """crt objects, libc.a and a libc.so (soname libc.so.6) providing `puts`, as a redox_sysroot lays them out."""
    lib = root / "sysroot" / "usr" / "lib"
    lib.mkdir(parents=True)
    parts = {
        "crt0.S": ".text\n.globl _start\n_start: call main\n hlt\n",
        "crti.S": '.section .init,"ax",@progbits\n.globl _init\n_init: push %rbp\n',
        "crtn.S": '.section .init,"ax",@progbits\n pop %rbp\n ret\n',
        "puts.c": "int puts(const char *s) { return s != 0; }\n",
    }
    for name, text in parts.items():
        (lib / name).write_text(text)
        subprocess.run([CLANG, "--target=x86_64-unknown-redox", "-fPIC", "-c", name], cwd=lib, check=True)
    subprocess.run([AR, "rcsD", "libc.a", "puts.o"], cwd=lib, check=True)
    subprocess.run([LLD, "-shared", "-soname", "libc.so.6", "-o", "libc.so", "puts.o"], cwd=lib, check=True)
    return root / "sysroot"


MAIN_C = "int puts(const char *s);\nint main(void) { return puts(\"hi\"); }\n"


@pytest.mark.skipif(not os.path.exists(LLD), reason="lld-22 not installed")
def test_dynamic_executable_has_interp_and_needs_libc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox(tmp_path, {"main.c": MAIN_C})
    tiny_sysroot(tmp_path)
    s = spec(
        sources=["packages/fixtures/c-object/main.c"], name="prog", output_kind="executable", lld=LLD,
        sysroot="sysroot", linkage="dynamic", interpreter="/usr/lib/ld64.so.1", install={"prog": "/usr/bin/prog"},
    )
    build_in(tmp_path, s, monkeypatch)
    out = tmp_path / "__staged/usr/bin/prog"
    info = readelf("-h", "-l", "-d", str(out))
    assert "INTERP" in info and "[Requesting program interpreter: /usr/lib/ld64.so.1]" in info
    assert "Shared library: [libc.so.6]" in info
    # The same program, static: no interpreter, libc.a linked in.
    shutil.rmtree(tmp_path / "__staged")
    build_in(tmp_path, dataclasses.replace(s, linkage="static"), monkeypatch)
    info = readelf("-h", "-l", "-d", str(out))
    assert "EXEC (Executable file)" in info and "INTERP" not in info and "NEEDED" not in info


def test_bad_linkage_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox(tmp_path)
    with pytest.raises(CBuildError, match=r"unknown linkage 'shared'"):
        build_in(tmp_path, spec(linkage="shared"), monkeypatch)
    with pytest.raises(CBuildError, match=r"linkage `dynamic` applies to programs .* not to output_kind `object`"):
        build_in(tmp_path, spec(linkage="dynamic", interpreter="/usr/lib/ld64.so.1"), monkeypatch)
    with pytest.raises(CBuildError, match=r"linkage `dynamic` needs the sysroot's dynamic loader path"):
        build_in(tmp_path, spec(linkage="dynamic", output_kind="executable", sysroot="s"), monkeypatch)
