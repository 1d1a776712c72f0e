"""The native RedoxFS writer (packages/host/redoxfs-write) behind the Python writer's interface.

`redoxfs-write` lays out the same bytes as `redox_tools.redoxfs.writer` (the reference) for the
same manifest, size, offset, uuid and ctime, without Python start-up or per-file interpreter
work. This module finds the binary and wraps it in callables with the reference's signatures,
so a caller (e.g. diskimage's `redoxfs_writer=` / `redoxfs_size_needed=`) can use either:

    write = native_redoxfs_writer()          # or native_redoxfs_writer("/path/to/redoxfs-write")
    write(out, manifest, offset=..., size=..., uuid=None, ctime=None)   # as write_redoxfs
    need = native_size_needed()(manifest, ctime=None)                   # as size_needed

`NativeRedoxFS` holds both, sharing one dump of a manifest (a temporary JSON file; the tool reads
relative sources from the manifest's base directory, `--base-dir`), and the tool writes into
bytes [offset, offset+size) of `out`'s file (`create --into`), touching nothing else. Its bad-input
errors (exit 2, one `error: ...` line) become `RedoxFSError` with the tool's message, which is the
reference's message for the same input.

The binary is found as `find_writer` says: an explicit path, $REDOXFS_WRITE, the copy a test's
runtime_package_dependencies puts in its sandbox, or dist/ after
`./pants package packages/host/redoxfs-write`.

    python -m redox_tools.redoxfs.native cmp A.img B.img [--offset BYTES]

says where two images first differ (the 4096-byte block, counted from the file's start and from
the filesystem's at --offset, and both blocks' first bytes); exit 1 when they differ.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from typing import Any, BinaryIO, Callable, List, Optional, Sequence, Tuple

from redox_tools.errors import ToolError, run_main
from redox_tools.redoxfs.format import BLOCK_SIZE, RedoxFSError
from redox_tools.redoxfs.writer import check_write_args

# Where `./pants package packages/host/redoxfs-write` puts the tool under dist/ (and a test's
# runtime_package_dependencies, relative to its sandbox).
TOOL_REL = "packages.host.redoxfs-write/redoxfs-write/bin/redoxfs-write"
BUILD_COMMAND = "./pants package packages/host/redoxfs-write"
ENV_VAR = "REDOXFS_WRITE"

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

WriteRedoxFS = Callable[..., None]
SizeNeeded = Callable[..., int]


def find_writer(explicit: Optional[str] = None, *, root: Optional[str] = None) -> str:
    """The redoxfs-write binary: `explicit`, else $REDOXFS_WRITE, else ./TOOL_REL (a sandbox's
    copy), else ROOT/dist/TOOL_REL (ROOT: the repository holding this file). A path given
    explicitly or through the environment must exist (it is never silently passed over)."""
    for given, what in ((explicit, "the given redoxfs-write path"), (os.environ.get(ENV_VAR), f"${ENV_VAR}")):
        if given:
            if not os.path.isfile(given):
                raise ToolError(f"redoxfs-write not found at {given} ({what}); build it with {BUILD_COMMAND}")
            return os.path.abspath(given)
    dist = os.path.join(root if root is not None else _REPO_ROOT, "dist", TOOL_REL)
    for cand in (TOOL_REL, dist):
        if os.path.isfile(cand):
            return os.path.abspath(cand)
    raise ToolError(
        f"redoxfs-write not found (looked for ${ENV_VAR}, ./{TOOL_REL}, {dist}); build it with {BUILD_COMMAND}"
    )


def _run(tool: str, args: List[str], pass_fds: tuple = ()) -> str:
    res = subprocess.run([tool, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds)
    err = res.stderr.decode("utf-8", "replace").strip()
    if res.returncode == 2:
        lines = err.splitlines()
        msg = lines[-1] if lines else "bad input (no message)"
        raise RedoxFSError(msg[len("error: "):] if msg.startswith("error: ") else msg)
    if res.returncode != 0:
        raise ToolError(f"redoxfs-write {args[0]}: exit {res.returncode}: {err[-2000:] or '(no message)'}")
    return res.stdout.decode("utf-8", "replace")


_SIZE_LINE = re.compile(r"(\d+) bytes \(\d+ MiB\)")


class NativeRedoxFS:
    """The native writer behind the reference's two functions: `write` (write_redoxfs's
    signature) and `size_needed` (size_needed's). The binary is found when this is made, so a
    missing one is reported before any image is started. A manifest is dumped once, into a
    temporary directory that lives as long as this object, for both calls (a disk image asks for
    the size, then writes); the tool reads relative sources from the manifest's own base
    directory (`--base-dir`), so messages name the paths the reference's would."""

    def __init__(self, tool: Optional[str] = None) -> None:
        self.exe = find_writer(tool)
        self._dir = tempfile.TemporaryDirectory(prefix="redoxfs-write-")
        self._dumped: Optional[Tuple[Any, List[str]]] = None  # (manifest, its --manifest/--base-dir args)

    def _manifest_args(self, manifest: Any) -> List[str]:
        if self._dumped is None or self._dumped[0] is not manifest:  # manifests are immutable
            path = os.path.join(self._dir.name, "manifest.json")
            manifest.dump(path)
            base = os.path.abspath(getattr(manifest, "base_dir", None) or ".")
            self._dumped = (manifest, ["--manifest", path, "--base-dir", base])
        return self._dumped[1]

    def write(
        self,
        out: BinaryIO,
        manifest: Any,
        *,
        offset: int,
        size: int,
        uuid: Optional[bytes] = None,
        ctime: Optional[int] = None,
    ) -> None:
        check_write_args(offset=offset, size=size, uuid=uuid, ctime=ctime)  # the reference's, before anything runs
        try:
            fd = out.fileno()
        except (AttributeError, OSError, ValueError):
            raise ToolError("the native RedoxFS writer writes into a file on disk (this output has no file descriptor)") from None
        out.flush()  # what was written through `out` before must be in the file under the tool
        # The tool opens the file through this process's descriptor: works for files opened by
        # descriptor (atomic_output's temp file has no name attribute worth trusting).
        args = ["create", *self._manifest_args(manifest), "--into", f"/proc/self/fd/{fd}", "--offset", str(offset),
                "--size", str(size), "-q"]
        if uuid is not None:
            args += ["--uuid", uuid.hex()]
        if ctime is not None:
            args += ["--ctime", str(ctime)]
        _run(self.exe, args, pass_fds=(fd,))

    def size_needed(self, manifest: Any, *, ctime: Optional[int] = None) -> int:
        extra = ["--ctime", str(ctime)] if ctime is not None else []
        out = _run(self.exe, ["size", *self._manifest_args(manifest), *extra])
        match = _SIZE_LINE.fullmatch(out.strip())
        if not match:
            raise ToolError(f"redoxfs-write size: unexpected output {out.strip()[:200]!r}")
        return int(match.group(1))


def native_redoxfs_writer(tool: Optional[str] = None) -> WriteRedoxFS:
    """A callable with write_redoxfs's signature that runs the native writer."""
    return NativeRedoxFS(tool).write


def native_size_needed(tool: Optional[str] = None) -> SizeNeeded:
    """A callable with size_needed's signature (manifest, *, ctime=None) -> bytes."""
    return NativeRedoxFS(tool).size_needed


def first_difference(a: str, b: str, *, offset: int = 0, show: int = 32) -> Optional[str]:
    """None when files `a` and `b` hold the same bytes; else where they first differ: the
    4096-byte block (index in the file and, for a filesystem at `offset`, in the filesystem),
    the first differing byte in it, both blocks' first `show` bytes, and how many blocks differ."""
    first: Optional[int] = None
    blocks_a = blocks_b = b""
    differing = 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        len_a, len_b = os.fstat(fa.fileno()).st_size, os.fstat(fb.fileno()).st_size
        pos = 0
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if not ca and not cb:
                break
            if ca != cb:
                for i in range(0, max(len(ca), len(cb)), BLOCK_SIZE):
                    xa, xb = ca[i : i + BLOCK_SIZE], cb[i : i + BLOCK_SIZE]
                    if xa != xb:
                        differing += 1
                        if first is None:
                            first, blocks_a, blocks_b = (pos + i) // BLOCK_SIZE, xa, xb
            pos += max(len(ca), len(cb))
    if first is None and len_a == len_b:
        return None
    lines = [f"{a}: {len_a} bytes, {b}: {len_b} bytes"]
    if first is not None:
        byte = next((i for i in range(min(len(blocks_a), len(blocks_b))) if blocks_a[i] != blocks_b[i]),
                    min(len(blocks_a), len(blocks_b)))
        fs_block = (first * BLOCK_SIZE - offset) / BLOCK_SIZE
        where = f"filesystem block {fs_block:g}" if first * BLOCK_SIZE >= offset else "before the filesystem"
        lines += [
            f"{differing} differing 4096-byte blocks; first: file block {first} ({where}, byte {byte} in it)",
            f"  {a}: {blocks_a[:show].hex(' ', 8)}",
            f"  {b}: {blocks_b[:show].hex(' ', 8)}",
        ]
        if byte >= show:  # and where they differ
            at = byte // 8 * 8
            lines += [f"  at byte {at}:", f"  {a}: {blocks_a[at : at + show].hex(' ', 8)}",
                      f"  {b}: {blocks_b[at : at + show].hex(' ', 8)}"]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.redoxfs.native",
                                 description="compare two RedoxFS images block by block")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cmp", help="where two images first differ")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--offset", type=int, default=0, help="byte offset of the filesystem in both files")
    c.add_argument("--show", type=int, default=32, help="bytes of each differing block to print")
    args = ap.parse_args(argv)
    for p in (args.a, args.b):
        if not os.path.isfile(p):
            raise ToolError(f"{p}: not a file")
    diff = first_difference(args.a, args.b, offset=args.offset, show=args.show)
    print(diff if diff is not None else f"{args.a} and {args.b}: identical")
    return 1 if diff is not None else 0


if __name__ == "__main__":
    run_main(main)
