"""Git dependencies of a Cargo.lock, fetched by the project (never by cargo) and laid out as
cargo directory sources.

Debian's cargo links a libgit2 that cannot fetch at all, and the fetch phase must honour the
mirror directories and verify what it gets anyway, so every `git+URL?...#commit` source of a
Cargo.lock is fetched with `redox_tools.sources.fetch` (pinned to the lock's commit, mirror dirs
first, submodules, `.git` dropped) and each locked crate of that source is found in the
checkout (by name and version, walking its Cargo.toml files) and copied to

    <out>/<repo name>-<hash of the source>/<name>-<version>/    (+ .cargo-checksum.json)
    <out>/sources.json                                         (the index, see below)

Crates that use workspace inheritance (`version.workspace = true`, `x.workspace = true`) get a
normalized Cargo.toml, as `cargo vendor` writes: the values come from the workspace root's
`[workspace.package]` / `[workspace.dependencies]`, paths made relative to the crate. Files
are copied the way `cargo package` lists them: nested packages and `.git` are left out,
symlinks inside the checkout are followed, any leaving it are refused.

`sources.json` = `{"sources": [{"source": "git+URL?branch=b", "git": URL, "ref_kind": "branch",
"ref": "b", "commit": ..., "dir": "<subdir>"}]}`. `read_index(out)` returns them as
`VendoredGitSource`s and `source_replacement_config()` the `[source."git+..."]` tables a cargo
config needs to take the crates from these directories (used by `redox_tools.builders.cargo_build
.cargo_config`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]  # pants: no-infer-dep

from redox_tools.errors import ToolError

INDEX = "sources.json"
_REF_KINDS = ("rev", "branch", "tag")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class GitDependencyError(ToolError):
    """A git dependency that cannot be fetched or does not hold the locked crate."""


@dataclass(frozen=True)
class GitSource:
    """One `source = "git+URL[?rev=|branch=|tag=X]#commit"` of a Cargo.lock."""

    source: str  # "git+URL?query": the key cargo configs use (`[source."git+..."]`)
    url: str
    ref_kind: str  # "rev", "branch", "tag" or "" (the default branch)
    ref: str
    commit: str

    @property
    def repo_name(self) -> str:
        path = urllib.parse.urlparse(self.url).path if "://" in self.url else self.url.split(":", 1)[-1]
        base = os.path.basename(path.rstrip("/"))
        base = base[:-4] if base.endswith(".git") else base
        return re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip("._-") or "git"

    @property
    def dir_name(self) -> str:
        return f"{self.repo_name}-{hashlib.sha256(self.source.encode()).hexdigest()[:12]}"

    def config_table(self) -> Dict[str, str]:
        table = {"git": self.url}
        if self.ref_kind:
            table[self.ref_kind] = self.ref
        return table


def parse_git_source(source: str) -> GitSource:
    """Parse a Cargo.lock `source` of kind git; raises GitDependencyError when malformed."""
    if not source.startswith("git+"):
        raise GitDependencyError(f"{source!r} is not a git source")
    head, sep, commit = source.partition("#")
    if not sep or not _COMMIT_RE.match(commit):
        raise GitDependencyError(f"git source {source!r} has no full commit id after '#'; regenerate Cargo.lock")
    url, _, query = head[4:].partition("?")
    ref_kind, ref = "", ""
    if query:
        params = urllib.parse.parse_qsl(query, keep_blank_values=True)
        known = [(k, v) for k, v in params if k in _REF_KINDS]
        if len(known) != 1:
            raise GitDependencyError(f"git source {source!r}: expected one of ?rev=, ?branch=, ?tag=")
        ref_kind, ref = known[0]
    return GitSource(source=head, url=url, ref_kind=ref_kind, ref=ref, commit=commit)


@dataclass(frozen=True)
class LockedCrate:
    name: str
    version: str

    @property
    def dir_name(self) -> str:
        return f"{self.name}-{self.version}"


def load_cargo_lock(lockfile: str) -> Dict[str, Any]:
    """A Cargo.lock as data; a missing or malformed lock is one line naming the file."""
    try:
        with open(lockfile, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ToolError(f"{lockfile} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ToolError(f"{lockfile}: not a valid Cargo.lock: {e}") from None


def lock_git_sources(lockfile: str) -> Dict[GitSource, List[LockedCrate]]:
    """Every git source of `lockfile` and the crates the lock takes from it (lock order)."""
    data = load_cargo_lock(lockfile)
    out: Dict[GitSource, List[LockedCrate]] = {}
    for p in data.get("package", []) or []:
        src = p.get("source", "")
        if isinstance(src, str) and src.startswith("git+"):
            try:
                gs = parse_git_source(src)
            except GitDependencyError as e:
                raise GitDependencyError(f"{lockfile}: {e}") from None
            out.setdefault(gs, []).append(LockedCrate(str(p.get("name", "")), str(p.get("version", ""))))
    return out


# --------------------------------------------------------------------------------------------
# Finding crates in a checkout and normalizing their manifests


def _load_toml(path: str) -> Dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise GitDependencyError(f"{path}: cannot read: {e}") from None


def _manifests(root: str) -> List[str]:
    """Every Cargo.toml below `root` (sorted walk, `.git` and `target` skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", "target"))
        if "Cargo.toml" in filenames:
            found.append(os.path.join(dirpath, "Cargo.toml"))
    return found


def _workspace_root(manifest: str, checkout: str, data: Mapping[str, Any]) -> Optional[Tuple[str, Dict[str, Any]]]:
    """(dir, parsed manifest) of the workspace root a member manifest belongs to."""
    crate = os.path.dirname(manifest)
    explicit = (data.get("package") or {}).get("workspace")
    if isinstance(explicit, str):
        cand = os.path.normpath(os.path.join(crate, explicit, "Cargo.toml"))
        return (os.path.dirname(cand), _load_toml(cand)) if os.path.isfile(cand) else None
    if "workspace" in data:
        return crate, dict(data)
    d = crate
    checkout = os.path.abspath(checkout)
    while os.path.abspath(d) != checkout:
        d = os.path.dirname(d)
        cand = os.path.join(d, "Cargo.toml")
        if os.path.isfile(cand):
            parsed = _load_toml(cand)
            if "workspace" in parsed:
                return d, parsed
    return None


def _inherits(data: Mapping[str, Any]) -> bool:
    def walk(v: Any) -> bool:
        if isinstance(v, dict):
            return v.get("workspace") is True or any(walk(x) for x in v.values())
        return False

    return walk(data.get("package", {})) or any(walk(t) for t in _dep_tables(data)) or "lints" in data


def _dep_tables(data: Mapping[str, Any]) -> List[Dict[str, Any]]:
    names = ("dependencies", "dev-dependencies", "build-dependencies", "dev_dependencies", "build_dependencies")
    tables = [data[n] for n in names if isinstance(data.get(n), dict)]
    for cfg in (data.get("target") or {}).values():
        if isinstance(cfg, dict):
            tables += [cfg[n] for n in names if isinstance(cfg.get(n), dict)]
    return tables


_PATH_FIELDS = ("readme", "license-file")


def normalize_manifest(manifest: str, checkout: str) -> Optional[Dict[str, Any]]:
    """The manifest with workspace inheritance resolved (and `[workspace]`/`[lints]` dropped), or
    None when it needs no change. Raises GitDependencyError naming the field it cannot resolve."""
    data = _load_toml(manifest)
    if not _inherits(data) and "workspace" not in data:
        return None
    crate = os.path.dirname(manifest)
    ws = _workspace_root(manifest, checkout, data) if _inherits(data) else None
    ws_dir, ws_data = ws if ws else (crate, {})
    ws_table = ws_data.get("workspace") or {}
    ws_pkg = ws_table.get("package") or {}
    ws_deps = ws_table.get("dependencies") or {}
    def rebase(path: str) -> str:
        """A path relative to the workspace root, made relative to the crate."""
        return os.path.relpath(os.path.normpath(os.path.join(ws_dir, path)), crate).replace(os.sep, "/")

    out = {k: v for k, v in data.items() if k not in ("workspace", "lints")}
    pkg = dict(out.get("package") or {})
    pkg.pop("workspace", None)
    for key, value in list(pkg.items()):
        if isinstance(value, dict) and value.get("workspace") is True:
            if key not in ws_pkg:
                raise GitDependencyError(
                    f"{manifest}: `{key}.workspace = true` but the workspace root has no [workspace.package] {key}"
                )
            inherited = ws_pkg[key]
            pkg[key] = rebase(inherited) if key in _PATH_FIELDS and isinstance(inherited, str) else inherited
    out["package"] = pkg

    def resolve_deps(table: Dict[str, Any]) -> Dict[str, Any]:
        res: Dict[str, Any] = {}
        for name, spec in table.items():
            if isinstance(spec, dict) and spec.get("workspace") is True:
                if name not in ws_deps:
                    raise GitDependencyError(
                        f"{manifest}: dependency `{name}` has `workspace = true` but the workspace root has no "
                        f"[workspace.dependencies] {name}"
                    )
                base = ws_deps[name]
                merged: Dict[str, Any] = dict(base) if isinstance(base, dict) else {"version": base}
                if isinstance(merged.get("path"), str):
                    merged["path"] = rebase(merged["path"])
                features = list(merged.get("features", [])) + [f for f in spec.get("features", []) if f not in merged.get("features", [])]
                if features:
                    merged["features"] = features
                for k in ("optional", "default-features", "default_features", "public"):
                    if k in spec:
                        merged[k] = spec[k]
                res[name] = merged
            else:
                res[name] = spec
        return res

    names = ("dependencies", "dev-dependencies", "build-dependencies", "dev_dependencies", "build_dependencies")
    for n in names:
        if isinstance(out.get(n), dict):
            out[n] = resolve_deps(out[n])
    if isinstance(out.get("target"), dict):
        target = {}
        for cfg, tables in out["target"].items():
            if isinstance(tables, dict):
                tables = {k: resolve_deps(v) if k in names and isinstance(v, dict) else v for k, v in tables.items()}
            target[cfg] = tables
        out["target"] = target
    return out


def package_identity(manifest: str, checkout: str) -> Optional[Tuple[str, str]]:
    """(name, version) of the package a Cargo.toml declares (version inherited if need be)."""
    data = _load_toml(manifest)
    pkg = data.get("package")
    if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
        return None
    version = pkg.get("version", "0.0.0")
    if isinstance(version, dict) and version.get("workspace") is True:
        ws = _workspace_root(manifest, checkout, data)
        version = ((ws[1].get("workspace") or {}).get("package") or {}).get("version") if ws else None
    return (pkg["name"], version) if isinstance(version, str) else None


def find_crates(checkout: str) -> Dict[Tuple[str, str], str]:
    """(name, version) -> crate directory for every package in the checkout (first one wins)."""
    found: Dict[Tuple[str, str], str] = {}
    for manifest in _manifests(checkout):
        try:
            ident = package_identity(manifest, checkout)
        except GitDependencyError:
            continue  # an unrelated broken manifest (test data) must not stop the search
        if ident:
            found.setdefault(ident, os.path.dirname(manifest))
    return found


# --------------------------------------------------------------------------------------------
# TOML output (the subset manifests use), deterministic


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _str(k)


def _str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    raise GitDependencyError(f"cannot write TOML value {v!r}")


def dump_manifest(data: Mapping[str, Any]) -> str:
    """TOML text for a manifest: top-level values first, then one `[table]` per table (inner
    tables inline). Key order is kept, so the output is a function of the input."""
    lines = ["# Normalized by redox-pants (workspace inheritance resolved), as cargo vendor does.\n"]
    tables = [(k, v) for k, v in data.items() if isinstance(v, dict)]
    for k, v in data.items():
        if not isinstance(v, dict):
            lines.append(f"{_key(k)} = {_value(v)}\n")
    for k, v in tables:
        lines.append(f"\n[{_key(k)}]\n")
        lines += [f"{_key(ik)} = {_value(iv)}\n" for ik, iv in v.items()]
    return "".join(lines)


# --------------------------------------------------------------------------------------------
# Layout


def _nested_packages(crate: str) -> List[str]:
    return [d for d, _, files in os.walk(crate) if d != crate and "Cargo.toml" in files]


def copy_crate(crate: str, checkout: str, dest: str, manifest_text: Optional[str]) -> None:
    """Copy the crate's files (no `.git`, no nested packages, symlinks followed inside the
    checkout) to `dest` and write `.cargo-checksum.json` (`"package": null`, as cargo vendor
    does for git crates)."""
    checkout_real = os.path.realpath(checkout)
    nested = set(_nested_packages(crate))
    files: Dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(crate, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and os.path.join(dirpath, d) not in nested)
        entries = list(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(entries):
            src = os.path.join(dirpath, name)
            rel = os.path.relpath(src, crate)
            real = os.path.realpath(src)
            if real != checkout_real and not real.startswith(checkout_real + os.sep):
                raise GitDependencyError(f"{rel} in crate {os.path.basename(crate)} links outside the repository ({os.readlink(src)})")
            if os.path.isdir(real):
                for sub_dir, subdirs, subfiles in os.walk(real):
                    subdirs.sort()
                    for f in sorted(subfiles):
                        files[os.path.join(rel, os.path.relpath(os.path.join(sub_dir, f), real))] = os.path.join(sub_dir, f)
            elif os.path.isfile(real):
                files[rel] = real
    if manifest_text is not None:
        files.pop("Cargo.toml", None)
    os.makedirs(dest)
    sums: Dict[str, str] = {}
    for rel, src in sorted(files.items()):
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(src, target)
        os.chmod(target, 0o755 if os.stat(src).st_mode & 0o100 else 0o644)
        sums[rel.replace(os.sep, "/")] = _sha256(target)
    if manifest_text is not None:
        with open(os.path.join(dest, "Cargo.toml"), "w", encoding="utf-8") as fh:
            fh.write(manifest_text)
        sums["Cargo.toml"] = _sha256(os.path.join(dest, "Cargo.toml"))
    with open(os.path.join(dest, ".cargo-checksum.json"), "w", encoding="utf-8") as fh:
        json.dump({"files": dict(sorted(sums.items())), "package": None}, fh, sort_keys=True)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def layout_source(gs: GitSource, crates: Sequence[LockedCrate], checkout: str, dest: str) -> List[str]:
    """Lay out the locked `crates` of one fetched source under `dest`; returns problems (one
    line each) instead of raising, so every missing crate is reported at once."""
    available = find_crates(checkout)
    problems = []
    for c in sorted(set(crates), key=lambda c: (c.name, c.version)):
        crate = available.get((c.name, c.version))
        if crate is None:
            same = sorted(v for (n, v) in available if n == c.name)
            have = f"it has {c.name} {', '.join(same)}" if same else f"no package named {c.name} in it"
            problems.append(f"crate {c.dir_name} is not in {gs.url} at {gs.commit[:12]} ({have})")
            continue
        try:
            norm = normalize_manifest(os.path.join(crate, "Cargo.toml"), checkout)
            copy_crate(crate, checkout, os.path.join(dest, c.dir_name), dump_manifest(norm) if norm is not None else None)
        except GitDependencyError as e:
            problems.append(f"crate {c.dir_name} from {gs.url}: {e}".replace(checkout + "/", ""))
    return problems


# --------------------------------------------------------------------------------------------
# The index, and the cargo config it gives


@dataclass(frozen=True)
class VendoredGitSource:
    source: str  # "git+URL?query"
    url: str
    ref_kind: str
    ref: str
    commit: str
    directory: str  # the directory source holding its crates

    def config_table(self) -> Dict[str, str]:
        return GitSource(self.source, self.url, self.ref_kind, self.ref, self.commit).config_table()


def write_index(out_dir: str, sources: Iterable[GitSource]) -> None:
    entries = [
        {"source": s.source, "git": s.url, "ref_kind": s.ref_kind, "ref": s.ref, "commit": s.commit, "dir": s.dir_name}
        for s in sorted(sources, key=lambda s: s.source)
    ]
    with open(os.path.join(out_dir, INDEX), "w", encoding="utf-8") as fh:
        json.dump({"sources": entries}, fh, indent=1, sort_keys=True)
        fh.write("\n")


def read_index(out_dir: str) -> List[VendoredGitSource]:
    """The git sources vendored in `out_dir` (empty when it has no index)."""
    path = os.path.join(out_dir, INDEX)
    if not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            entries = json.load(fh)["sources"]
        return [
            VendoredGitSource(e["source"], e["git"], e["ref_kind"], e["ref"], e["commit"], os.path.join(out_dir, e["dir"]))
            for e in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ToolError(f"{path}: not a vendored git source index: {e}") from None


def source_replacement_config(sources: Sequence[VendoredGitSource], prefix: str = "redox-pants-git") -> str:
    """`[source."git+URL?..."]` tables (git=, rev=/branch=/tag=, replace-with=) and one directory
    source per vendored git source, as TOML text."""
    parts = []
    for i, s in enumerate(sorted(sources, key=lambda s: s.source)):
        name = f"{prefix}-{i}"
        table = "".join(f"{k} = {_str(v)}\n" for k, v in s.config_table().items())
        parts.append(f"[source.{_str(s.source)}]\n{table}replace-with = {_str(name)}\n\n"
                     f"[source.{_str(name)}]\ndirectory = {_str(s.directory)}\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Fetch + layout


Fetcher = Callable[[GitSource, str], None]  # fetch the source's commit into the (new) directory


def vendor_git_sources(lockfile: str, out_dir: str, fetch: Fetcher, who: str = "") -> List[GitSource]:
    """Fetch every git source of `lockfile` with `fetch` and lay its locked crates out in
    `out_dir` (+ the index). Every failing source and missing crate is collected and reported in
    one GitDependencyError, one line each, each starting with `who`."""
    pre = f"{who}: " if who else ""
    sources = lock_git_sources(lockfile)
    os.makedirs(out_dir, exist_ok=True)
    work = os.path.join(out_dir, ".checkouts")
    stage = os.path.join(out_dir, ".partial")
    for d in (work, stage):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(stage)
    problems: List[str] = []
    checkouts: Dict[Tuple[str, str], str] = {}
    try:
        for gs, crates in sources.items():
            names = ", ".join(sorted({c.name for c in crates}))
            key = (gs.url, gs.commit)
            if key not in checkouts:
                dest = os.path.join(work, f"{len(checkouts)}")
                try:
                    fetch(gs, dest)
                except ToolError as e:
                    problems.append(f"{pre}git dependency {names} ({gs.source}#{gs.commit[:12]}): {e}")
                    continue
                checkouts[key] = dest
            problems += [f"{pre}{p}" for p in layout_source(gs, crates, checkouts[key], os.path.join(stage, gs.dir_name))]
        if problems:  # nothing half-written: the staged layout goes away with the checkouts
            raise GitDependencyError("\n".join(problems))
        for gs in sources:
            final = os.path.join(out_dir, gs.dir_name)
            shutil.rmtree(final, ignore_errors=True)
            os.rename(os.path.join(stage, gs.dir_name), final)
        write_index(out_dir, sources)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(stage, ignore_errors=True)
    return list(sources)
