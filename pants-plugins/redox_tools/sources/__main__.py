"""Command line of the fetch phase.

    python -m redox_tools.sources fetch --lock L --name NAME --dest DIR [--mirror DIR ...]
    python -m redox_tools.sources fetch-all --lock L --dest DIR [--only NAME ...] [--mirror DIR ...]
    python -m redox_tools.sources treehash DIR [--list]
    python -m redox_tools.sources check-vendor --lock Cargo.lock --vendor DIR [--vendor DIR ...]
    python -m redox_tools.sources vendor --crate DIR --out DIR [--git-out DIR --mirror DIR ... --name PKG]
    python -m redox_tools.sources crate-mirror-fingerprint CONFIG.toml

`--lock` defaults to 3rdparty/redox/sources.lock.toml. `fetch` puts the source in DIR;
`fetch-all` in DIR/<name> for each source. Progress goes to stderr; results (one line per
source, `name: sha256:... verified|UNVERIFIED; git tree ok; from ORIGIN`) and tree hashes to
record go to stdout. Any failure: one `error: ...` line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from redox_tools.errors import run_main
from redox_tools.sources import treehash as treehash_mod
from redox_tools.sources.fetch import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, fetch_all, fetch_source
from redox_tools.sources.pins import DEFAULT_LOCK, load_lock
from redox_tools.sources.vendor import cargo_vendor, check_vendor, crate_mirror_fingerprint


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fetch_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock", default=DEFAULT_LOCK, help=f"source lock file (default {DEFAULT_LOCK})")
    p.add_argument("--dest", required=True)
    p.add_argument("--mirror", action="append", default=[], metavar="DIR",
                   help="mirror directory with <name>/ checkouts or <name>.git bare repos (repeatable, tried in order)")
    p.add_argument("--git", default="git")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per git/download step")
    p.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT)
    p.add_argument("--keep-git", action="store_true", help="keep .git directories in the result")
    p.add_argument("--force", action="store_true", help="replace an existing destination")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _print_result(res) -> None:
    print(res.summary())
    for note in res.notes:
        print(f"  {res.name}: {note}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.sources", description="Fetch and verify pinned sources.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("fetch", help="fetch one source into --dest")
    f.add_argument("--name", required=True)
    _fetch_opts(f)

    fa = sub.add_parser("fetch-all", help="fetch every source into --dest/<name>")
    fa.add_argument("--only", action="append", metavar="NAME", help="only these sources (repeatable)")
    _fetch_opts(fa)

    t = sub.add_parser("treehash", help="print the tree hash of a directory")
    t.add_argument("dir")
    t.add_argument("--list", action="store_true")

    cv = sub.add_parser("check-vendor", help="check a vendor dir against a Cargo.lock")
    cv.add_argument("--lock", required=True, help="Cargo.lock")
    cv.add_argument("--vendor", action="append", required=True, metavar="DIR")
    cv.add_argument("--registry-only", action="store_true", help="ignore git packages")

    v = sub.add_parser("vendor", help="cargo vendor --locked --versioned-dirs (network)")
    v.add_argument("--crate", required=True, help="directory with Cargo.toml and Cargo.lock")
    v.add_argument("--out", required=True)
    v.add_argument("--cargo", default="cargo")
    v.add_argument("--git-out", metavar="DIR",
                   help="fetch the lock's git dependencies (never with cargo) into DIR as directory sources")
    v.add_argument("--mirror", action="append", default=[], metavar="DIR",
                   help="mirror directory for git dependencies: <repo name>/ checkouts or <repo name>.git bare repos")
    v.add_argument("--name", default="", help="the package, for messages")
    v.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT)

    fp = sub.add_parser("crate-mirror-fingerprint",
                        help="hash what the local crate mirrors of a cargo config hold (the vendor step's cache key)")
    fp.add_argument("config", help="cargo config.toml")

    args = ap.parse_args(argv)
    if args.cmd == "treehash":
        return treehash_mod.main([args.dir] + (["--list"] if args.list else []))
    if args.cmd == "check-vendor":
        check = check_vendor(args.lock, args.vendor, include_git=not args.registry_only)
        print(f"{args.lock}: all {len(check.found)} locked crates present in {', '.join(args.vendor)}")
        return 0
    if args.cmd == "vendor":
        print(cargo_vendor(args.crate, args.out, cargo=args.cargo, name=args.name, git_out=args.git_out,
                           mirror_dirs=args.mirror, connect_timeout=args.connect_timeout), end="")
        return 0
    if args.cmd == "crate-mirror-fingerprint":
        with open(args.config, encoding="utf-8") as fh:
            print(crate_mirror_fingerprint(fh.read()))
        return 0

    lock = load_lock(args.lock)
    common = dict(
        mirror_dirs=args.mirror, git=args.git, timeout=args.timeout, connect_timeout=args.connect_timeout,
        keep_git=args.keep_git, replace=args.force, log=None if args.quiet else _progress,
    )
    if args.cmd == "fetch":
        _print_result(fetch_source(lock.get(args.name), args.dest, **common))
        return 0
    pins = [lock.get(n) for n in args.only] if args.only else list(lock.sources)
    results = fetch_all(pins, args.dest, **common)
    for res in results:
        _print_result(res)
    unverified = sum(1 for r in results if not r.tree_hash_verified)
    print(f"fetched {len(results)} sources into {args.dest}" + (f"; {unverified} with unverified tree_hash" if unverified else ""))
    return 0


if __name__ == "__main__":
    run_main(main)
