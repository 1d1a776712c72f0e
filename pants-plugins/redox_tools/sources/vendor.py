"""Crates for offline builds: `cargo vendor` (network step) and a check that a vendor directory
holds every crate a Cargo.lock pins (offline).

    cargo_vendor(crate_dir, out_dir, *, cargo="cargo", env=None, timeout=1800, name="") -> str
        runs `cargo vendor --respect-source-config --locked --versioned-dirs --manifest-path
        <crate_dir>/Cargo.toml <out_dir>` (so a `[source]` mirror in $CARGO_HOME/config.toml is
        used); returns the `[source]` config cargo prints; `out_dir` exists afterwards even for a
        crate without dependencies. A network failure becomes
        `VendorUnreachable` (one line naming the crate and what to do).
    check_vendor(lockfile, vendor_dirs, *, include_git=True) -> VendorCheck
        every `[[package]]` with a registry (and, by default, git) source must be in one of the
        vendor dirs: a directory whose Cargo.toml has that package name and version (so both the
        `--versioned-dirs` layout `<name>-<version>/` and cargo's default `<name>/` match);
        when the lock has a checksum and the vendored `.cargo-checksum.json` has a `package`
        checksum they must agree. Raises `VendorIncomplete` listing every missing or differing
        crate and the fix.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]  # pants: no-infer-dep

from redox_tools.errors import ToolError

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
    try:
        with open(lockfile, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ToolError(f"{lockfile} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ToolError(f"{lockfile}: not a valid Cargo.lock: {e}") from None
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
) -> str:
    """Run `cargo vendor --locked --versioned-dirs` for `crate_dir` into `out_dir`; returns the
    `[source]` configuration cargo prints (to put in .cargo/config.toml of the offline build)."""
    who = name or os.path.basename(os.path.abspath(crate_dir))
    manifest = os.path.join(crate_dir, "Cargo.toml")
    if not os.path.isfile(manifest):
        raise ToolError(f"cargo vendor for {who}: {manifest} not found")
    if not os.path.isfile(os.path.join(crate_dir, "Cargo.lock")):
        raise ToolError(
            f"cargo vendor for {who}: {crate_dir}/Cargo.lock not found; --locked vendors exactly the lock file, "
            "so commit one (cargo generate-lockfile on a connected machine)"
        )
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("CARGO_NET_RETRY", "1")
    run_env.setdefault("CARGO_HTTP_TIMEOUT", "30")
    run_env.setdefault("CARGO_TERM_COLOR", "never")
    run_env.setdefault("CARGO_NET_GIT_FETCH_WITH_CLI", "false")
    run_env["GIT_TERMINAL_PROMPT"] = "0"
    # --respect-source-config: a crates.io mirror configured in $CARGO_HOME (e.g. a directory
    # source) is used instead of the network; without one it changes nothing.
    cmd = [cargo, "vendor", "--respect-source-config", "--locked", "--versioned-dirs", "--manifest-path", manifest, os.path.abspath(out_dir)]
    try:
        p = subprocess.run(cmd, env=run_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except FileNotFoundError:
        raise ToolError(f"{cargo} not found: install cargo or pass its path") from None
    except subprocess.TimeoutExpired:
        raise VendorUnreachable(
            f"cargo vendor for {who} timed out after {timeout:.0f} s; vendor on a connected machine and copy the "
            "vendor dir here"
        ) from None
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        low = err.lower()
        if any(pat in low for pat in _NET_PATTERNS):
            raise VendorUnreachable(
                f"cargo vendor for {who}: crate sources unreachable ({_last_error(err)}); run `python -m "
                f"redox_tools.sources vendor --crate {crate_dir} --out <vendor dir>` on a connected machine and "
                "copy the vendor dir here"
            )
        raise ToolError(f"cargo vendor for {who} failed: {_last_error(err)}")
    os.makedirs(out_dir, exist_ok=True)  # cargo creates none when there is nothing to vendor
    return p.stdout.decode("utf-8", "replace")
