"""The make driver with real make, clang-22, ld.lld-22 and llvm-ar-22 on a tiny upstream-shaped
Makefile (no cargo run): cross tools reach make and cc-rs variables, symlinks stay symlinks, and
bad builds fail with one line naming the package."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from redox_tools.builders import cross_env
from redox_tools.builders.make_build import MakeBuildError, MakeSpec, build

TOOLS = {
    "cargo": "/usr/bin/cargo",
    "rustc": "/usr/bin/rustc",
    "clang": "/usr/bin/clang-22",
    "lld": "/usr/bin/ld.lld-22",
    "ar": "/usr/bin/llvm-ar-22",
    "objcopy": "/usr/bin/llvm-objcopy-22",
}
pytestmark = pytest.mark.skipif(
    not all(os.path.isfile(p) for p in TOOLS.values()) or not shutil.which("make"),
    reason="needs make, cargo, rustc, clang-22, lld-22, llvm-22",
)

MAKEFILE = """\
GIT ?= git
PREFIX ?= /usr
all: libx.a libx.so
sync:
\t$(GIT) submodule update --init
libx.a: x.c | sync
\t$(CC) -fPIC -c x.c -o x.o
\t$(AR) rcs $@ x.o
libx.so: libx.a
\t$(CC) -nostdlib -shared -Wl,--whole-archive libx.a -Wl,--no-whole-archive -Wl,-soname,libx.so.1 -o $@
install:
\tmkdir -p $(DESTDIR)$(PREFIX)/lib
\tcp libx.a libx.so $(DESTDIR)$(PREFIX)/lib/
\tln -sf libx.so $(DESTDIR)$(PREFIX)/lib/libx.so.1
\tenv > $(DESTDIR)$(PREFIX)/lib/env.txt
"""


def run_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, makefile: str = MAKEFILE, **kw) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "Makefile").write_text(makefile)
    (src / "x.c").write_text("int x(void) { return 42; }\n")
    spec = dict(package="//t:x", src_dir="src", toolchain={"tools": TOOLS},
                make=["all", "install DESTDIR={stage}/usr PREFIX="], make_variables={"GIT": "true"}, out_dir="out")
    spec.update(kw)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)
    build(MakeSpec.load(str(tmp_path / "spec.json")))
    return tmp_path / "out"


def test_upstream_makefile_builds_with_the_cross_tools_and_keeps_symlinks(tmp_path, monkeypatch) -> None:
    out = run_build(tmp_path, monkeypatch)
    lib = out / "usr" / "lib"
    assert os.readlink(lib / "libx.so.1") == "libx.so"
    assert (lib / "libx.so").is_file() and not (lib / "libx.so").is_symlink()
    comment = subprocess.run(["/usr/bin/llvm-readelf-22", "-p", ".comment", str(lib / "libx.a")],
                             capture_output=True, text=True).stdout
    assert "clang" in comment and "GCC" not in comment
    dynamic = subprocess.run(["/usr/bin/llvm-readelf-22", "-d", str(lib / "libx.so")], capture_output=True, text=True).stdout
    assert "libx.so.1" in dynamic
    env = dict(line.split("=", 1) for line in (lib / "env.txt").read_text().splitlines() if "=" in line)
    assert env["TARGET"] == "x86_64-unknown-redox"
    assert env["CC_x86_64_unknown_redox"].endswith("x86_64-unknown-redox-clang")
    assert env["AR_x86_64_unknown_redox"].endswith("x86_64-unknown-redox-ar")
    assert env["RUSTC_BOOTSTRAP"] == "1"
    assert env["CARGO_TARGET_X86_64_UNKNOWN_REDOX_LINKER"] == TOOLS["lld"]
    assert "replace-with" in (tmp_path / "__make" / "home" / "config.toml").read_text()
    assert oct((lib / "libx.a").stat().st_mode & 0o777) == "0o644"


def test_git_lines_fail_without_the_make_variable(tmp_path, monkeypatch) -> None:
    with pytest.raises(MakeBuildError, match=r"^//t:x: `make all` failed"):
        run_build(tmp_path, monkeypatch, make_variables={"GIT": "/nonexistent/git"})


def test_symlink_out_of_the_tree_is_refused(tmp_path, monkeypatch) -> None:
    bad = MAKEFILE.replace("ln -sf libx.so $(DESTDIR)", "ln -sf /usr/lib/libx.so $(DESTDIR)")
    with pytest.raises(MakeBuildError, match="points outside the installed tree"):
        run_build(tmp_path, monkeypatch, makefile=bad)
    assert not (tmp_path / "out").exists()


def test_empty_install_is_refused(tmp_path, monkeypatch) -> None:
    with pytest.raises(MakeBuildError, match="installed nothing"):
        run_build(tmp_path, monkeypatch, make=["all"])


def test_host_headers_never_reach_the_target_compiler(tmp_path) -> None:
    wrappers = cross_env.write_wrappers(str(tmp_path / "bin"), "x86_64-unknown-redox", TOOLS, None, str(tmp_path / "e"))
    proc = subprocess.run([wrappers["clang"], "-E", "-"], input="#include <stdio.h>\n", capture_output=True, text=True)
    assert proc.returncode != 0 and "stdio.h" in proc.stderr
    assert set(cross_env.tool_env("x86_64-unknown-redox", wrappers)) >= {"CC", "AR", "LD", "NM", "OBJCOPY", "RANLIB",
                                                                         "CC_x86_64-unknown-redox"}
