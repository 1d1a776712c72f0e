"""emit_object: relibc's crt0 way (`cargo rustc --lib -- --emit obj`), against a prebuilt std."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from redox_tools.builders.cargo_build_testutil import (
    FIXTURES,
    assert_one_error,
    build_std,
    crt0_spec,
    header_field,
    hello_spec,
    mount_std,
    needs_toolchain,
    readelf,
    run,
    sandbox,
    std_spec,
)

pytestmark = needs_toolchain


# --- emit_object: relibc's crt0 way (`cargo rustc --lib -- --emit obj`) -----------------------


def test_emit_object_is_relocatable_with_start(tmp_path: Path) -> None:
    crate = tmp_path / "packages" / "fixtures" / "crt0-rust"
    shutil.copytree(FIXTURES / "crt0-rust", crate, ignore=shutil.ignore_patterns("target"))
    # crt0's std: its manifest's profile, no rustflags (position-independent).
    std = build_std(tmp_path / "std", std_spec(rustflags=[]))
    code, out, err = run(tmp_path, crt0_spec(std_sysroot=mount_std(tmp_path, std)))
    assert code == 0, err
    assert out.split() == ["usr/lib/crt0.o"]
    obj = tmp_path / "__staged" / "usr" / "lib" / "crt0.o"
    assert header_field(readelf("-h", str(obj)), "Type").startswith("REL")
    symbols = readelf("-sW", str(obj))
    assert re.search(r"FUNC\s+GLOBAL\s+DEFAULT\s+\d+\s+_start$", symbols, re.M), symbols
    # crt0 calls these; they stay undefined until the program is linked.
    for name in ("_init", "main", "exit"):
        assert re.search(rf"NOTYPE\s+GLOBAL\s+DEFAULT\s+UND\s+{name}$", symbols, re.M), name
    assert str(tmp_path) not in obj.read_bytes().decode("latin-1")
    # A name that is not `<crate>.o` is refused before the (long) build.
    bad = crt0_spec(install={"libcrt0.a": "/usr/lib/libcrt0.a"}, std_sysroot="__std_sysroot")
    code, _out, err = run(tmp_path, bad, "bad.json")
    assert_one_error(code, err, "`install` names `libcrt0.a`", "crt0.o", package="packages/fixtures/crt0-rust:crt0-rust")


def test_emit_object_needs_a_lib(tmp_path: Path) -> None:
    sandbox(tmp_path)
    code, _out, err = run(tmp_path, hello_spec(emit_object=True, install={"redox_hello.o": "/x.o"}))
    assert_one_error(code, err, "`emit_object` emits a package's lib", "redox-hello has no [lib] target")
