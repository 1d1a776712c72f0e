"""The source lock file `3rdparty/redox/sources.lock.toml`: one pinned upstream source per table.

    python -m redox_tools.sources.pins generate --catalog redox-packages.toml -o sources.lock.toml
    python -m redox_tools.sources.pins update [--lock L] [--only NAME ...] [--bump] [--mirror DIR ...]
    python -m redox_tools.sources.pins show [--lock L]

Format (TOML, written by this module in a fixed order so diffs are reviewable):

    [lock]
    format = 1                      # this module's format version
    generated_from = "..."          # where the pins came from (catalog, build repo rev)
    skipped = ["helix: ..."]        # catalog packages without a pin, and why

    [sources.<name>]                # <name>: [A-Za-z0-9._-]+, the mirror directory name too
    packages = ["base", "redox-initfs"]   # catalog packages built from this source
    git = "https://..."             # git source: URL, `rev` = full commit id (40/64 hex)
    rev = "..."
    branch = "..."                  # optional: what `update --bump` follows (default: HEAD)
    rev_date = "..."                # informational
    git_tree = "<sha1>"             # `git rev-parse <rev>^{tree}` ("" = not known)
    archive = "https://....tar.gz"  # OR an archive source, with:
    archive_sha256 = "<64 hex>"     # or "unverified: ..." (upstream publishes none): builds refuse
                                    # the archive until `update` has downloaded it and recorded its sha256
    strip_components = 1            # leading path components dropped when unpacking
    tree_hash = "sha256:<hex>"      # redox_tools.sources.treehash of the tree after patches,
                                    # or "unverified: ..." when not computed yet (see below)
    snapshot_stale = "no-evidence"  # catalog freshness grade (informational)
    basis = "..."                   # how the rev was chosen (informational)
    submodules = [{ path = "...", url = "...", commit = "<sha>", branch = "..." }]
    patches = [{ file = "patches/<name>/x.patch", origin = "..." }]   # file: relative to the lock
    notes = ["unverified: ..."]     # catalog markers the reviewer must know about

`tree_hash` is either `sha256:<64 lowercase hex>` (verified on every fetch: a mismatch is an
error) or a string starting with `unverified` (the fetcher then verifies `git_tree` only and
prints the computed tree hash to record; `update` writes it). The empty string is rejected:
say which it is.

Library: `SourcePin`, `Submodule`, `PatchRef`, `Lock`, `load_lock(path) -> Lock`,
`parse_lock(data, path, base_dir) -> Lock`, `dump_lock(lock) -> str`, `write_lock(lock, path)`,
`lock_from_catalog(catalog, catalog_name) -> Lock`.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]  # pants: no-infer-dep

from redox_tools.errors import ToolError, run_main
from redox_tools.sources.treehash import is_tree_hash

LOCK_FORMAT = 1
DEFAULT_LOCK = os.path.join("3rdparty", "redox", "sources.lock.toml")
UNVERIFIED_TREE_HASH = "unverified: compute with update"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_REV_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_BRANCH_SUFFIX_RE = re.compile(r"^(?P<url>\S+)\s+\(branch (?P<branch>[^)]+)\)$")


class LockError(ToolError):
    """A lock file entry that is malformed or inconsistent."""


@dataclass(frozen=True)
class Submodule:
    path: str
    url: str
    commit: str
    branch: str = ""


@dataclass(frozen=True)
class PatchRef:
    file: str  # as written in the lock (relative to the lock's directory, or absolute)
    origin: str = ""  # where it comes from upstream: `<git url>@<rev>:<path>` (update fetches it from there)
    base_dir: str = ""  # the lock's directory, to resolve `file`

    @property
    def path(self) -> str:
        return os.path.normpath(os.path.join(self.base_dir, self.file)) if self.base_dir else self.file


@dataclass(frozen=True)
class SourcePin:
    name: str
    git: str = ""
    archive_url: str = ""
    rev: str = ""
    tree_hash: str = UNVERIFIED_TREE_HASH
    git_tree: str = ""
    archive_sha256: str = ""
    strip_components: int = 1
    branch: str = ""
    submodules: Tuple[Submodule, ...] = ()
    patches: Tuple[PatchRef, ...] = ()
    packages: Tuple[str, ...] = ()
    snapshot_stale: str = ""
    notes: Tuple[str, ...] = ()
    rev_date: str = ""
    basis: str = ""

    @property
    def url(self) -> str:
        return self.git or self.archive_url

    @property
    def kind(self) -> str:
        return "git" if self.git else "archive"

    @property
    def archive_sha256_verified(self) -> bool:
        return bool(_SHA256_RE.match(self.archive_sha256))

    @property
    def tree_hash_verified(self) -> bool:
        """True when the lock holds a real tree hash (not an `unverified...` marker)."""
        return is_tree_hash(self.tree_hash)

    def validate(self) -> None:
        """Raise `LockError` naming this entry when a field is malformed."""
        where = f"[sources.{self.name}]"
        if not _NAME_RE.match(self.name):
            raise LockError(f"{where}: the name must match [A-Za-z0-9][A-Za-z0-9._-]* (it names mirror directories)")
        if bool(self.git) == bool(self.archive_url):
            raise LockError(f"{where}: give exactly one of `git` (with `rev`) or `archive` (with `archive_sha256`)")
        if self.git:
            if not _REV_RE.match(self.rev):
                raise LockError(
                    f"{where}: rev must be a full commit id (40 or 64 lowercase hex digits), got {self.rev!r}; "
                    "resolve a branch or tag with `python -m redox_tools.sources.pins update --bump`"
                )
            if self.git_tree and not _REV_RE.match(self.git_tree):
                raise LockError(f"{where}: git_tree must be a tree id (40/64 hex) or \"\", got {self.git_tree!r}")
        else:
            if not (_SHA256_RE.match(self.archive_sha256) or self.archive_sha256.startswith("unverified")):
                raise LockError(
                    f"{where}: archive_sha256 must be 64 lowercase hex digits or start with \"unverified\" "
                    f"(not recorded yet: builds refuse it, `update` records it), got {self.archive_sha256!r}"
                )
            if self.submodules:
                raise LockError(f"{where}: an archive source cannot have submodules")
            if self.rev or self.git_tree:
                raise LockError(f"{where}: `rev`/`git_tree` belong to git sources, not archives")
        if self.strip_components < 0:
            raise LockError(f"{where}: strip_components must be >= 0")
        if not (is_tree_hash(self.tree_hash) or self.tree_hash.startswith("unverified")):
            raise LockError(
                f"{where}: tree_hash must be \"sha256:<64 lowercase hex>\" or start with \"unverified\" "
                f"(e.g. {UNVERIFIED_TREE_HASH!r}), got {self.tree_hash!r}"
            )
        seen = set()
        for sm in self.submodules:
            if not sm.path or os.path.isabs(sm.path) or ".." in sm.path.split("/") or sm.path != sm.path.strip("/"):
                raise LockError(f"{where}: submodule path {sm.path!r} must be relative, without '..' or slashes at the ends")
            if sm.path in seen:
                raise LockError(f"{where}: submodule path {sm.path!r} listed twice")
            seen.add(sm.path)
            if not sm.url:
                raise LockError(f"{where}: submodule {sm.path!r} has no url")
            if not _REV_RE.match(sm.commit):
                raise LockError(f"{where}: submodule {sm.path!r} commit must be 40/64 hex, got {sm.commit!r}")
        for p in self.patches:
            if not p.file:
                raise LockError(f"{where}: a patch entry has no `file`")
            _check_patch_inside(where, p)


def _repo_root(base_dir: str) -> str:
    """The repository holding the lock: the nearest ancestor with pants.toml or .git (in a
    sandbox without either, the lock's own directory)."""
    start = d = os.path.realpath(base_dir)
    while True:
        if os.path.exists(os.path.join(d, "pants.toml")) or os.path.exists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return start
        d = parent


def _check_patch_inside(where: str, p: "PatchRef") -> None:
    """A patch file is read and applied: it must be a relative path inside the repository
    (also after resolving symlinks), never e.g. `../../../../etc/hostname`."""
    if os.path.isabs(p.file):
        raise LockError(f"{where}: patch file {p.file!r} is an absolute path; give it relative to the lock, inside the repository")
    if not p.base_dir:
        if ".." in p.file.replace("\\", "/").split("/"):
            raise LockError(f"{where}: patch file {p.file!r} climbs out with '..'; keep patches inside the repository")
        return
    root = _repo_root(p.base_dir)
    real = os.path.realpath(p.path)
    if os.path.commonpath([root, real]) != root:
        raise LockError(f"{where}: patch file {p.file!r} lies outside the repository ({root}); refusing to read it")


@dataclass(frozen=True)
class Lock:
    sources: Tuple[SourcePin, ...]
    generated_from: str = ""
    skipped: Tuple[str, ...] = ()
    path: str = ""

    def get(self, name: str) -> SourcePin:
        for pin in self.sources:
            if pin.name == name:
                return pin
        known = ", ".join(p.name for p in self.sources)
        where = self.path or "the lock"
        raise LockError(f"no source named {name!r} in {where} (known: {known})")

    def replace(self, pin: SourcePin) -> "Lock":
        return dataclasses.replace(self, sources=tuple(pin if p.name == pin.name else p for p in self.sources))


# --------------------------------------------------------------------------------------------
# Loading


_SOURCE_KEYS = {
    "packages", "git", "rev", "branch", "rev_date", "git_tree", "archive", "archive_sha256",
    "strip_components", "tree_hash", "snapshot_stale", "basis", "submodules", "patches", "notes",
}
_SUBMODULE_KEYS = {"path", "url", "commit", "branch"}
_PATCH_KEYS = {"file", "origin"}


def _str(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise LockError(f"{where}: `{key}` must be a string, got {type(value).__name__}")
    return value


def _str_list(where: str, key: str, value: Any) -> Tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LockError(f"{where}: `{key}` must be a list of strings")
    return tuple(value)


def _parse_source(name: str, t: Any, base_dir: str) -> SourcePin:
    where = f"[sources.{name}]"
    if not isinstance(t, dict):
        raise LockError(f"{where}: must be a table")
    unknown = sorted(set(t) - _SOURCE_KEYS)
    if unknown:
        raise LockError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_SOURCE_KEYS))})")
    if "tree_hash" not in t:
        raise LockError(f"{where}: `tree_hash` is missing; write {UNVERIFIED_TREE_HASH!r} until it is computed")
    subs = []
    raw_subs = t.get("submodules", [])
    if not isinstance(raw_subs, list):
        raise LockError(f"{where}: `submodules` must be a list of tables")
    for i, s in enumerate(raw_subs):
        if not isinstance(s, dict):
            raise LockError(f"{where}: submodules[{i}] must be a table {{path, url, commit}}")
        bad = sorted(set(s) - _SUBMODULE_KEYS)
        if bad:
            raise LockError(f"{where}: submodules[{i}]: unknown key(s) {', '.join(bad)}")
        subs.append(
            Submodule(
                path=_str(where, f"submodules[{i}].path", s.get("path", "")),
                url=_str(where, f"submodules[{i}].url", s.get("url", "")),
                commit=_str(where, f"submodules[{i}].commit", s.get("commit", "")),
                branch=_str(where, f"submodules[{i}].branch", s.get("branch", "")),
            )
        )
    patches = []
    raw_patches = t.get("patches", [])
    if not isinstance(raw_patches, list):
        raise LockError(f"{where}: `patches` must be a list")
    for i, p in enumerate(raw_patches):
        if isinstance(p, str):
            patches.append(PatchRef(file=p, base_dir=base_dir))
            continue
        if not isinstance(p, dict):
            raise LockError(f"{where}: patches[{i}] must be a file name or a table {{file, origin}}")
        bad = sorted(set(p) - _PATCH_KEYS)
        if bad:
            raise LockError(f"{where}: patches[{i}]: unknown key(s) {', '.join(bad)}")
        patches.append(
            PatchRef(
                file=_str(where, f"patches[{i}].file", p.get("file", "")),
                origin=_str(where, f"patches[{i}].origin", p.get("origin", "")),
                base_dir=base_dir,
            )
        )
    strip = t.get("strip_components", 1)
    if not isinstance(strip, int) or isinstance(strip, bool):
        raise LockError(f"{where}: `strip_components` must be an integer")
    pin = SourcePin(
        name=name,
        git=_str(where, "git", t.get("git", "")),
        archive_url=_str(where, "archive", t.get("archive", "")),
        rev=_str(where, "rev", t.get("rev", "")),
        tree_hash=_str(where, "tree_hash", t["tree_hash"]),
        git_tree=_str(where, "git_tree", t.get("git_tree", "")),
        archive_sha256=_str(where, "archive_sha256", t.get("archive_sha256", "")),
        strip_components=strip,
        branch=_str(where, "branch", t.get("branch", "")),
        submodules=tuple(subs),
        patches=tuple(patches),
        packages=_str_list(where, "packages", t.get("packages", [])),
        snapshot_stale=_str(where, "snapshot_stale", t.get("snapshot_stale", "")),
        notes=_str_list(where, "notes", t.get("notes", [])),
        rev_date=_str(where, "rev_date", t.get("rev_date", "")),
        basis=_str(where, "basis", t.get("basis", "")),
    )
    pin.validate()
    return pin


def parse_lock(data: Mapping[str, Any], path: str = "", base_dir: str = "") -> Lock:
    """Validate parsed TOML data; every error names the lock file and the entry at fault."""
    prefix = f"{path}: " if path else ""
    try:
        head = data.get("lock")
        if not isinstance(head, dict):
            raise LockError("missing [lock] table (format = 1)")
        if head.get("format") != LOCK_FORMAT:
            raise LockError(f"[lock] format must be {LOCK_FORMAT}, got {head.get('format')!r}")
        unknown_top = sorted(set(data) - {"lock", "sources"})
        if unknown_top:
            raise LockError(f"unknown top-level table(s) {', '.join(unknown_top)}")
        sources = data.get("sources", {})
        if not isinstance(sources, dict):
            raise LockError("[sources] must be a table of tables")
        pins = tuple(_parse_source(name, t, base_dir) for name, t in sources.items())
        return Lock(
            sources=pins,
            generated_from=_str("[lock]", "generated_from", head.get("generated_from", "")),
            skipped=_str_list("[lock]", "skipped", head.get("skipped", [])),
            path=path,
        )
    except LockError as e:
        raise LockError(f"{prefix}{e}") from None


def load_lock(path: str) -> Lock:
    """Read and validate a lock file; patch paths resolve against its directory."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise LockError(
            f"source lock {path} not found; generate it with "
            "`python -m redox_tools.sources.pins generate --catalog redox-packages.toml -o " + path + "`"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise LockError(f"{path}: not valid TOML: {e}") from None
    return parse_lock(data, path=path, base_dir=os.path.dirname(os.path.abspath(path)))


# --------------------------------------------------------------------------------------------
# Writing (a small TOML emitter: fixed key order, one table per source, one array item a line)


def _q(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _inline(d: Sequence[Tuple[str, str]]) -> str:
    return "{ " + ", ".join(f"{k} = {_q(v)}" for k, v in d) + " }"


def _array(items: Sequence[str]) -> str:
    if not items:
        return "[]"
    return "[\n" + "".join(f"  {it},\n" for it in items) + "]"


def dump_lock(lock: Lock) -> str:
    """The lock as TOML text (stable: sources sorted by name, keys in a fixed order)."""
    lines = [
        "# Pinned upstream sources of the Redox build (redox_tools.sources.pins; format in its docstring).",
        "# Only the fetch phase reads the URLs; everything after it works offline from these pins.",
        "#",
        "# tree_hash = \"unverified: ...\" means the tree hash was not computed yet: the fetcher then",
        "# checks git_tree (`git rev-parse <rev>^{tree}`) and prints the tree hash to record here;",
        "# `python -m redox_tools.sources.pins update` on a connected machine writes it.",
        "# Offline: copy a checkout to <mirror>/<name> or a bare mirror to <mirror>/<name>.git",
        "# (submodules: <mirror>/<repo name>) and pass the mirror directory to the fetcher.",
        "",
        "[lock]",
        f"format = {LOCK_FORMAT}",
        f"generated_from = {_q(lock.generated_from)}",
        f"skipped = {_array([_q(s) for s in lock.skipped])}",
    ]
    for pin in sorted(lock.sources, key=lambda p: p.name):
        lines += ["", f"[sources.{pin.name}]"]
        lines.append(f"packages = [{', '.join(_q(p) for p in pin.packages)}]")
        if pin.git:
            lines.append(f"git = {_q(pin.git)}")
            lines.append(f"rev = {_q(pin.rev)}")
            if pin.branch:
                lines.append(f"branch = {_q(pin.branch)}")
            if pin.rev_date:
                lines.append(f"rev_date = {_q(pin.rev_date)}")
            lines.append(f"git_tree = {_q(pin.git_tree)}")
        else:
            lines.append(f"archive = {_q(pin.archive_url)}")
            lines.append(f"archive_sha256 = {_q(pin.archive_sha256)}")
            lines.append(f"strip_components = {pin.strip_components}")
        lines.append(f"tree_hash = {_q(pin.tree_hash)}")
        if pin.snapshot_stale:
            lines.append(f"snapshot_stale = {_q(pin.snapshot_stale)}")
        if pin.basis:
            lines.append(f"basis = {_q(pin.basis)}")
        subs = []
        for sm in pin.submodules:
            kv = [("path", sm.path), ("url", sm.url), ("commit", sm.commit)]
            if sm.branch:
                kv.append(("branch", sm.branch))
            subs.append(_inline(kv))
        lines.append(f"submodules = {_array(subs)}")
        pats = []
        for p in pin.patches:
            kv = [("file", p.file)]
            if p.origin:
                kv.append(("origin", p.origin))
            pats.append(_inline(kv))
        lines.append(f"patches = {_array(pats)}")
        lines.append(f"notes = {_array([_q(n) for n in pin.notes])}")
    return "\n".join(lines) + "\n"


def write_lock(lock: Lock, path: str) -> None:
    """Write atomically (temp file + rename), after checking the text parses back to `lock`."""
    text = dump_lock(lock)
    base_dir = os.path.dirname(os.path.abspath(path))
    back = parse_lock(tomllib.loads(text), path=path, base_dir=base_dir)
    if dump_lock(back) != text:
        raise LockError(f"{path}: internal error: the written lock does not read back identically")
    os.makedirs(base_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sources.lock.", dir=base_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------
# From the package catalog


def split_submodule_url(url: str) -> Tuple[str, str]:
    """`"https://x/y.git (branch master)"` -> `("https://x/y.git", "master")`."""
    m = _BRANCH_SUFFIX_RE.match(url.strip())
    if m:
        return m.group("url"), m.group("branch")
    return url.strip(), ""


def _catalog_notes(p: Mapping[str, Any]) -> List[str]:
    notes: List[str] = []
    for item in p.get("unverified", []) or []:
        notes.append(item if item.startswith("unverified") else "unverified: " + item)
    if p.get("pin_rev_recommended"):
        notes.append(
            f"pin_rev_recommended {p['pin_rev_recommended']}: {p.get('pin_rev_recommended_note', '')}".rstrip(": ")
        )
    if p.get("pin_rev_alternative"):
        tree = p.get("pin_rev_alternative_tree", "")
        notes.append(
            f"pin_rev_alternative {p['pin_rev_alternative']}"
            + (f" (git tree {tree})" if tree else "")
            + f": {p.get('pin_rev_alternative_note', '')}"
        )
    if p.get("upstream_head_seen"):
        notes.append(f"upstream head seen: {p['upstream_head_seen']}")
    if p.get("stale_evidence") and p.get("snapshot_stale") not in ("no", "no-evidence"):
        notes.append(f"stale evidence: {p['stale_evidence']}")
    if p.get("submodules_note"):
        notes.append(f"submodules: {p['submodules_note']}")
    return notes


def lock_from_catalog(catalog: Mapping[str, Any], catalog_name: str = "redox-packages.toml") -> Lock:
    """One source per distinct (git URL, pin_rev) among `[packages.*]` with both set.

    Packages sharing a repository and rev (base and redox-initfs) share one source named after
    the first of them in catalog order. Catalog packages without a git URL or pin_rev are listed
    in `[lock] skipped` with the reason; one with only a `pin_rev_candidate` is pinned to it, its
    basis saying it is unverified.
    """
    cat = catalog.get("catalog", {})
    build_repo = cat.get("build_repo", "")
    build_rev = cat.get("build_repo_rev", "")
    packages = catalog.get("packages")
    if not isinstance(packages, dict) or not packages:
        raise LockError(f"{catalog_name}: no [packages.*] tables")
    by_key: Dict[Tuple[str, str], SourcePin] = {}
    skipped: List[str] = []
    for name, p in packages.items():
        git = p.get("upstream_git", "")
        rev = p.get("pin_rev", "")
        candidate = p.get("pin_rev_candidate", "") if git and not rev else ""
        if candidate:
            # No examined rev (helix): pin the candidate, visibly unverified, rather than leave a
            # package without a source.
            rev = candidate
            p = dict(
                p,
                pin_basis=(
                    "unverified: no pin_rev in the catalog (source not examined); this is its pin_rev_candidate: "
                    + str(p.get("pin_rev_candidate_note", ""))
                ),
            )
        if not git or not rev:
            why = "no upstream_git" if not git else "no pin_rev"
            extra = []
            if p.get("recipe_branch"):
                extra.append(f"recipe tracks branch {p['recipe_branch']} of {git}")
            if p.get("pin_rev_candidate"):
                extra.append(f"candidate rev {p['pin_rev_candidate']} ({p.get('pin_rev_candidate_note', '')})")
            if p.get("snapshot_stale"):
                extra.append(f"snapshot_stale = {p['snapshot_stale']}")
            skipped.append(f"{name}: {why}" + ("; " + "; ".join(extra) if extra else ""))
            continue
        key = (git, rev)
        if key in by_key:
            prev = by_key[key]
            by_key[key] = dataclasses.replace(
                prev,
                packages=prev.packages + (name,),
                notes=prev.notes + tuple(f"{name}: {n}" for n in _catalog_notes(p) if n not in prev.notes),
            )
            continue
        subs = []
        for s in p.get("submodules", []) or []:
            url, branch = split_submodule_url(s["url"])
            subs.append(Submodule(path=s["path"], url=url, commit=s["commit"], branch=branch))
        recipe_dir = os.path.dirname(p.get("recipe", ""))
        patches = tuple(
            PatchRef(
                file=f"patches/{name}/{f}",
                origin=f"{build_repo}@{build_rev}:{recipe_dir}/{f}" if build_repo else "",
            )
            for f in p.get("patches", []) or []
        )
        pin = SourcePin(
            name=name,
            git=git,
            rev=rev,
            branch=p.get("recipe_branch", "") or "",
            rev_date=p.get("pin_rev_date", "") or "",
            git_tree=p.get("pin_tree", "") or "",
            tree_hash=UNVERIFIED_TREE_HASH,
            snapshot_stale=p.get("snapshot_stale", "") or "",
            basis=p.get("pin_basis", "") or "",
            submodules=tuple(subs),
            patches=patches,
            packages=(name,),
            notes=tuple(_catalog_notes(p)),
        )
        try:
            pin.validate()
        except LockError as e:
            raise LockError(f"{catalog_name}: [packages.{name}]: {e}") from None
        by_key[key] = pin
    gen = f"{catalog_name} (schema {cat.get('schema_version', '?')}); build repo {build_repo} @ {build_rev}"
    return Lock(sources=tuple(by_key.values()), generated_from=gen, skipped=tuple(skipped))


def load_catalog(path: str) -> Dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise LockError(f"catalog {path} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise LockError(f"{path}: not valid TOML: {e}") from None


# --------------------------------------------------------------------------------------------
# Command line


def _cmd_generate(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    lock = lock_from_catalog(catalog, os.path.basename(args.catalog))
    if args.output == "-":
        sys.stdout.write(dump_lock(lock))
    else:
        write_lock(lock, args.output)
        print(f"wrote {args.output}: {len(lock.sources)} sources, {len(lock.skipped)} skipped", file=sys.stderr)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    lock = load_lock(args.lock)
    for pin in sorted(lock.sources, key=lambda p: p.name):
        state = "verified" if pin.tree_hash_verified else "UNVERIFIED"
        ref = pin.rev[:12] if pin.git else pin.archive_sha256[:12]
        extra = f" +{len(pin.submodules)} submodules" if pin.submodules else ""
        extra += f" +{len(pin.patches)} patches" if pin.patches else ""
        print(f"{pin.name:14} {ref}  tree_hash {state:10} {pin.url}{extra}")
    return 0


def _cmd_update(args: argparse.Namespace) -> int:
    from redox_tools.sources.fetch import update_pins  # fetch imports this module

    lock = load_lock(args.lock)
    names = args.only or None
    new_lock, lines = update_pins(
        lock,
        names=names,
        bump=args.bump,
        mirror_dirs=tuple(args.mirror or ()),
        git=args.git,
        timeout=args.timeout,
        work_dir=args.work_dir,
        on_progress=lambda s: print(s, file=sys.stderr),
        on_updated=lambda lk: write_lock(lk, args.lock),
    )
    for line in lines:
        print(line)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.sources.pins", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write the lock from the package catalog")
    g.add_argument("--catalog", required=True)
    g.add_argument("-o", "--output", default=DEFAULT_LOCK, help="lock file to write ('-' = stdout)")
    s = sub.add_parser("show", help="one line per pinned source")
    s.add_argument("--lock", default=DEFAULT_LOCK)
    u = sub.add_parser("update", help="fetch pins (connected machine or mirror) and record their tree hashes")
    u.add_argument("--lock", default=DEFAULT_LOCK)
    u.add_argument("--only", action="append", metavar="NAME", help="only this source (repeatable)")
    u.add_argument("--bump", action="store_true", help="move rev to the head of `branch` (git ls-remote) first")
    u.add_argument("--mirror", action="append", metavar="DIR", help="mirror directory tried before the network")
    u.add_argument("--git", default="git")
    u.add_argument("--timeout", type=float, default=900.0, help="seconds per git/download step")
    u.add_argument("--work-dir", default=None, help="where checkouts are made (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    return {"generate": _cmd_generate, "show": _cmd_show, "update": _cmd_update}[args.cmd](args)


if __name__ == "__main__":
    run_main(main)
