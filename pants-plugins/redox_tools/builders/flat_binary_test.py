"""The flat binary driver with the real ld.lld-22 / llvm-objcopy-22 / nasm, on the bios-shaped
fixture's linker script and nasm wrapper. Stage 3 here is a nasm-made i386 object in a static
library (the Rust staticlib is built by the plugin's integration test)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import pytest

from redox_tools.builders.flat_binary import FlatBinaryError, FlatBinarySpec, build

PLUGINS = Path(__file__).resolve().parents[2]
FIXTURE = PLUGINS.parent / "packages" / "fixtures" / "bios-shaped"
LLD = "/usr/bin/ld.lld-22"
OBJCOPY = "/usr/bin/llvm-objcopy-22"
AR = "/usr/bin/llvm-ar-22"
READELF = "/usr/bin/llvm-readelf-22"
NASM = "/usr/bin/nasm"
pytestmark = pytest.mark.skipif(
    not all(os.path.exists(p) for p in (LLD, OBJCOPY, AR, READELF, NASM)), reason="lld-22 / llvm-22 / nasm not installed"
)
PKG = "packages/fixtures/bios-shaped:bios-shaped"
SRC = "packages/fixtures/bios-shaped"
STAGE3_ASM = """
BITS 32
SECTION .text.kstart
GLOBAL kstart
kstart:
    mov eax, 0x33475453
    hlt
    jmp kstart
"""


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(FIXTURE, tmp_path / SRC)
    (tmp_path / "stage3.asm").write_text(STAGE3_ASM)
    subprocess.run([NASM, "-f", "elf32", "-o", str(tmp_path / "stage3.o"), str(tmp_path / "stage3.asm")], check=True)
    (tmp_path / "__inputs").mkdir()
    subprocess.run([AR, "rcsD", str(tmp_path / "__inputs" / "libstage3.a"), str(tmp_path / "stage3.o")], check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def spec(**kw: object) -> FlatBinarySpec:
    base: Dict[str, object] = dict(
        package=PKG,
        name="bios-shaped",
        input="__inputs/libstage3.a",
        input_label=":stage3=usr/lib/libstage3.a",
        src_dir=SRC,
        nasm_source="asm/bootloader.asm",
        nasm=NASM,
        lld=LLD,
        objcopy=OBJCOPY,
        linker_script="linker.ld",
        link_args=["-m", "elf_i386", "--gc-sections", "-z", "max-page-size=0x1000"],
        split_debug=True,
        nasm_include_dirs=["asm/include"],
        install={"image": "/usr/lib/boot/bios-shaped.bios", "elf": "/usr/lib/boot/bios-shaped.elf", "sym": "/usr/lib/boot/bios-shaped.sym"},
    )
    base.update(kw)
    return FlatBinarySpec(**base)  # type: ignore[arg-type]


def readelf_header(path: Path) -> str:
    return subprocess.run([READELF, "-h", str(path)], check=True, capture_output=True, text=True).stdout


def test_flat_binary_is_stage_then_elf(sandbox: Path) -> None:
    installed = build(spec())
    assert installed == ["usr/lib/boot/bios-shaped.elf", "usr/lib/boot/bios-shaped.bios", "usr/lib/boot/bios-shaped.sym"]
    out = sandbox / "__staged" / "usr" / "lib" / "boot"
    image = (out / "bios-shaped.bios").read_bytes()
    elf = (out / "bios-shaped.elf").read_bytes()
    # The 512-byte stage first (its marker and the boot signature), then the ELF, padded to 512.
    assert image[2:10] == b"BIOSSHAP" and image[510:512] == b"\x55\xaa"
    assert image[512 : 512 + len(elf)] == elf
    assert len(image) % 512 == 0 and len(image) - 512 - len(elf) < 512
    header = readelf_header(out / "bios-shaped.elf")
    assert re.search(r"Class:\s+ELF32", header) and re.search(r"Machine:\s+Intel 80386", header)
    assert re.search(r"Entry point address:\s+0x103000\b", header)  # STAGE3_BASE of linker.ld
    assert re.search(r"Machine:\s+Intel 80386", readelf_header(out / "bios-shaped.sym"))


def test_executable_input_is_wrapped_as_is(sandbox: Path) -> None:
    build(spec(install={"elf": "/stage3.elf"}, split_debug=False))
    shutil.move("__staged/stage3.elf", "__inputs/stage3.elf")
    shutil.rmtree("__flat")
    build(spec(input="__inputs/stage3.elf", linker_script=None, split_debug=False, install={"image": "/x.bios"}))
    assert (sandbox / "__staged" / "x.bios").read_bytes()[512:].startswith((sandbox / "__inputs" / "stage3.elf").read_bytes())


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(nasm_source="asm/missing.asm"), "nasm_source 'asm/missing.asm' is not a file in packages/fixtures/bios-shaped"),
        (dict(input="__inputs/nothing.a"), "the input :stage3=usr/lib/libstage3.a is missing"),
        (dict(linker_script=None), "is a static library; set `linker_script` to link it"),
        (dict(nasm_include_dirs=["../elsewhere"]), "without '..'"),
        (dict(install={"bin": "/x"}), "`install` names bin; the outputs are image, elf, sym"),
        (dict(split_debug=False), "`install` names `sym`, which only split_debug=True produces"),
        (dict(nasm=None), "the toolchain has no `nasm`"),
    ],
)
def test_bad_input_is_one_error_naming_the_package(sandbox: Path, kw: Dict[str, object], message: str) -> None:
    with pytest.raises(FlatBinaryError) as e:
        build(spec(**kw))
    assert str(e.value).startswith(PKG + ": ") and message in str(e.value)
    assert not (sandbox / "__staged").exists()


def test_nasm_failure_quotes_its_output(sandbox: Path) -> None:
    (sandbox / SRC / "asm" / "bad.asm").write_text("this is not an instruction\n")
    with pytest.raises(FlatBinaryError, match=r"nasm asm/bad.asm failed:\n  \| .*bad.asm:1"):
        build(spec(nasm_source="asm/bad.asm"))


def test_command_line(sandbox: Path) -> None:
    import json
    import sys

    Path("spec.json").write_text(json.dumps({**spec().__dict__, "nasm_source": "asm/missing.asm"}))
    env = {**os.environ, "PYTHONPATH": str(PLUGINS)}
    proc = subprocess.run([sys.executable, "-m", "redox_tools.builders.flat_binary", "spec.json"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {PKG}: nasm_source 'asm/missing.asm' is not a file in {SRC} (looked for {SRC}/asm/missing.asm)"
    ]
