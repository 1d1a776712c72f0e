"""Upstream redoxfs as a judge: listings of a RedoxFS image, from upstream's library and ours.

A listing maps each absolute path ("/" = the root) to a `Listed` (kind, mode, uid, gid, size,
sha256 of a file's content, a symlink's target). Three sources give the same shape:

    upstream_listing(image, offset=None, tool=...)  # packages/host/redoxfs-list (upstream's library)
    reader_listing(image, offset=None)              # redox_tools.redoxfs.reader (ours)
    manifest_listing(manifest)                      # what a root manifest promises

`compare(a, b, names)` lists the differences in words (empty: identical). Directory sizes are
left out of the comparison with a manifest (a manifest does not say them).

    python -m redox_tools.redoxfs.upstream IMAGE [--offset BYTES] [--tool PATH] [--manifest M.json]

prints both listings' differences (or "identical") and exits 1 when they differ.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

from redox_tools.errors import ToolError, run_main
from redox_tools.manifest import DIR, FILE, SYMLINK, Manifest

# Where `./pants package packages/host/redoxfs-list` puts the tool (and a test's
# runtime_package_dependencies, relative to its sandbox).
TOOL_REL = "packages.host.redoxfs-list/redoxfs-list/bin/redoxfs-list"


@dataclass(frozen=True)
class Listed:
    kind: str
    mode: int
    uid: int
    gid: int
    size: Optional[int]  # None: not compared (a directory described by a manifest)
    sha256: Optional[str] = None
    target: Optional[str] = None


Listing = Dict[str, Listed]


class UpstreamRefused(ToolError):
    """Upstream's library refused the image (its message is the error's text)."""


def find_tool(explicit: Optional[str] = None) -> str:
    """The redoxfs-list binary: `explicit`, $REDOXFS_LIST, the sandbox copy or dist/."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    for cand in (explicit, os.environ.get("REDOXFS_LIST"), TOOL_REL, os.path.join(root, "dist", TOOL_REL)):
        if cand and os.path.isfile(cand):
            return os.path.abspath(cand)
    raise ToolError(
        f"redoxfs-list not found (looked for $REDOXFS_LIST, ./{TOOL_REL}, dist/{TOOL_REL}); "
        "build it with ./pants package packages/host/redoxfs-list"
    )


def upstream_listing(image: str, offset: Optional[int] = None, *, tool: Optional[str] = None) -> Listing:
    cmd = [find_tool(tool), image] + (["--offset", str(offset)] if offset is not None else [])
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if res.returncode == 1:
        raise UpstreamRefused(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "refused (no message)")
    if res.returncode != 0:
        raise ToolError(f"redoxfs-list {image}: exit {res.returncode}: {res.stderr.strip()}")
    out: Listing = {}
    for line in res.stdout.splitlines():
        d = json.loads(line)
        out[d["path"]] = Listed(d["kind"], d["mode"], d["uid"], d["gid"], d["size"], d["sha256"], d["target"])
    return out


def reader_listing(image: str, offset: Optional[int] = None) -> Listing:
    from redox_tools.redoxfs.reader import RedoxFSReader

    out: Listing = {}
    with open(image, "rb") as f:
        fs = RedoxFSReader(f, 0, scan=True) if offset is None else RedoxFSReader(f, offset)
        for path, st in fs.walk("/"):
            sha = target = None
            if st.is_file:
                h = hashlib.sha256()
                for chunk in fs.iter_read(path):
                    h.update(chunk)
                sha = h.hexdigest()
            elif st.is_symlink:
                target = fs.readlink(path)
            kind = st.kind if st.kind in (FILE, DIR, SYMLINK) else "other"
            out[path] = Listed(kind, st.perm, st.uid, st.gid, st.size, sha, target)
    return out


def manifest_listing(manifest: Manifest, *, root_mode: int = 0o755) -> Listing:
    out: Listing = {"/": Listed(DIR, root_mode, 0, 0, None)}
    for e in manifest:
        if e.kind == FILE:
            out["/" + e.path] = Listed(FILE, e.mode, e.uid, e.gid, e.size, e.sha256)
        elif e.kind == SYMLINK:
            t = e.target or ""
            out["/" + e.path] = Listed(SYMLINK, e.mode, e.uid, e.gid, len(t.encode()), target=t)
        else:
            out["/" + e.path] = Listed(DIR, e.mode, e.uid, e.gid, None)
    return out


def without_dir_sizes(listing: Listing) -> Listing:
    return {p: (replace(v, size=None) if v.kind == DIR else v) for p, v in listing.items()}


def compare(a: Listing, b: Listing, names: Tuple[str, str] = ("a", "b"), limit: int = 20) -> List[str]:
    """Differences between two listings, one line each (at most `limit` + a count)."""
    diffs: List[str] = []
    for p in sorted(set(a) | set(b)):
        x, y = a.get(p), b.get(p)
        if x is None:
            diffs.append(f"{p}: only in {names[1]} ({y})")
        elif y is None:
            diffs.append(f"{p}: only in {names[0]} ({x})")
        elif x != y:
            fields = [f"{k} {getattr(x, k)!r} vs {getattr(y, k)!r}" for k in x.__dataclass_fields__
                      if getattr(x, k) != getattr(y, k)]
            diffs.append(f"{p}: {', '.join(fields)} ({names[0]} vs {names[1]})")
    if len(diffs) > limit:
        diffs = diffs[:limit] + [f"... and {len(diffs) - limit} more"]
    return diffs


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.redoxfs.upstream",
                                 description="compare a RedoxFS image as upstream redoxfs and our reader see it")
    ap.add_argument("image")
    ap.add_argument("--offset", type=int, default=None, help="byte offset of the filesystem (default: scan)")
    ap.add_argument("--tool", help="path of redoxfs-list (default: $REDOXFS_LIST or dist/)")
    ap.add_argument("--manifest", help="also compare with this root manifest (JSON)")
    args = ap.parse_args(argv)
    up = upstream_listing(args.image, args.offset, tool=args.tool)
    ours = reader_listing(args.image, args.offset)
    diffs = compare(up, ours, ("upstream", "reader"))
    if args.manifest:
        diffs += compare(without_dir_sizes(up), manifest_listing(Manifest.load(args.manifest)),
                         ("upstream", "manifest"))
    for d in diffs:
        print(d)
    if not diffs:
        print(f"{args.image}: identical ({len(up)} nodes)")
    return 1 if diffs else 0


if __name__ == "__main__":
    run_main(main)
