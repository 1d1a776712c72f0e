"""Link a static library (or object) into an ELF with a linker script and wrap it with nasm into a
flat binary: the bootloader's BIOS variant (`bootloader.bios`).

    python -m redox_tools.builders.flat_binary SPEC.json

Upstream's steps, with the toolchain's tools (ld.lld for GNU ld, llvm-objcopy for objcopy):

    ld.lld <link_args> -T <linker_script> -o <name>.elf <input>    (skipped for an ELF executable input)
    objcopy --only-keep-debug <name>.elf <name>.sym; objcopy --strip-debug <name>.elf   (split_debug)
    nasm -f bin -o <name>.bin -D STAGE3=<name>.elf [-D K=V ...] -i <dir>/ ... <nasm_source>

Paths in the spec (`linker_script`, `nasm_source`, `nasm_include_dirs`) are relative to `src_dir`
(the target's directory or its `source` checkout) and may not leave it. Outputs, by name for the
`install` map: `image` (the flat binary), `elf` (the linked, stripped ELF) and `sym` (its debug
symbols, with split_debug).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from redox_tools.builders.driver import image_relpath, load_spec, spec_main, stage
from redox_tools.errors import ToolError, run_main


class FlatBinaryError(ToolError):
    pass


ELF_MAGIC = b"\x7fELF"
AR_MAGIC = b"!<arch>\n"
ET_REL, ET_EXEC = 1, 2
OUTPUTS = ("image", "elf", "sym")


@dataclass
class FlatBinarySpec:
    package: str
    name: str
    input: str  # sandbox path of the static library / object / ELF executable
    input_label: str  # how the input was named (`<address>=<path>`), for messages
    src_dir: str
    nasm_source: str
    nasm: Optional[str] = None
    lld: Optional[str] = None
    objcopy: Optional[str] = None
    linker_script: Optional[str] = None
    link_args: List[str] = field(default_factory=list)
    split_debug: bool = False
    nasm_include_dirs: List[str] = field(default_factory=list)
    nasm_defines: Dict[str, str] = field(default_factory=dict)
    stage3_define: str = "STAGE3"
    install: Dict[str, str] = field(default_factory=dict)
    out_dir: str = "__staged"
    work_dir: str = "__flat"
    path: List[str] = field(default_factory=lambda: ["/usr/bin", "/bin"])


def run(args: Sequence[str], spec: FlatBinarySpec, what: str) -> None:
    env = {"PATH": os.pathsep.join(spec.path), "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0")}
    proc = subprocess.run(list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise FlatBinaryError(
            f"{spec.package}: {what} failed:\n" + "\n".join("  | " + ln for ln in proc.stdout.splitlines()[-40:])
        )


def check_tool(spec: FlatBinarySpec, key: str, path: Optional[str], why: str) -> str:
    if not path:
        raise FlatBinaryError(f"{spec.package}: the toolchain has no `{key}` ({why})")
    if not os.path.isfile(path):
        raise FlatBinaryError(f"{spec.package}: the toolchain's `{key}` ({path}) does not exist; it is needed {why}")
    return path


def in_source(spec: FlatBinarySpec, rel: str, what: str, want_dir: bool = False) -> str:
    """`rel` under src_dir, refused if it leaves it or does not exist."""
    parts = rel.replace("\\", "/").split("/")
    if not rel or os.path.isabs(rel) or ".." in parts:
        raise FlatBinaryError(f"{spec.package}: {what} {rel!r} must be a path relative to {spec.src_dir or '.'}, without '..'")
    path = os.path.normpath(os.path.join(spec.src_dir or ".", rel))
    if not (os.path.isdir(path) if want_dir else os.path.isfile(path)):
        kind = "directory" if want_dir else "file"
        raise FlatBinaryError(f"{spec.package}: {what} {rel!r} is not a {kind} in {spec.src_dir or '.'} (looked for {path})")
    return path


def input_kind(spec: FlatBinarySpec) -> str:
    """`archive`, `object` (ET_REL) or `executable` (ET_EXEC); anything else is refused."""
    if not os.path.isfile(spec.input):
        raise FlatBinaryError(f"{spec.package}: the input {spec.input_label} is missing ({spec.input} does not exist)")
    with open(spec.input, "rb") as f:
        head = f.read(18)
    if head.startswith(AR_MAGIC):
        return "archive"
    if head.startswith(ELF_MAGIC) and len(head) == 18:
        e_type = int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")
        if e_type == ET_REL:
            return "object"
        if e_type == ET_EXEC:
            return "executable"
    raise FlatBinaryError(
        f"{spec.package}: the input {spec.input_label} is neither a static library, an object nor an ELF executable"
    )


def check_spec(spec: FlatBinarySpec) -> Tuple[str, Optional[str]]:
    """(input kind, linker script path); every input problem is reported before running a tool."""
    unknown = sorted(set(spec.install) - set(OUTPUTS))
    if unknown:
        raise FlatBinaryError(f"{spec.package}: `install` names {', '.join(unknown)}; the outputs are {', '.join(OUTPUTS)}")
    if "sym" in spec.install and not spec.split_debug:
        raise FlatBinaryError(f"{spec.package}: `install` names `sym`, which only split_debug=True produces")
    if not spec.install:
        raise FlatBinaryError(f"{spec.package}: `install` is empty, so the package would stage nothing")
    for name, dest in spec.install.items():
        image_relpath(spec.package, name, dest, FlatBinaryError)
    if not spec.nasm_source:
        raise FlatBinaryError(f"{spec.package}: `nasm_source` is empty; it names the .asm file that incbins the ELF")
    in_source(spec, spec.nasm_source, "nasm_source")
    for d in spec.nasm_include_dirs:
        in_source(spec, d, "nasm_include_dirs entry", want_dir=True)
    kind = input_kind(spec)
    script = None
    if kind == "executable":
        if spec.linker_script:
            raise FlatBinaryError(
                f"{spec.package}: the input {spec.input_label} is already a linked ELF; `linker_script` applies to a "
                "static library or object"
            )
    else:
        if not spec.linker_script:
            raise FlatBinaryError(
                f"{spec.package}: the input {spec.input_label} is a {'static library' if kind == 'archive' else 'relocatable object'}; "
                "set `linker_script` to link it"
            )
        script = in_source(spec, spec.linker_script, "linker_script")
        check_tool(spec, "lld", spec.lld, "to link the ELF (install lld-22)")
    if spec.split_debug:
        check_tool(spec, "objcopy", spec.objcopy, "for split_debug (install llvm-22)")
    check_tool(spec, "nasm", spec.nasm, "to assemble the flat binary (install nasm)")
    return kind, script


def build(spec: FlatBinarySpec) -> List[str]:
    kind, script = check_spec(spec)
    os.makedirs(spec.work_dir, exist_ok=True)
    elf = os.path.join(spec.work_dir, f"{spec.name}.elf")
    if kind == "executable":
        shutil.copyfile(spec.input, elf)
    else:
        assert spec.lld and script
        run([spec.lld, *spec.link_args, "-T", script, "-o", elf, spec.input], spec, f"linking {spec.input_label} (ld.lld)")
    outputs = {"elf": elf}
    if spec.split_debug:
        assert spec.objcopy
        sym = os.path.join(spec.work_dir, f"{spec.name}.sym")
        run([spec.objcopy, "--only-keep-debug", elf, sym], spec, "objcopy --only-keep-debug")
        run([spec.objcopy, "--strip-debug", elf], spec, "objcopy --strip-debug")
        outputs["sym"] = sym
    image = os.path.join(spec.work_dir, f"{spec.name}.bin")
    args = [spec.nasm or "nasm", "-f", "bin", "-o", image, "-D", f"{spec.stage3_define}={elf}"]
    args += [f"-D{k}={v}" if v else f"-D{k}" for k, v in sorted(spec.nasm_defines.items())]
    for d in spec.nasm_include_dirs:
        args += ["-i", in_source(spec, d, "nasm_include_dirs entry", want_dir=True).rstrip("/") + "/"]
    run([*args, in_source(spec, spec.nasm_source, "nasm_source")], spec, f"nasm {spec.nasm_source}")
    outputs["image"] = image
    return stage(
        spec.out_dir,
        [(outputs[name], image_relpath(spec.package, name, dest, FlatBinaryError), 0o644)
         for name, dest in sorted(spec.install.items())],
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    return spec_main("redox_tools.builders.flat_binary", __doc__, lambda path: build(load_spec(FlatBinarySpec, path, FlatBinaryError, "flat binary")), argv)


if __name__ == "__main__":
    run_main(main)
