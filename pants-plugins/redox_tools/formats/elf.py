"""A small, dependency-free ELF64 reader.

Enough to check what a build produced (class, endianness, OS ABI, type, machine, entry point,
program headers, sections with names, .symtab/.dynsym symbols) and to take a bootstrap's
`e_entry` for the initfs header. Anything malformed raises `ElfError`, never an IndexError,
struct.error or the like.

CLI: `python -m redox_tools.formats.elf FILE [--symbols]` prints a summary.
"""
from __future__ import annotations

import argparse
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from redox_tools.errors import FormatError, run_main

ELF_MAGIC = b"\x7fELF"
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2

ET_NONE, ET_REL, ET_EXEC, ET_DYN, ET_CORE = 0, 1, 2, 3, 4
TYPE_NAMES = {ET_NONE: "NONE", ET_REL: "REL", ET_EXEC: "EXEC", ET_DYN: "DYN", ET_CORE: "CORE"}

EM_386 = 3
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
MACHINE_NAMES = {EM_386: "x86", EM_X86_64: "x86-64", EM_AARCH64: "aarch64", EM_RISCV: "riscv"}

OSABI_NAMES = {0: "SYSV", 3: "GNU", 9: "FreeBSD", 255: "STANDALONE"}

PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_SHLIB, PT_PHDR, PT_TLS = range(8)
PT_GNU_EH_FRAME = 0x6474E550
PT_GNU_STACK = 0x6474E551
PT_GNU_RELRO = 0x6474E552
PT_NAMES = {
    PT_NULL: "NULL", PT_LOAD: "LOAD", PT_DYNAMIC: "DYNAMIC", PT_INTERP: "INTERP", PT_NOTE: "NOTE",
    PT_SHLIB: "SHLIB", PT_PHDR: "PHDR", PT_TLS: "TLS", PT_GNU_EH_FRAME: "GNU_EH_FRAME",
    PT_GNU_STACK: "GNU_STACK", PT_GNU_RELRO: "GNU_RELRO", 0x6474E553: "GNU_PROPERTY",
}
PF_X, PF_W, PF_R = 1, 2, 4

SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 0, 1, 2, 3
SHT_NOBITS = 8
SHT_DYNSYM = 11
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_XINDEX = 0xFFFF

STT_NAMES = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS"}
STB_NAMES = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK"}

_EHDR_SIZE = 64
_PHDR_SIZE = 56
_SHDR_SIZE = 64
_SYM_SIZE = 24
# Refuse absurd table sizes before allocating anything for them.
_MAX_ENTRIES = 1 << 20


class ElfError(FormatError):
    """Not an ELF64 file, or a malformed one."""


@dataclass(frozen=True)
class ProgramHeader:
    type: int
    flags: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    align: int

    @property
    def type_name(self) -> str:
        return PT_NAMES.get(self.type, f"{self.type:#x}")

    @property
    def flags_str(self) -> str:
        return ("R" if self.flags & PF_R else " ") + ("W" if self.flags & PF_W else " ") + ("E" if self.flags & PF_X else " ")


@dataclass(frozen=True)
class Section:
    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int
    size: int
    type: int
    bind: int
    other: int
    shndx: int

    @property
    def type_name(self) -> str:
        return STT_NAMES.get(self.type, str(self.type))

    @property
    def bind_name(self) -> str:
        return STB_NAMES.get(self.bind, str(self.bind))

    @property
    def defined(self) -> bool:
        return self.shndx != SHN_UNDEF


def _cstr(blob: bytes, offset: int, what: str) -> str:
    if not 0 <= offset < len(blob):
        if offset == 0 and not blob:
            return ""
        raise ElfError(f"{what}: string offset {offset} outside its string table ({len(blob)} bytes)")
    end = blob.find(b"\0", offset)
    if end < 0:
        raise ElfError(f"{what}: unterminated string at offset {offset}")
    return blob[offset:end].decode("utf-8", "backslashreplace")


class ElfFile:
    """A parsed ELF64 file held in memory."""

    def __init__(self, data: bytes, *, name: str = "ELF file") -> None:
        self.data = bytes(data)
        self.name = name
        d = self.data
        if len(d) < 16 or d[:4] != ELF_MAGIC:
            raise ElfError(f"{name}: not an ELF file (no \\x7fELF magic)")
        self.ei_class = d[4]
        self.ei_data = d[5]
        self.ei_version = d[6]
        self.osabi = d[7]
        self.abiversion = d[8]
        if self.ei_class == ELFCLASS32:
            raise ElfError(f"{name}: 32-bit ELF (ELFCLASS32); only ELF64 is supported")
        if self.ei_class != ELFCLASS64:
            raise ElfError(f"{name}: unknown ELF class {self.ei_class}")
        if self.ei_data == ELFDATA2LSB:
            self._e = "<"
        elif self.ei_data == ELFDATA2MSB:
            self._e = ">"
        else:
            raise ElfError(f"{name}: unknown ELF data encoding {self.ei_data}")
        if len(d) < _EHDR_SIZE:
            raise ElfError(f"{name}: truncated ELF header ({len(d)} bytes, need {_EHDR_SIZE})")
        (
            self.type, self.machine, self.version, self.entry, self.phoff, self.shoff, self.flags,
            self.ehsize, self.phentsize, self.phnum, self.shentsize, self.shnum, self.shstrndx,
        ) = struct.unpack_from(self._e + "HHIQQQIHHHHHH", d, 16)
        self.program_headers = self._read_program_headers()
        self.sections = self._read_sections()
        self._by_name: Dict[str, Section] = {}
        for s in self.sections:
            self._by_name.setdefault(s.name, s)
        self._symbols: Dict[str, List[Symbol]] = {}

    # --- parsing ---------------------------------------------------------------------------
    def _table(self, off: int, num: int, entsize: int, minsize: int, what: str) -> None:
        if num == 0:
            return
        if entsize < minsize:
            raise ElfError(f"{self.name}: {what} entry size {entsize} is smaller than {minsize}")
        if num > _MAX_ENTRIES:
            raise ElfError(f"{self.name}: {what} has an absurd entry count {num}")
        if off + num * entsize > len(self.data) or off < 0:
            raise ElfError(
                f"{self.name}: {what} ({num} x {entsize} bytes at {off:#x}) runs past the end of the file ({len(self.data)} bytes)"
            )

    def _read_program_headers(self) -> List[ProgramHeader]:
        if self.phoff == 0:
            return []
        self._table(self.phoff, self.phnum, self.phentsize, _PHDR_SIZE, "program header table")
        out = []
        for i in range(self.phnum):
            t, fl, off, va, pa, fs, ms, al = struct.unpack_from(self._e + "IIQQQQQQ", self.data, self.phoff + i * self.phentsize)
            out.append(ProgramHeader(t, fl, off, va, pa, fs, ms, al))
        return out

    def _read_sections(self) -> List[Section]:
        if self.shoff == 0:
            return []
        shnum = self.shnum
        shstrndx = self.shstrndx
        if shnum == 0 or shstrndx == SHN_XINDEX:
            # Extended numbering: the real values live in section header 0.
            self._table(self.shoff, 1, self.shentsize, _SHDR_SIZE, "section header table")
            _, _, _, _, _, size0, link0, _, _, _ = struct.unpack_from(self._e + "IIQQQQIIQQ", self.data, self.shoff)
            if shnum == 0:
                shnum = size0
            if shstrndx == SHN_XINDEX:
                shstrndx = link0
        self._table(self.shoff, shnum, self.shentsize, _SHDR_SIZE, "section header table")
        raw = []
        for i in range(shnum):
            raw.append(struct.unpack_from(self._e + "IIQQQQIIQQ", self.data, self.shoff + i * self.shentsize))
        names = b""
        if shstrndx != SHN_UNDEF:
            if shstrndx >= shnum:
                raise ElfError(f"{self.name}: section name table index {shstrndx} >= section count {shnum}")
            st = raw[shstrndx]
            names = self._range(st[4], st[5], "section name table")
        out = []
        for i, (nm, t, fl, addr, off, size, link, info, align, entsize) in enumerate(raw):
            name = _cstr(names, nm, f"{self.name}: section {i} name") if names or nm else ""
            if t != SHT_NOBITS and t != SHT_NULL:
                self._range(off, size, f"section {name or i}")
            out.append(Section(i, name, t, fl, addr, off, size, link, info, align, entsize))
        return out

    def _range(self, off: int, size: int, what: str) -> bytes:
        if off < 0 or size < 0 or off + size > len(self.data):
            raise ElfError(f"{self.name}: {what} ({size} bytes at {off:#x}) runs past the end of the file ({len(self.data)} bytes)")
        return self.data[off:off + size]

    # --- access ----------------------------------------------------------------------------
    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, f"{self.type:#x}")

    @property
    def machine_name(self) -> str:
        return MACHINE_NAMES.get(self.machine, str(self.machine))

    @property
    def osabi_name(self) -> str:
        return OSABI_NAMES.get(self.osabi, str(self.osabi))

    @property
    def is_64(self) -> bool:
        return self.ei_class == ELFCLASS64

    @property
    def little_endian(self) -> bool:
        return self.ei_data == ELFDATA2LSB

    def section(self, name: str) -> Optional[Section]:
        return self._by_name.get(name)

    def section_data(self, section: Section) -> bytes:
        if section.type == SHT_NOBITS:
            return b""
        return self._range(section.offset, section.size, f"section {section.name}")

    def segments(self, type: int = PT_LOAD) -> List[ProgramHeader]:
        return [p for p in self.program_headers if p.type == type]

    @property
    def interpreter(self) -> Optional[str]:
        for p in self.segments(PT_INTERP):
            return self._range(p.offset, p.filesz, "PT_INTERP").split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
        return None

    def symbols(self, table: str = ".symtab") -> List[Symbol]:
        """Symbols of `.symtab` or `.dynsym` (empty list if the table is absent)."""
        if table in self._symbols:
            return self._symbols[table]
        sec = self.section(table)
        syms: List[Symbol] = []
        if sec is not None and sec.type in (SHT_SYMTAB, SHT_DYNSYM):
            entsize = sec.entsize or _SYM_SIZE
            if entsize < _SYM_SIZE:
                raise ElfError(f"{self.name}: {table} entry size {entsize} is smaller than {_SYM_SIZE}")
            blob = self.section_data(sec)
            if not 0 < sec.link < len(self.sections):
                raise ElfError(f"{self.name}: {table} links to string table {sec.link}, which does not exist")
            strtab = self.section_data(self.sections[sec.link])
            for i in range(len(blob) // entsize):
                nm, info, other, shndx, value, size = struct.unpack_from(self._e + "IBBHQQ", blob, i * entsize)
                name = _cstr(strtab, nm, f"{self.name}: {table} symbol {i} name") if nm else ""
                syms.append(Symbol(name, value, size, info & 0xF, info >> 4, other, shndx))
        self._symbols[table] = syms
        return syms

    def symbol(self, name: str) -> Optional[Symbol]:
        """The first defined symbol with this name in .symtab, else .dynsym."""
        for table in (".symtab", ".dynsym"):
            for s in self.symbols(table):
                if s.name == name and s.defined:
                    return s
        return None

    def summary(self) -> str:
        return (
            f"ELF64 {'LSB' if self.little_endian else 'MSB'} {self.type_name} {self.machine_name} "
            f"OS/ABI {self.osabi_name} entry {self.entry:#x}, {len(self.program_headers)} program headers, "
            f"{len(self.sections)} sections"
        )


def read_elf(path: str) -> ElfFile:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ElfError(f"cannot read {path}: {e.strerror}") from None
    return ElfFile(data, name=path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.formats.elf", description="Summarise an ELF64 file.")
    ap.add_argument("file")
    ap.add_argument("--symbols", action="store_true", help="also list .symtab and .dynsym")
    args = ap.parse_args(argv)
    elf = read_elf(args.file)
    print(elf.summary())
    for p in elf.program_headers:
        print(
            f"  {p.type_name:<13} {p.flags_str} off {p.offset:#010x} vaddr {p.vaddr:#018x} "
            f"filesz {p.filesz:#x} memsz {p.memsz:#x}"
        )
    for s in elf.sections:
        if s.index:
            print(f"  [{s.index:2}] {s.name:<24} type {s.type:<3} addr {s.addr:#x} off {s.offset:#x} size {s.size:#x}")
    if args.symbols:
        for table in (".symtab", ".dynsym"):
            for sym in elf.symbols(table):
                if sym.name:
                    print(f"  {table} {sym.value:#018x} {sym.size:6} {sym.type_name:<7} {sym.bind_name:<6} {sym.name}")
    return 0


if __name__ == "__main__":
    run_main(main)
