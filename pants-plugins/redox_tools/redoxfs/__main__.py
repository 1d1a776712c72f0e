"""Command line for RedoxFS v8 images.

    python -m redox_tools.redoxfs create --manifest M.json -o IMG --size 64M [--uuid HEX] [--ctime N]
    python -m redox_tools.redoxfs size --manifest M.json
    python -m redox_tools.redoxfs ls IMG [PATH] [--offset BYTES] [-R]
    python -m redox_tools.redoxfs cat IMG PATH [--offset BYTES]
    python -m redox_tools.redoxfs check IMG [--offset BYTES]
    python -m redox_tools.redoxfs info IMG [--offset BYTES]

Without --offset, ls/cat/check/info look for the first valid header in the first 65536 blocks
(so a whole GPT disk image works: RedoxFS usually sits at 2 MiB). `create` writes a sparse
image to a temporary name and renames it at the end; `--size auto` uses the smallest size the
layout needs, rounded up to whole MiB. Exit status: 0 ok, 1 check found errors, 2 bad input.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import Optional, Sequence

from redox_tools.errors import ToolError, run_main
from redox_tools.manifest import Manifest
from redox_tools.redoxfs.format import BLOCK_SIZE, RedoxFSError
from redox_tools.redoxfs.reader import RedoxFSReader, RedoxStat
from redox_tools.redoxfs.writer import size_needed, write_redoxfs
from redox_tools.safeio import atomic_output

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ToolError(f"bad size {text!r}: use bytes or a number with K/M/G/T (e.g. 64M)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def _open_reader(path: str, offset: Optional[int]):
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ToolError(f"cannot open image {path}: {exc.strerror}") from None
    if offset is None:
        return f, RedoxFSReader(f, 0, scan=True)
    return f, RedoxFSReader(f, offset)


def _fmt(path: str, st: RedoxStat, fs: RedoxFSReader) -> str:
    t = time.strftime("%Y-%m-%d %H:%M", time.gmtime(st.mtime)) if st.mtime < 1 << 40 else str(st.mtime)
    line = f"{st.filemode()} {st.uid:>5} {st.gid:>5} {st.size:>10} {t} {path}"
    if st.is_symlink:
        try:
            line += " -> " + fs.readlink(path)
        except RedoxFSError as exc:
            line += f" -> ? ({exc})"
    return line


def _create(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.manifest)
    uuid = None
    if args.uuid:
        try:
            uuid = bytes.fromhex(args.uuid.replace("-", ""))
        except ValueError:
            raise ToolError(f"--uuid {args.uuid!r} is not hex") from None
        if len(uuid) != 16:
            raise ToolError(f"--uuid must be 16 bytes (32 hex digits), got {len(uuid)}")
    if args.size == "auto":
        need = size_needed(manifest, ctime=args.ctime)
        size = -(-need // (1 << 20)) * (1 << 20)
    else:
        size = parse_size(args.size)
    out = os.path.abspath(args.output)
    with atomic_output(out) as f:  # exclusive temp file: never writes through a planted link
        f.truncate(args.offset + size)
        write_redoxfs(f, manifest, offset=args.offset, size=size, uuid=uuid, ctime=args.ctime)
    if not args.quiet:
        print(f"wrote {args.output}: RedoxFS {size >> 20} MiB, {len(manifest)} entries", file=sys.stderr)
    return 0


def _ls(args: argparse.Namespace) -> int:
    f, fs = _open_reader(args.image, args.offset)
    with f:
        path = "/" + args.path.strip("/")
        st = fs.stat(path)
        if args.recursive:
            for p, s in fs.walk(path):
                print(_fmt(p, s, fs))
        elif st.is_dir:
            for name, s in fs.scandir(path):
                print(_fmt(path.rstrip("/") + "/" + name, s, fs))
        else:
            print(_fmt(path, st, fs))
    return 0


def _cat(args: argparse.Namespace) -> int:
    f, fs = _open_reader(args.image, args.offset)
    with f:
        out = sys.stdout.buffer
        for chunk in fs.iter_read(args.path):
            out.write(chunk)
        out.flush()
    return 0


def _check(args: argparse.Namespace) -> int:
    f, fs = _open_reader(args.image, args.offset)
    with f:
        rep = fs.check()
    for w in rep.warnings:
        print(f"warning: {w}")
    for e in rep.errors:
        print(f"error: {e}")
    print(
        f"{args.image}: RedoxFS {fs.uuid_str} generation {fs.generation}: {rep.nodes} nodes "
        f"({rep.files} files, {rep.dirs} dirs, {rep.symlinks} symlinks), {rep.content_bytes} content bytes, "
        f"{rep.used_blocks} used / {rep.free_blocks} free / {rep.total_blocks} blocks: "
        + ("OK" if rep.ok else f"{len(rep.errors)} error(s)")
    )
    return 0 if rep.ok else 1


def _info(args: argparse.Namespace) -> int:
    f, fs = _open_reader(args.image, args.offset)
    with f:
        print(f"start:      {fs.start} bytes")
        print(f"uuid:       {fs.uuid_str}")
        print(f"size:       {fs.size} bytes ({fs.size // BLOCK_SIZE} blocks)")
        print(f"generation: {fs.generation} (slot {fs.header_slot})")
        print(f"free:       {fs.free_blocks()} blocks")
    return 0


def _size(args: argparse.Namespace) -> int:
    need = size_needed(Manifest.load(args.manifest), ctime=args.ctime)
    print(f"{need} bytes ({-(-need // (1 << 20))} MiB)")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.redoxfs", description="RedoxFS v8 image tool")
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("create", help="write an image from a root manifest")
    c.add_argument("--manifest", required=True)
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--size", required=True, help="filesystem size (e.g. 64M, 1G, bytes, or 'auto')")
    c.add_argument("--offset", type=int, default=0, help="byte offset of the filesystem in the output file")
    c.add_argument("--uuid", help="32 hex digits (default: derived from the manifest)")
    c.add_argument("--ctime", type=int, help="ctime for every node (default: each entry's mtime)")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(fn=_create)

    s = sub.add_parser("size", help="print the smallest size `create` accepts for a manifest")
    s.add_argument("--manifest", required=True)
    s.add_argument("--ctime", type=int)
    s.set_defaults(fn=_size)

    for name, fn, hlp in (("ls", _ls, "list a directory"), ("cat", _cat, "print a file"),
                          ("check", _check, "verify every checksum and invariant"), ("info", _info, "header facts")):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("image")
        if name == "ls":
            p.add_argument("path", nargs="?", default="/")
            p.add_argument("-R", "--recursive", action="store_true")
        elif name == "cat":
            p.add_argument("path")
        p.add_argument("--offset", type=int, default=None, help="byte offset of the filesystem (default: search)")
        p.set_defaults(fn=fn)

    args = ap.parse_args(argv)
    try:
        return int(args.fn(args))
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    run_main(main)
