"""ElfFile against real binaries built here, checked value by value against llvm-readelf."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from redox_tools.formats.elf import ET_EXEC, ET_REL, EM_X86_64, PT_LOAD, ElfFile, read_elf

READELF = shutil.which("llvm-readelf-22") or shutil.which("llvm-readelf")
CLANG = shutil.which("clang-22")
RUSTC = "/usr/bin/rustc" if os.path.exists("/usr/bin/rustc") else None
LLD = shutil.which("ld.lld-22") or shutil.which("ld.lld")

needs_readelf = pytest.mark.skipif(READELF is None, reason="llvm-readelf not installed")

C_SOURCE = """
int counter = 3;
static int helper(int x) { return x * 2; }
int add(int a, int b) { return helper(a) + b + counter; }
"""

# A no_std static executable: _start first in .text, nothing else needed.
RUST_SOURCE = """
#![no_std]
#![no_main]
static mut SEEN: u64 = 7;
#[no_mangle]
pub extern "C" fn _start() -> ! {
    unsafe { core::ptr::write_volatile(&raw mut SEEN, 1); }
    loop {}
}
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { loop {} }
"""


def readelf(path: Path) -> Dict:
    assert READELF is not None
    out = subprocess.run(
        [READELF, "--elf-output-style=JSON", "-h", "-l", "-S", "--symbols", "--dyn-symbols", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)[0]


def assert_matches_readelf(path: Path) -> ElfFile:
    elf = read_elf(str(path))
    ref = readelf(path)
    h = ref["ElfHeader"]
    assert elf.ei_class == h["Ident"]["Class"]["Value"]
    assert elf.ei_data == h["Ident"]["DataEncoding"]["Value"]
    assert elf.osabi == h["Ident"]["OS/ABI"]["Value"]
    assert elf.machine == h["Machine"]["Value"]
    assert elf.entry == h["Entry"]
    assert elf.phnum == h["ProgramHeaderCount"]
    assert len(elf.sections) == int(h["SectionHeaderCount"])
    phs = [p["ProgramHeader"] for p in ref.get("ProgramHeaders", [])]
    assert [(p.type, p.flags, p.offset, p.vaddr, p.filesz, p.memsz) for p in elf.program_headers] == [
        (p["Type"]["Value"], p["Flags"]["Value"], p["Offset"], p["VirtualAddress"], p["FileSize"], p["MemSize"]) for p in phs
    ]
    secs = [s["Section"] for s in ref["Sections"]]
    assert [(s.name, s.type, s.addr, s.offset, s.size) for s in elf.sections] == [
        (s["Name"]["Name"], s["Type"]["Value"], s["Address"], s["Offset"], s["Size"]) for s in secs
    ]
    for table, key in ((".symtab", "Symbols"), (".dynsym", "DynamicSymbols")):
        ref_syms: List[Dict] = [s["Symbol"] for s in ref.get(key, [])]
        mine = elf.symbols(table)
        assert len(mine) == len(ref_syms), table
        for m, r in zip(mine, ref_syms):
            # readelf appends symbol versions ("@GLIBC_2.3") to dynamic names and shows the
            # section's name for unnamed STT_SECTION symbols
            assert (m.type == 3 and m.name == "" and r["Name"]["Value"] == 0) or m.name == r["Name"]["Name"].split("@", 1)[0] or m.name == r["Name"]["Name"]
            assert (m.value, m.size, m.type, m.bind) == (r["Value"], r["Size"], r["Type"]["Value"], r["Binding"]["Value"])
    return elf


@needs_readelf
def test_system_binary() -> None:
    path = Path(shutil.which("ls") or "/usr/bin/ls")
    elf = assert_matches_readelf(path.resolve())
    assert elf.machine == EM_X86_64
    assert elf.interpreter and "ld-linux" in elf.interpreter
    assert elf.symbols(".dynsym")


@needs_readelf
@pytest.mark.skipif(CLANG is None, reason="clang-22 not installed")
def test_clang_object(tmp_path: Path) -> None:
    assert CLANG is not None
    src = tmp_path / "t.c"
    src.write_text(C_SOURCE)
    obj = tmp_path / "t.o"
    subprocess.run([CLANG, "-c", "-O1", str(src), "-o", str(obj)], check=True)
    elf = assert_matches_readelf(obj)
    assert elf.type == ET_REL and elf.entry == 0 and elf.program_headers == []
    add, counter = elf.symbol("add"), elf.symbol("counter")
    assert add is not None and add.type_name == "FUNC"
    assert counter is not None and counter.type_name == "OBJECT"
    assert elf.symbol("helper") is None  # inlined static function leaves no symbol at -O1


@needs_readelf
@pytest.mark.skipif(RUSTC is None or LLD is None, reason="/usr/bin/rustc or ld.lld not installed")
def test_rustc_no_std_static_exec(tmp_path: Path) -> None:
    assert RUSTC is not None and LLD is not None
    src = tmp_path / "boot.rs"
    src.write_text(RUST_SOURCE)
    out = tmp_path / "boot"
    subprocess.run(
        [RUSTC, "--edition", "2021", "--target", "x86_64-unknown-linux-gnu", "-C", "panic=abort", "-C", "opt-level=1",
         "-C", "relocation-model=static", "-C", f"linker={LLD}", "-C", "linker-flavor=ld.lld",
         "-C", "link-arg=-static", "-C", "link-arg=--no-pie", "-C", "link-arg=--entry=_start", str(src), "-o", str(out)],
        check=True, env={**os.environ, "RUSTC_BOOTSTRAP": "1"}, cwd=tmp_path,
    )
    elf = assert_matches_readelf(out)
    # what the build rules assert about fixtures: ELF64, x86-64, EXEC, entry != 0, _start present
    assert elf.is_64 and elf.machine_name == "x86-64" and elf.type == ET_EXEC
    start = elf.symbol("_start")
    assert start is not None and elf.entry == start.value != 0
    assert elf.interpreter is None and any(p.type == PT_LOAD for p in elf.program_headers)
