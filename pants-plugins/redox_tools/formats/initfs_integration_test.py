"""The initfs writer with a real bootstrap ELF linked here by rustc + ld.lld per initfs.md §7."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from redox_tools.formats.elf import ElfFile
from redox_tools.formats.initfs import InitfsError, InitfsReader, main, write_initfs
from redox_tools.manifest import Manifest

RUSTC = "/usr/bin/rustc" if os.path.exists("/usr/bin/rustc") else None
LLD = shutil.which("ld.lld-22") or shutil.which("ld.lld")
pytestmark = pytest.mark.skipif(RUSTC is None or LLD is None, reason="/usr/bin/rustc or ld.lld not installed")

# Image starts at 0x2000 with the ELF headers first (file offset o <-> vaddr 0x2000 + o),
# page-aligned sections, .bss inside the file-backed .data (§7).
LINKER_SCRIPT = """
ENTRY(_start)
SECTIONS {
  . = 0x2000 + SIZEOF_HEADERS;
  . = ALIGN(4096);
  .text : { *(.text._start) *(.text .text.*) }
  . = ALIGN(4096);
  .rodata : { *(.rodata .rodata.*) }
  . = ALIGN(4096);
  .data : { *(.data .data.*) %BSS% }
  %BSS_OUT%
  /DISCARD/ : { *(.eh_frame*) *(.note*) *(.comment) }
}
"""

SOURCE = """
#![no_std]
#![no_main]
static mut SEEN: u64 = 7;
static mut SCRATCH: [u8; 4096] = [0; 4096];
#[no_mangle]
pub extern "C" fn _start() -> ! {
    unsafe {
        let s = core::ptr::read_volatile(&raw const SEEN);
        core::ptr::write_volatile((&raw mut SCRATCH as *mut u8).add((s as usize) & 4095), 1);
    }
    loop {}
}
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { loop {} }
"""


def build_bootstrap(tmp: Path, bss_in_data: bool) -> bytes:
    assert RUSTC is not None and LLD is not None
    script = LINKER_SCRIPT.replace("%BSS%", "*(.bss .bss.*) *(COMMON)" if bss_in_data else "").replace(
        "%BSS_OUT%", "" if bss_in_data else ".bss : { *(.bss .bss.*) *(COMMON) }"
    )
    (tmp / "boot.ld").write_text(script)
    (tmp / "boot.rs").write_text(SOURCE)
    out = tmp / ("boot" if bss_in_data else "boot-bss")
    subprocess.run(
        [RUSTC, "--edition", "2021", "--target", "x86_64-unknown-linux-gnu", "-C", "panic=abort", "-C", "opt-level=1",
         "-C", "relocation-model=static", "-C", f"linker={LLD}", "-C", "linker-flavor=ld.lld",
         "-C", f"link-arg=-T{tmp / 'boot.ld'}", "-C", "link-arg=-zmax-page-size=4096", "-C", "link-arg=-static",
         "-C", "link-arg=--no-pie", str(tmp / "boot.rs"), "-o", str(out)],
        check=True, env={**os.environ, "RUSTC_BOOTSTRAP": "1"}, cwd=tmp,
    )
    return out.read_bytes()


def test_real_bootstrap_archive(tmp_path: Path) -> None:
    boot = build_bootstrap(tmp_path, bss_in_data=True)
    elf = ElfFile(boot)
    start = elf.symbol("_start")
    assert start is not None
    assert elf.entry == 0x3000 == start.value  # _start first in .text at 0x2000 + 0x1000
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "init").write_bytes(b"#!/bin/sh\n")
    (tree / "bin" / "init").chmod(0o755)
    (tree / "etc").mkdir()
    (tree / "etc" / "motd").write_text("hi\n")
    man = tmp_path / "m.json"
    Manifest.from_tree(str(tree), relative_to=str(tmp_path)).dump(str(man))
    (tmp_path / "bootstrap").write_bytes(boot)
    out = tmp_path / "initfs.img"
    assert main(["create", "--manifest", str(man), "--bootstrap", str(tmp_path / "bootstrap"), "-o", str(out)]) == 0
    data = out.read_bytes()
    r = InitfsReader(data)
    r.check()
    assert r.header.bootstrap_entry == elf.entry
    assert data[0x1000:0x1000 + len(boot)] == boot  # verbatim at 0x1000, i.e. virtual 0x2000
    assert r.read("bin/init") == b"#!/bin/sh\n" and r.stat("bin/init").executable
    # the first allocation after the bootstrap starts at the next page boundary
    first = min(st.offset for _, st in r.walk() if st.length)
    assert first >= 0x1000 + len(boot) and first % 4096 == 0
    # determinism: a second run gives identical bytes
    out2 = tmp_path / "initfs2.img"
    write_initfs(Manifest.load(str(man)), boot, str(out2))
    assert hashlib.sha256(out2.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_bootstrap_with_nobits_bss_refused(tmp_path: Path) -> None:
    boot = build_bootstrap(tmp_path, bss_in_data=False)
    with pytest.raises(InitfsError, match="memsz"):
        write_initfs(Manifest([]), boot, str(tmp_path / "x.img"))
    assert not (tmp_path / "x.img").exists()
