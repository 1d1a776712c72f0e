from __future__ import annotations

import random
import struct
from typing import Sequence, Tuple

import pytest

from redox_tools.formats.elf import (
    EM_X86_64, ET_EXEC, PF_R, PF_X, PT_LOAD, SHT_NOBITS, SHT_PROGBITS, ElfError, ElfFile, main,
)


def make_elf(
    *,
    endian: str = "<",
    etype: int = ET_EXEC,
    entry: int = 0x401000,
    segments: Sequence[Tuple[int, int, int, int, int, int]] = ((PT_LOAD, PF_R | PF_X, 0x1000, 0x401000, 0x10, 0x10),),
    text: bytes = b"\xf4" * 16,
    symbols: Sequence[Tuple[str, int, int]] = (("_start", 0x401000, 16), ("helper", 0x401008, 8)),
    bss: int = 0,
) -> bytes:
    """A small but complete ELF64: header, program headers, .text at 0x1000, .bss, .symtab, .strtab, .shstrtab."""
    e = endian
    ehdr_size, ph_size, sh_size = 64, 56, 64
    out = bytearray(0x1000)
    out += text
    # string tables
    strtab = bytearray(b"\0")
    sym_entries = [struct.pack(e + "IBBHQQ", 0, 0, 0, 0, 0, 0)]
    for name, value, size in symbols:
        sym_entries.append(struct.pack(e + "IBBHQQ", len(strtab), (1 << 4) | 2, 0, 1, value, size))
        strtab += name.encode() + b"\0"
    names = [b"", b".text", b".bss", b".symtab", b".strtab", b".shstrtab"]
    shstrtab = bytearray()
    name_off = []
    for n in names:
        name_off.append(len(shstrtab))
        shstrtab += n + b"\0"
    symtab_off = len(out)
    out += b"".join(sym_entries)
    strtab_off = len(out)
    out += strtab
    shstrtab_off = len(out)
    out += shstrtab
    while len(out) % 8:
        out.append(0)
    shoff = len(out)
    shdrs = [
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (name_off[1], SHT_PROGBITS, 6, 0x401000, 0x1000, len(text), 0, 0, 16, 0),
        (name_off[2], SHT_NOBITS, 3, 0x402000, 0x1000 + len(text), bss, 0, 0, 8, 0),
        (name_off[3], 2, 0, 0, symtab_off, 24 * len(sym_entries), 4, 1, 8, 24),
        (name_off[4], 3, 0, 0, strtab_off, len(strtab), 0, 0, 1, 0),
        (name_off[5], 3, 0, 0, shstrtab_off, len(shstrtab), 0, 0, 1, 0),
    ]
    for sh in shdrs:
        out += struct.pack(e + "IIQQQQIIQQ", *sh)
    phoff = ehdr_size
    for i, (t, fl, off, va, fs, ms) in enumerate(segments):
        struct.pack_into(e + "IIQQQQQQ", out, phoff + i * ph_size, t, fl, off, va, va, fs, ms, 0x1000)
    ident = b"\x7fELF" + bytes([2, 1 if e == "<" else 2, 1, 0]) + bytes(8)
    out[0:64] = ident + struct.pack(
        e + "HHIQQQIHHHHHH", etype, EM_X86_64, 1, entry, phoff if segments else 0, shoff, 0,
        ehdr_size, ph_size, len(segments), sh_size, len(shdrs), 5,
    )
    return bytes(out)


# The bootstrap of the initfs spec's worked example (§11): a bare 64-byte header + zeros.
WORKED_BOOTSTRAP = bytes.fromhex(
    "7f454c46020101000000000000000000" "02003e00010000000030000000000000"
    "40000000000000000000000000000000" "00000000400038000000400000000000"
) + bytes(136)


def test_header_only_elf() -> None:
    elf = ElfFile(WORKED_BOOTSTRAP)
    assert (elf.is_64, elf.little_endian, elf.type_name, elf.machine_name, elf.osabi_name) == (
        True, True, "EXEC", "x86-64", "SYSV")
    assert elf.entry == 0x3000
    assert elf.program_headers == [] and elf.sections == []
    assert elf.symbols() == [] and elf.symbol("_start") is None


@pytest.mark.parametrize("endian", ["<", ">"])
def test_full_elf(endian: str) -> None:
    data = make_elf(endian=endian, bss=0x40)
    elf = ElfFile(data)
    assert elf.little_endian == (endian == "<")
    assert elf.type == ET_EXEC and elf.machine == EM_X86_64 and elf.entry == 0x401000
    (ph,) = elf.program_headers
    assert (ph.type_name, ph.flags_str, ph.offset, ph.vaddr, ph.filesz, ph.memsz) == ("LOAD", "R E", 0x1000, 0x401000, 0x10, 0x10)
    assert [s.name for s in elf.sections] == ["", ".text", ".bss", ".symtab", ".strtab", ".shstrtab"]
    text, bss = elf.section(".text"), elf.section(".bss")
    assert text is not None and bss is not None
    assert elf.section_data(text) == b"\xf4" * 16
    assert elf.section_data(bss) == b""
    syms = {s.name: s for s in elf.symbols(".symtab")}
    assert syms["_start"].value == 0x401000 and syms["_start"].type_name == "FUNC" and syms["_start"].bind_name == "GLOBAL"
    helper = elf.symbol("helper")
    assert helper is not None and helper.value == 0x401008
    assert elf.symbols(".dynsym") == []
    assert elf.interpreter is None


def test_cli_summary(capsys: pytest.CaptureFixture, tmp_path) -> None:
    p = tmp_path / "x.elf"
    p.write_bytes(make_elf())
    assert main([str(p), "--symbols"]) == 0
    out = capsys.readouterr().out
    assert "ELF64 LSB EXEC x86-64" in out and "_start" in out and ".symtab" in out


def _corrupt(data: bytes, off: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not an ELF"),
        (b"MZ\x90\x00" + bytes(60), "not an ELF"),
        (b"\x7fELF\x01\x01\x01" + bytes(57), "32-bit"),
        (b"\x7fELF\x03\x01\x01" + bytes(57), "unknown ELF class"),
        (b"\x7fELF\x02\x07\x01" + bytes(57), "data encoding"),
        (b"\x7fELF\x02\x01\x01" + bytes(20), "truncated"),
        (_corrupt(make_elf(), 0x20, "<Q", 0xFFFFFF), "program header table"),  # e_phoff
        (_corrupt(make_elf(), 0x36, "<H", 8), "entry size"),  # e_phentsize
        (_corrupt(make_elf(), 0x3E, "<H", 77), "section name table index"),  # e_shstrndx
        (_corrupt(make_elf(), 0x28, "<Q", 1 << 40), "section header table"),  # e_shoff
    ],
)
def test_garbage_raises_elf_error(data: bytes, message: str) -> None:
    with pytest.raises(ElfError, match=message):
        ElfFile(data)


def test_bad_section_and_symbol_references() -> None:
    data = make_elf()
    elf = ElfFile(data)
    symtab = elf.section(".symtab")
    strtab = elf.section(".strtab")
    assert symtab is not None and strtab is not None
    # .symtab size pushed past the end of the file
    bad = _corrupt(data, elf.shoff + 3 * 64 + 0x20, "<Q", 1 << 30)
    with pytest.raises(ElfError, match="symtab"):
        ElfFile(bad)
    # symbol name offset outside .strtab
    bad = _corrupt(data, symtab.offset + 24, "<I", strtab.size + 100)
    with pytest.raises(ElfError, match="string"):
        ElfFile(bad).symbols()
    # sh_link of .symtab pointing nowhere
    bad = _corrupt(data, elf.shoff + 3 * 64 + 0x28, "<I", 99)
    with pytest.raises(ElfError, match="string table"):
        ElfFile(bad).symbols()


def test_mutation_fuzz_raises_only_elf_error() -> None:
    rng = random.Random(1234)
    base = make_elf(bss=8)
    for _ in range(300):
        b = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            kind = rng.random()
            pos = rng.randrange(len(b))
            if kind < 0.6:
                b[pos] = rng.randrange(256)
            elif kind < 0.8:
                b[pos:pos + 8] = rng.randbytes(8) if hasattr(rng, "randbytes") else bytes(rng.randrange(256) for _ in range(8))
            else:
                del b[pos:]
                break
        try:
            elf = ElfFile(bytes(b))
            elf.symbols(".symtab")
            elf.symbols(".dynsym")
            for s in elf.sections:
                elf.section_data(s)
            elf.interpreter
            elf.summary()
        except ElfError:
            pass
