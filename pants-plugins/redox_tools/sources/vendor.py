"""Crates for offline builds: `cargo vendor` (network step) and a check that a vendor directory
holds every crate a Cargo.lock pins (offline).

    cargo_vendor(crate_dir, out_dir, *, cargo="cargo", env=None, timeout=1800, name="",
                 git_out=None, mirror_dirs=()) -> str
        with `git_out`: first fetches every git source of the lock with the project's fetcher
        into `git_out` as directory sources (`redox_tools.sources.cargo_git`; cargo never
        fetches git); checks a local crates.io mirror configured in $CARGO_HOME/config.toml
        (`local-registry` or `directory`) against the lock's checksums, listing every missing
        or differing crate; then runs `cargo vendor --respect-source-config --locked
        --versioned-dirs --manifest-path <crate_dir>/Cargo.toml <out_dir>` with the git sources
        replaced by those directories; returns the `[source]` config cargo prints; `out_dir`
        exists afterwards even for a crate without dependencies. A network failure becomes
        `VendorUnreachable` (one line naming the package and what to do).
    crate_mirror_fingerprint(config_text) -> str
        a hash of what the local mirrors a cargo config names hold (the vendor step's cache key).
    check_vendor(lockfile, vendor_dirs, *, include_git=True) -> VendorCheck
        every `[[package]]` with a registry (and, by default, git) source must be in one of the
        vendor dirs: a directory whose Cargo.toml has that package name and version (so both the
        `--versioned-dirs` layout `<name>-<version>/` and cargo's default `<name>/` match);
        when the lock has a checksum and the vendored `.cargo-checksum.json` has a `package`
        checksum they must agree. Raises `VendorIncomplete` listing every missing or differing
        crate and the fix.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]  # pants: no-infer-dep

from redox_tools.errors import ToolError
from redox_tools.sources import cargo_git

_NET_PATTERNS = (
    "failed to download",
    "failed to get",
    "failed to load source",
    "failed to fetch",
    "failed to update",
    "unable to update",
    "network failure",
    "spurious network error",
    "could not resolve",
    "couldn't resolve",
    "failed to connect",
    "connection refused",
    "timed out",
    "download of config.json failed",
    "failed to query replaced source registry",
    "[6] couldn't resolve host name",
    "[7] couldn't connect to server",
)


class VendorUnreachable(ToolError):
    """`cargo vendor` could not reach crates.io or a git dependency."""


class VendorIncomplete(ToolError):
    """A vendor directory that lacks (or has different) crates the lock pins."""


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    source: str  # "registry+...", "git+...", "sparse+..."
    checksum: str = ""

    @property
    def dir_name(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def kind(self) -> str:
        return "git" if self.source.startswith("git+") else "registry"


@dataclass
class VendorCheck:
    found: List[LockedPackage] = field(default_factory=list)
    missing: List[LockedPackage] = field(default_factory=list)
    mismatched: List[Tuple[LockedPackage, str]] = field(default_factory=list)  # (pkg, vendored checksum)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


def read_lock_packages(lockfile: str) -> List[LockedPackage]:
    """The packages of a Cargo.lock that come from a registry or git (path/workspace ones skipped)."""
    data = cargo_git.load_cargo_lock(lockfile)
    meta: Mapping[str, str] = data.get("metadata", {}) or {}
    out = []
    for p in data.get("package", []) or []:
        src = p.get("source", "")
        if not src:
            continue
        name, version = p.get("name", ""), p.get("version", "")
        checksum = p.get("checksum", "") or meta.get(f"checksum {name} {version} ({src})", "")
        if checksum == "<none>":
            checksum = ""
        out.append(LockedPackage(name, version, src, checksum))
    return out


def _vendored_name_version(crate_dir: str) -> Tuple[str, str]:
    """(package.name, package.version) from a vendored crate's Cargo.toml, ("", "") if unreadable."""
    try:
        with open(os.path.join(crate_dir, "Cargo.toml"), "rb") as fh:
            pkg = tomllib.load(fh).get("package", {})
    except (OSError, tomllib.TOMLDecodeError):
        return "", ""
    name, version = pkg.get("name", ""), pkg.get("version", "")
    if not isinstance(name, str) or not isinstance(version, str):
        return "", ""
    return name, version


def _vendored_checksum(crate_dir: str) -> Optional[str]:
    try:
        with open(os.path.join(crate_dir, ".cargo-checksum.json"), encoding="utf-8") as fh:
            v = json.load(fh).get("package")
    except (OSError, ValueError, AttributeError):
        return None
    return v if isinstance(v, str) else None


def check_vendor(lockfile: str, vendor_dirs: Sequence[str], *, include_git: bool = True, raise_on_error: bool = True) -> VendorCheck:
    """Check that `vendor_dirs` hold every crate `lockfile` pins (see the module docstring)."""
    for d in vendor_dirs:
        if not os.path.isdir(d):
            raise VendorIncomplete(f"vendor dir {d} does not exist")
    index: Dict[Tuple[str, str], str] = {}
    for d in vendor_dirs:
        for entry in sorted(os.listdir(d)):
            crate_dir = os.path.join(d, entry)
            if os.path.isdir(crate_dir):
                name, version = _vendored_name_version(crate_dir)
                if name and version:
                    index.setdefault((name, version), crate_dir)
    result = VendorCheck()
    for pkg in read_lock_packages(lockfile):
        if pkg.kind == "git" and not include_git:
            continue
        path = index.get((pkg.name, pkg.version))
        if path is None:
            result.missing.append(pkg)
            continue
        vend = _vendored_checksum(path)
        if pkg.checksum and vend and vend != pkg.checksum:
            result.mismatched.append((pkg, vend))
        else:
            result.found.append(pkg)
    if raise_on_error and not result.ok:
        dirs = ", ".join(vendor_dirs)
        parts = []
        if result.missing:
            names = ", ".join(
                p.dir_name + (" (git)" if p.kind == "git" else "") for p in sorted(result.missing, key=lambda p: (p.name, p.version))
            )
            parts.append(f"{len(result.missing)} locked crate(s) missing from {dirs}: {names}")
        if result.mismatched:
            names = ", ".join(f"{p.dir_name} (lock {p.checksum[:12]}, vendored {v[:12]})" for p, v in result.mismatched)
            parts.append(f"{len(result.mismatched)} vendored crate(s) differ from the lock: {names}")
        raise VendorIncomplete(
            f"{lockfile}: " + "; ".join(parts) + "; run `python -m redox_tools.sources vendor --crate <dir with "
            "this Cargo.lock> --out <vendor dir>` (cargo vendor --locked --versioned-dirs) on a connected machine "
            "and copy the vendor dir here"
        )
    return result


def _last_error(text: str) -> str:
    """cargo's first `error:` line and the innermost cause (its last line)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().lower().startswith("caused by")]
    errs = [ln for ln in lines if ln.lower().startswith("error")]
    if not lines:
        return "no message"
    first = errs[0] if errs else lines[0]
    return first if lines[-1] == first else f"{first} / {lines[-1]}"


def cargo_vendor(
    crate_dir: str,
    out_dir: str,
    *,
    cargo: str = "cargo",
    env: Optional[Mapping[str, str]] = None,
    timeout: float = 1800.0,
    name: str = "",
    git_out: Optional[str] = None,
    mirror_dirs: Sequence[str] = (),
    connect_timeout: float = 10.0,
    git: str = "git",
) -> str:
    """Run `cargo vendor --locked --versioned-dirs` for `crate_dir` into `out_dir`; returns the
    `[source]` configuration cargo prints (to put in .cargo/config.toml of the offline build).

    With `git_out`, the lock's git dependencies are first fetched by the project (see
    `redox_tools.sources.cargo_git`, `mirror_dirs` honoured) into `git_out`, and cargo vendor
    reads them from there: cargo never fetches git itself. A crates.io mirror configured in
    $CARGO_HOME/config.toml (`local-registry` or `directory`) is checked against the lock's
    checksums first, every missing or differing crate listed at once."""
    who = name or os.path.basename(os.path.abspath(crate_dir))
    manifest = os.path.join(crate_dir, "Cargo.toml")
    if not os.path.isfile(manifest):
        raise ToolError(f"{who}: cargo vendor: {manifest} not found")
    if not os.path.isfile(os.path.join(crate_dir, "Cargo.lock")):
        raise ToolError(
            f"{who}: cargo vendor: {crate_dir}/Cargo.lock not found; --locked vendors exactly the lock file, "
            "so commit one (cargo generate-lockfile on a connected machine)"
        )
    run_env = dict(os.environ if env is None else env)
    lockfile = os.path.join(crate_dir, "Cargo.lock")
    # Every problem at once: the crate mirror's and each git dependency's, one line each.
    problems: List[str] = []
    try:
        check_crate_mirror(lockfile, cargo_home_config(run_env), who)
    except ToolError as e:
        problems.append(str(e))
    git_crates: List[Tuple[str, str]] = []
    vendored: List[cargo_git.VendoredGitSource] = []
    if git_out is not None:
        try:
            sources = cargo_git.vendor_git_sources(
                lockfile, git_out, git_fetcher(mirror_dirs, git=git, connect_timeout=connect_timeout, timeout=timeout),
                who,
            )
        except ToolError as e:
            problems.append(str(e))
        else:
            vendored = cargo_git.read_index(os.path.abspath(git_out))
            locked = cargo_git.lock_git_sources(lockfile)
            git_crates = sorted({(c.name, c.version) for s in sources for c in locked[s]})
    if problems:
        raise (VendorIncomplete if len(problems) == 1 and problems[0].startswith(f"{who}: the crates.io mirror")
               else ToolError)("\n".join(problems))
    run_env.setdefault("CARGO_NET_RETRY", "1")
    run_env.setdefault("CARGO_HTTP_TIMEOUT", "30")
    run_env.setdefault("CARGO_TERM_COLOR", "never")
    run_env.setdefault("CARGO_NET_GIT_FETCH_WITH_CLI", "false")
    run_env["GIT_TERMINAL_PROMPT"] = "0"
    # --respect-source-config: a crates.io mirror configured in $CARGO_HOME (e.g. a directory
    # source) is used instead of the network; without one it changes nothing.
    cmd = [cargo, "vendor", "--respect-source-config", "--locked", "--versioned-dirs", "--manifest-path", manifest, os.path.abspath(out_dir)]
    config_dir = tempfile.mkdtemp(prefix="redox-vendor-config.")  # not in an output: it holds absolute paths
    try:
        if vendored:
            cfg = os.path.join(config_dir, "git-sources.toml")
            with open(cfg, "w", encoding="utf-8") as fh:
                fh.write(cargo_git.source_replacement_config(vendored))
            cmd[1:1] = ["--config", cfg]  # the lock's git sources come from git_out, never from cargo's git
        p = subprocess.run(cmd, env=run_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except FileNotFoundError:
        raise ToolError(f"{cargo} not found: install cargo or pass its path") from None
    except subprocess.TimeoutExpired:
        raise VendorUnreachable(
            f"{who}: cargo vendor timed out after {timeout:.0f} s; vendor on a connected machine and copy the "
            "vendor dir here"
        ) from None
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        low = err.lower()
        if any(pat in low for pat in _NET_PATTERNS):
            # Git sources are already replaced by directories here: what is unreachable is a registry.
            raise VendorUnreachable(
                f"{who}: crates.io unreachable ({_last_error(err)}); set [redox-sources].cargo_config to a local "
                "registry mirror (README: \"Offline mirrors\"), or vendor on a connected machine"
            )
        raise ToolError(f"{who}: cargo vendor failed: {_last_error(err)}")
    os.makedirs(out_dir, exist_ok=True)  # cargo creates none when there is nothing to vendor
    registry = {(p.name, p.version) for p in read_lock_packages(lockfile) if p.kind == "registry"}
    for crate_name, version in git_crates:  # cargo vendor copied them too; the build takes them from git_out
        if (crate_name, version) not in registry:
            shutil.rmtree(os.path.join(out_dir, f"{crate_name}-{version}"), ignore_errors=True)
    return p.stdout.decode("utf-8", "replace")


def git_fetcher(
    mirror_dirs: Sequence[str], *, git: str = "git", connect_timeout: float = 10.0, timeout: float = 900.0
) -> "cargo_git.Fetcher":
    """Fetch a Cargo.lock git source with the fetch phase's fetcher: the commit the lock names,
    mirror dirs (`<dir>/<repo name>`, `<dir>/<repo name>.git`) first, submodules, no `.git`."""
    from redox_tools.sources import fetch as fetch_mod  # the fetcher is heavy; only vendoring needs it
    from redox_tools.sources.pins import SourcePin

    def fetch(gs: "cargo_git.GitSource", dest: str) -> None:
        pin = SourcePin(name=gs.repo_name, git=gs.url, rev=gs.commit)
        try:
            fetch_mod.fetch_source(
                pin, dest, mirror_dirs=mirror_dirs, git=git, timeout=timeout, connect_timeout=connect_timeout,
                verify=False, discover_submodules=True,
            )
        except fetch_mod.RevNotFound:
            raise ToolError(
                f"commit {gs.commit} is not in {gs.url} (all branches and tags fetched): Cargo.lock names a commit "
                "the repository does not have; fix Cargo.lock or the mirror"
            ) from None
        except fetch_mod.SourceUnreachable as e:
            # A mirror that has the repository but fails to give the commit's objects is the real
            # cause (damaged or tampered with), not the unreachable URL behind it.
            bad = [x for x in e.extra.split("; ") if x.startswith("mirror ") and " lacks " not in x]
            if not bad:
                raise ToolError(_untag(str(e))) from None
            raise ToolError(
                f"{_untag('; '.join(bad))} (its objects do not match their ids: the mirror is damaged or was tampered "
                f"with; re-create it with git clone --mirror), and {e.url} is unreachable ({e.reason})"
            ) from None
        except ToolError as e:
            raise ToolError(_untag(str(e))) from None

    return fetch


def _untag(msg: str) -> str:
    """The fetcher's message as it applies to a git dependency (which is no source pin)."""
    return re.sub(r"\[sources\.[^\]]*\]:? ?", "", msg).replace(
        "the lock has no verified tree_hash to check it",
        "a copy without .git cannot be checked against the commit; mirror a git checkout or a bare repository",
    )


def cargo_home_config(env: Mapping[str, str]) -> Dict[str, object]:
    """The parsed $CARGO_HOME/config.toml (the user's `[redox-sources].cargo_config`), or {}."""
    home = env.get("CARGO_HOME") or os.path.join(env.get("HOME", "~"), ".cargo")
    path = os.path.join(home, "config.toml")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ToolError(f"[redox-sources].cargo_config is not valid TOML: {e}") from None


def crates_io_mirror(config: Mapping[str, object]) -> Optional[Tuple[str, str]]:
    """("local-registry" | "directory", path) when crates.io is replaced by a local mirror."""
    sources = config.get("source") or {}
    if not isinstance(sources, dict):
        return None
    seen = set()
    name = "crates-io"
    while isinstance(sources.get(name), dict) and name not in seen:
        seen.add(name)
        table = sources[name]
        for kind in ("local-registry", "directory"):
            if isinstance(table.get(kind), str):
                return kind, table[kind]
        nxt = table.get("replace-with")
        if not isinstance(nxt, str):
            return None
        name = nxt
    return None


def check_crate_mirror(lockfile: str, config: Mapping[str, object], who: str) -> None:
    """When crates.io is replaced by a local registry or directory, every registry crate of the
    lock must be there with the lock's checksum; one error lists every missing or differing one."""
    mirror = crates_io_mirror(config)
    if mirror is None:
        return
    kind, path = mirror
    if not os.path.isdir(path):
        raise ToolError(f"{who}: the crates.io mirror {path} ([redox-sources].cargo_config, {kind}) does not exist")
    missing: List[str] = []
    differ: List[str] = []
    packages = [p for p in read_lock_packages(lockfile) if p.kind == "registry"]
    if kind == "local-registry":
        for p in packages:
            crate = os.path.join(path, f"{p.name}-{p.version}.crate")
            if not os.path.isfile(crate):
                missing.append(p.dir_name)
            elif p.checksum and _sha256_file(crate) != p.checksum:
                differ.append(p.dir_name)
    else:
        check = check_vendor(lockfile, [path], include_git=False, raise_on_error=False)
        missing = [p.dir_name for p in check.missing]
        differ = [p.dir_name for p, _ in check.mismatched]
    parts = []
    if missing:
        parts.append(f"{len(missing)} crate(s) missing: {', '.join(sorted(missing))}")
    if differ:
        parts.append(f"{len(differ)} crate(s) differ from Cargo.lock's checksum: {', '.join(sorted(differ))}")
    if parts:
        raise VendorIncomplete(
            f"{who}: the crates.io mirror {path} ({kind}) does not match {os.path.basename(lockfile)}: "
            + "; ".join(parts) + "; add the .crate files from crates.io (README: \"Offline mirrors\")"
        )


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def crate_mirror_fingerprint(config_text: str) -> str:
    """A hash of what the local crate mirrors a cargo config names hold (every `directory` and
    `local-registry` source: each file's path, size and mtime, and the `.cargo-checksum.json`
    contents), so that changing a mirror changes the vendor step's cache key."""
    h = hashlib.sha256(config_text.encode())
    try:
        config = tomllib.loads(config_text) if config_text.strip() else {}
    except tomllib.TOMLDecodeError as e:
        raise ToolError(f"[redox-sources].cargo_config is not valid TOML: {e}") from None
    sources = config.get("source") or {}
    paths = sorted(
        t[k] for t in sources.values() if isinstance(t, dict)
        for k in ("directory", "local-registry") if isinstance(t.get(k), str)
    )
    for root in paths:
        h.update(f"\0root {root}\0".encode())
        if not os.path.isdir(root):
            h.update(b"missing")
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for f in sorted(filenames):
                full = os.path.join(dirpath, f)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                h.update(f"{os.path.relpath(full, root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
                if f == ".cargo-checksum.json":
                    with open(full, "rb") as fh:
                        h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()
