"""The fetch phase: put one pinned upstream source into a directory, verified.

    fetch_source(pin, dest, *, mirror_dirs=(), git="git", timeout=900, ...) -> FetchResult
    fetch_all(pins, dest_root, *, mirror_dirs=(), ...) -> [FetchResult]   (dest_root/<name>)

Where the source comes from, first hit wins:

1. every mirror directory M in order (offline use):
   - `M/<name>` holding a git checkout (has `.git`): the rev is fetched from it like a remote;
   - `M/<name>` without `.git`: a plain copy of the *unpatched* checkout (submodules included);
     it is copied and can only be accepted when the lock has a verified `tree_hash`;
   - `M/<name>.git` (bare mirror, `git clone --mirror`): the rev is fetched from it;
   - the same with the URL's repository name instead of `<name>` (`M/redox.git` for the
     `cookbook` source), so a directory of `git clone --mirror`s of the upstream URLs works;
   - archives: `M/<name>` (unpacked tree) or `M/<archive file name>` (checked by sha256).
   A mirror that lacks the rev is skipped (and named in the error if nothing else works).
2. the network URL: `git init; git fetch --depth 1 <url> <rev>`, then a full fetch of branches
   and tags if the server refuses shallow fetches by commit id; archives: urllib download.

Then, for git sources: `git checkout --detach <rev>`; `git rev-parse HEAD^{tree}` must equal
`git_tree` (when the lock has one); the gitlinks in the tree must be exactly the pinned
submodules, each fetched the same way (mirror candidates `M/<repo name>[.git]`, plus the
submodule inside a mirror checkout `M/<name>/<path>`) and checked out at its commit (nested
submodules are pinned with their full path). Archives are unpacked safely (no absolute or `..`
members, no links leaving the tree, no device files), dropping `strip_components` leading path
components. Patches are applied in order with `patch -p1 --forward --batch`. Finally the tree
hash (redox_tools.sources.treehash) must equal `tree_hash`; when the lock says "unverified..."
the computed hash is returned (and printed by the CLI) for recording in the lock.

`.git` directories are removed from the result unless `keep_git=True` (they are not part of
the tree hash and are not reproducible). The source is built in `<dest>.partial` and renamed
to `dest` only when everything verified.

Network failures are detected fast (a TCP connect probe with `connect_timeout`, git's
`GIT_HTTP_LOW_SPEED_LIMIT/TIME`, no prompts, a `timeout` on every step) and raised as
`SourceUnreachable`, one line naming the URL and how to provide a mirror. `fetch_all` tries
every pin and raises one `SourcesUnavailable` listing every unreachable source.

`update_pins(lock, ...)` is the engine of `python -m redox_tools.sources.pins update`.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import posixpath
import re
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from redox_tools.errors import ToolError
from redox_tools.sources.links import refuse_escaping_links
from redox_tools.sources.pins import (
    UNVERIFIED_TREE_HASH,
    Lock,
    SourcePin,
    Submodule,
)
from redox_tools.sources.treehash import tree_hash

__all__ = [
    "FetchResult",
    "PatchFailed",
    "RevNotFound",
    "SourcePin",
    "SourceUnreachable",
    "SourcesUnavailable",
    "Submodule",
    "TreeHashMismatch",
    "fetch_all",
    "fetch_source",
    "update_pins",
]

DEFAULT_TIMEOUT = 900.0
DEFAULT_CONNECT_TIMEOUT = 10.0
LOW_SPEED_LIMIT = 1000  # bytes/s ...
LOW_SPEED_TIME = 30  # ... sustained for this many seconds aborts a git transfer
MIRROR_HINT = "then set [redox-sources].mirror_dirs"  # what `./pants package` reads
# fetch_all/update_pins run as commands (update-pins, `python -m redox_tools.sources`): --mirror
CLI_MIRROR_HINT = "then pass --mirror <dir> (update-pins: ./pants run 3rdparty/redox:update-pins -- --mirror <dir>)"

Log = Optional[Callable[[str], None]]


# --------------------------------------------------------------------------------------------
# Errors


class SourceUnreachable(ToolError):
    """A source URL that cannot be reached (offline, DNS, refused, timed out, not found)."""

    def __init__(self, name: str, url: str, reason: str, mirror_name: str = "", extra: str = "") -> None:
        if name.startswith("[sources.") and name.endswith("]"):
            name = name[len("[sources."):-1]
        self.name = name  # the source (pin) name
        self.url = url
        self.reason = reason
        self.mirror_name = mirror_name or name
        self.extra = extra
        m = self.mirror_name
        if url.endswith((".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar", ".zip")):
            archive = posixpath.basename(urllib.parse.urlparse(url).path)
            how = f"copy the archive to <mirror>/{archive} or its unpacked tree to <mirror>/{m}"
        else:
            how = f"copy a checkout to <mirror>/{m} or a bare mirror to <mirror>/{m}.git"
        super().__init__(f"[sources.{name}]: {url} unreachable ({reason}); {how}, {MIRROR_HINT}" + (f" ({extra})" if extra else ""))


class RevNotFound(ToolError):
    """The pinned commit is not in the repository."""


class TreeHashMismatch(ToolError):
    """Fetched content differs from the lock (tree hash, git tree, or archive sha256)."""


class PatchFailed(ToolError):
    """A patch that does not apply (or whose file is missing)."""


class SourcesUnavailable(ToolError):
    """`fetch_all`/`update_pins`: several sources failed; one line lists them all."""

    def __init__(
        self,
        unreachable: Sequence[SourceUnreachable],
        failures: Sequence[Tuple[str, ToolError]],
        results: Sequence["FetchResult"],
        total: int,
    ) -> None:
        self.unreachable = list(unreachable)
        self.failures = list(failures)
        self.results = list(results)
        n = len(self.unreachable) + len(self.failures)
        parts = [f"{n} of {total} sources could not be fetched"]
        if self.unreachable:
            items = []
            for u in self.unreachable:
                what = u.url if u.mirror_name == u.name else f"submodule {u.mirror_name} {u.url}"
                items.append(f"{u.name} ({what}: {u.reason}" + (f"; {u.extra}" if u.extra else "") + ")")
            parts.append(
                "unreachable: " + ", ".join(items) + " — copy a checkout to <mirror>/<name> or a bare mirror "
                f"to <mirror>/<name>.git (submodules: <mirror>/<repo name>), {CLI_MIRROR_HINT}"
            )
        if self.failures:
            parts.append("failed: " + "; ".join(str(e) for _, e in self.failures))
        super().__init__("; ".join(parts))


@dataclass(frozen=True)
class FetchResult:
    name: str
    dest: str
    origin: str  # where the content came from (URL or mirror path)
    rev: str  # "" for archives
    git_tree: str  # checked `HEAD^{tree}` ("" when not a git fetch)
    tree_hash: str  # computed, after patches
    tree_hash_verified: bool  # the lock had a tree hash and it matched
    submodules: Tuple[Submodule, ...] = ()
    rev_date: str = ""
    notes: Tuple[str, ...] = ()
    archive_sha256: str = ""  # of the archive used (archives only)

    def summary(self) -> str:
        state = "verified" if self.tree_hash_verified else "UNVERIFIED (not in lock)"
        gt = " git tree ok" if self.git_tree else ""
        return f"{self.name}: {self.tree_hash} {state};{gt} from {self.origin}"


# --------------------------------------------------------------------------------------------
# Process and network helpers


_NET_DEFINITE = (
    "could not resolve host",
    "could not resolve proxy",
    "failed to connect",
    "couldn't connect",
    "connection refused",
    "connection timed out",
    "connection reset",
    "operation timed out",
    "operation too slow",
    "network is unreachable",
    "no route to host",
    "temporary failure in name resolution",
    "name or service not known",
    "unable to access",
    "does not appear to be a git repository",
    "could not read from remote repository",
    "ssl",
    "gnutls",
    "proxy",
)
_NET_LATE = _NET_DEFINITE + ("the remote end hung up", "early eof", "rpc failed", "not found")
_REPO_NOT_FOUND_RE = re.compile(r"repository '.*' not found", re.I)


@dataclass
class _Ctx:
    git: str
    timeout: float
    connect_timeout: float
    patch: str
    env: Dict[str, str]
    probe_cache: Dict[Tuple[str, int], Optional[str]]
    mirror_dirs: Tuple[str, ...]
    log: Log

    def say(self, msg: str) -> None:
        if self.log:
            self.log(msg)


def _git_env(base: Optional[Mapping[str, str]], connect_timeout: float) -> Dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_HTTP_LOW_SPEED_LIMIT": str(LOW_SPEED_LIMIT),
            "GIT_HTTP_LOW_SPEED_TIME": str(LOW_SPEED_TIME),
            "GIT_LFS_SKIP_SMUDGE": "1",
            "LC_ALL": "C",
            "LANGUAGE": "C",
        }
    )
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env.setdefault("GIT_SSH_COMMAND", f"ssh -o BatchMode=yes -o ConnectTimeout={int(max(1, connect_timeout))}")
    return env


@dataclass(frozen=True)
class _Run:
    ok: bool
    out: str
    err: str
    timed_out: bool = False


def _run(cmd: Sequence[str], ctx: _Ctx, cwd: Optional[str] = None) -> _Run:
    try:
        p = subprocess.run(
            list(cmd), cwd=cwd, env=ctx.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=ctx.timeout,
        )
    except FileNotFoundError:
        raise ToolError(f"{cmd[0]} not found: install it or pass its path") from None
    except subprocess.TimeoutExpired:
        return _Run(False, "", f"timed out after {ctx.timeout:.0f} s", timed_out=True)
    return _Run(p.returncode == 0, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))


def _git(ctx: _Ctx, repo: str, *args: str) -> _Run:
    return _run(
        [ctx.git, "-c", "safe.directory=*", "-c", "core.autocrlf=false", "-c", "advice.detachedHead=false",
         "-C", repo, *args],
        ctx,
    )


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "no message"
    for ln in lines:  # the first fatal/error line is the informative one
        if ln.lower().startswith(("fatal:", "error:")):
            return ln
    return lines[-1]


def _looks_unreachable(r: _Run, late: bool) -> bool:
    if r.timed_out:
        return True
    low = r.err.lower()
    pats = _NET_LATE if late else _NET_DEFINITE
    return any(p in low for p in pats) or bool(_REPO_NOT_FOUND_RE.search(r.err))


def _local_path(url: str) -> Optional[str]:
    """The directory of a file:// URL or a plain path; None for network URLs."""
    if url.startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlparse(url).path)
    if "://" not in url and not re.match(r"^[^/]+@[^/:]+:", url) and not re.match(r"^[A-Za-z0-9.-]+:[^/]", url):
        return url
    return None


def _host_port(url: str) -> Optional[Tuple[str, int]]:
    m = re.match(r"^(?:[^@/]+@)?([^/:]+):(?!//)", url)
    if "://" not in url and m:  # scp-like user@host:path
        return m.group(1), 22
    u = urllib.parse.urlparse(url)
    if not u.hostname:
        return None
    default = {"http": 80, "https": 443, "ssh": 22, "git": 9418, "ftp": 21}.get(u.scheme.split("+")[-1], 443)
    try:
        port = u.port or default
    except ValueError:
        port = default
    return u.hostname, port


def _proxy_for(url: str, env: Mapping[str, str]) -> Optional[str]:
    u = urllib.parse.urlparse(url)
    if u.scheme not in ("http", "https"):
        return None
    no_proxy = env.get("no_proxy", env.get("NO_PROXY", ""))
    host = u.hostname or ""
    for item in (x.strip() for x in no_proxy.split(",")):
        if item and (item == "*" or host == item.lstrip(".") or host.endswith("." + item.lstrip("."))):
            return None
    for key in (f"{u.scheme}_proxy", f"{u.scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        if env.get(key):
            return env[key] if "://" in env[key] else "http://" + env[key]
    return None


def _probe(url: str, ctx: _Ctx) -> Optional[str]:
    """None when `url` looks reachable, else a short reason. Cached per host:port."""
    local = _local_path(url)
    if local is not None:
        return None if os.path.exists(local) else f"no such file or directory {local}"
    target = _proxy_for(url, ctx.env) or url
    hp = _host_port(target)
    if hp is None:
        return None
    if hp in ctx.probe_cache:
        return ctx.probe_cache[hp]
    reason: Optional[str] = None
    try:
        with socket.create_connection(hp, timeout=ctx.connect_timeout):
            pass
    except socket.gaierror:
        reason = f"cannot resolve host {hp[0]}"
    except socket.timeout:
        reason = f"no connection to {hp[0]}:{hp[1]} within {ctx.connect_timeout:g} s"
    except OSError as e:
        reason = f"cannot connect to {hp[0]}:{hp[1]}: {e.strerror or e}"
    if target != url and reason:
        reason = "proxy " + reason
    ctx.probe_cache[hp] = reason
    return reason


def _repo_basename(url: str) -> str:
    path = url.rstrip("/")
    if "://" not in path and ":" in path and not path.startswith("/"):
        path = path.split(":", 1)[1]
    base = posixpath.basename(urllib.parse.urlparse(path).path if "://" in path else path)
    return base[:-4] if base.endswith(".git") else base


def _is_git_dir(path: str) -> bool:
    """A non-bare checkout (has .git) or a bare repository."""
    if os.path.exists(os.path.join(path, ".git")):
        return True
    return os.path.isfile(os.path.join(path, "HEAD")) and os.path.isdir(os.path.join(path, "objects"))


def _rmtree(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        def onerror(func, p, exc):  # read-only files/dirs (git objects)
            os.chmod(p, stat.S_IRWXU)
            func(p)

        shutil.rmtree(path, onerror=onerror)


def _strip_git(root: str) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            _rmtree(os.path.join(dirpath, ".git"))
            dirnames.remove(".git")
        if ".git" in filenames:
            os.unlink(os.path.join(dirpath, ".git"))


def _copy_tree(src: str, dst: str) -> None:
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(".git"), dirs_exist_ok=True)


# --------------------------------------------------------------------------------------------
# Git


def _git_fetch(ctx: _Ctx, repo: str, remote: str, rev: str, who: str, mirror_name: str) -> None:
    """Fetch `rev` from `remote` into the initialised `repo` (shallow first, then full)."""
    local = _local_path(remote)
    if local is not None and not os.path.exists(local):
        raise SourceUnreachable(who, remote, f"no such directory {local}", mirror_name)
    r = _git(ctx, repo, "fetch", "--quiet", "--no-tags", "--depth", "1", remote, rev)
    if r.ok:
        return
    if _looks_unreachable(r, late=False):
        raise SourceUnreachable(who, remote, _last_line(r.err), mirror_name)
    ctx.say(f"{who}: shallow fetch of {rev[:12]} refused ({_last_line(r.err)}); fetching all branches and tags")
    r = _git(
        ctx, repo, "fetch", "--quiet", "--no-tags", remote,
        "+refs/heads/*:refs/fetched/heads/*", "+refs/tags/*:refs/fetched/tags/*",
    )
    if not r.ok:
        if _looks_unreachable(r, late=True):
            raise SourceUnreachable(who, remote, _last_line(r.err), mirror_name)
        raise ToolError(f"{who}: git fetch from {remote} failed: {_last_line(r.err)}")
    if not _git(ctx, repo, "cat-file", "-e", f"{rev}^{{commit}}").ok:
        raise RevNotFound(
            f"{who}: rev {rev} not found in {remote} (fetched all branches and tags); check `rev` in the "
            "lock, or move the pin with `python -m redox_tools.sources.pins update --bump`"
        )


def _git_init(ctx: _Ctx, repo: str) -> None:
    os.makedirs(repo, exist_ok=True)
    r = _git(ctx, repo, "-c", "init.defaultBranch=fetched", "init", "--quiet")
    if not r.ok:
        raise ToolError(f"git init {repo} failed: {_last_line(r.err)}")


def _git_checkout(ctx: _Ctx, repo: str, rev: str, who: str) -> None:
    r = _git(ctx, repo, "checkout", "--quiet", "--force", "--detach", rev)
    if not r.ok:
        raise ToolError(f"{who}: git checkout {rev} failed: {_last_line(r.err)}")


def _git_out(ctx: _Ctx, repo: str, *args: str) -> str:
    r = _git(ctx, repo, *args)
    if not r.ok:
        raise ToolError(f"git {' '.join(args)} in {repo} failed: {_last_line(r.err)}")
    return r.out


def _gitlinks(ctx: _Ctx, repo: str) -> Dict[str, str]:
    """path -> commit of every gitlink (submodule) in HEAD's tree."""
    out = _git_out(ctx, repo, "ls-tree", "-r", "-z", "--full-tree", "HEAD")
    links = {}
    for rec in out.split("\0"):
        if not rec:
            continue
        meta, path = rec.split("\t", 1)
        mode, typ, obj = meta.split()
        if mode == "160000" and typ == "commit":
            links[path] = obj
    return links


def _gitmodules(ctx: _Ctx, repo: str) -> Dict[str, Tuple[str, str]]:
    """path -> (url, branch) from HEAD's .gitmodules."""
    if not os.path.isfile(os.path.join(repo, ".gitmodules")):
        return {}
    r = _git(ctx, repo, "config", "--file", ".gitmodules", "--null", "--get-regexp", r"^submodule\..*\.(path|url|branch)$")
    if not r.ok:
        return {}
    by_name: Dict[str, Dict[str, str]] = {}
    for rec in r.out.split("\0"):
        if not rec:
            continue
        key, _, value = rec.partition("\n")
        name, _, attr = key[len("submodule."):].rpartition(".")
        by_name.setdefault(name, {})[attr] = value
    return {d["path"]: (d.get("url", ""), d.get("branch", "")) for d in by_name.values() if "path" in d}


def _resolve_url(base: str, rel: str) -> str:
    if not rel.startswith(("./", "../")):
        return rel
    if "://" in base:
        u = urllib.parse.urlparse(base)
        path = posixpath.normpath(posixpath.join(u.path.rstrip("/"), rel))
        return urllib.parse.urlunparse(u._replace(path=path))
    return posixpath.normpath(posixpath.join(base.rstrip("/"), rel))


def _candidates(ctx: _Ctx, names: Sequence[str]) -> List[Tuple[str, str]]:
    """(kind, path) mirror candidates in order: kind "git" (fetch from) or "tree" (plain copy)."""
    out: List[Tuple[str, str]] = []
    seen = set()
    for m in ctx.mirror_dirs:
        for n in names:
            if not n:
                continue
            for p in (os.path.join(m, n), os.path.join(m, n + ".git")):
                if p in seen or not os.path.isdir(p):
                    continue
                seen.add(p)
                out.append(("git" if _is_git_dir(p) else "tree", os.path.abspath(p)))
    return out


class _NotInMirrors(RevNotFound):
    """No git mirror candidate has the rev (raised instead of going to the network)."""

    def __init__(self, skipped: Sequence[str]) -> None:
        self.skipped = list(skipped)
        super().__init__("; ".join(skipped))


def _fetch_repo(
    ctx: _Ctx, repo: str, url: str, rev: str, who: str, mirror_name: str, candidates: Sequence[Tuple[str, str]],
    network: bool = True,
) -> str:
    """Fetch `rev` into a fresh git repo at `repo` from the first git candidate that has it, else
    from `url` (or, with `network=False`, raise `_NotInMirrors`). Returns the origin used."""
    skipped: List[str] = []
    for kind, path in candidates:
        if kind != "git":
            continue
        _rmtree(repo)
        _git_init(ctx, repo)
        try:
            _git_fetch(ctx, repo, path, rev, who, mirror_name)
            return path
        except (RevNotFound, SourceUnreachable, ToolError) as e:
            skipped.append(f"mirror {path} lacks {rev[:12]}" if isinstance(e, RevNotFound) else f"mirror {path}: {e}")
            ctx.say(f"{who}: {skipped[-1]}")
    if not network:
        raise _NotInMirrors(skipped)
    _rmtree(repo)
    _git_init(ctx, repo)
    reason = _probe(url, ctx)
    if reason:
        raise SourceUnreachable(who, url, reason, mirror_name, extra="; ".join(skipped))
    ctx.say(f"{who}: fetching {rev[:12]} from {url}")
    try:
        _git_fetch(ctx, repo, url, rev, who, mirror_name)
    except SourceUnreachable as e:
        raise SourceUnreachable(who, url, e.reason, mirror_name, extra="; ".join(skipped)) from None
    return url


def _fetch_git_tree(
    ctx: _Ctx, pin: SourcePin, stage: str, discover: bool
) -> Tuple[str, str, Tuple[Submodule, ...], str, List[str]]:
    """Check out pin.rev (+ submodules) into `stage`. Returns (origin, git_tree, submodules,
    rev_date, notes). `origin` starts with "tree:" when a plain mirror copy was used."""
    who = f"[sources.{pin.name}]"
    names = [pin.name, _repo_basename(pin.git)]
    cands = _candidates(ctx, names)
    notes: List[str] = []
    # Every form in every mirror dir before the network: git checkouts and bare mirrors first
    # (content-addressed), then a plain copy (only checkable against a verified tree_hash).
    git_cands = [c for c in cands if c[0] == "git"]
    tree_cands = [c for c in cands if c[0] == "tree"]
    plain = tree_cands[0][1] if tree_cands and pin.tree_hash_verified else ""
    if tree_cands and not plain:
        notes.append(f"plain mirror copy {tree_cands[0][1]} not usable: the lock has no verified tree_hash to check it")
    try:
        origin = _fetch_repo(ctx, stage, pin.git, pin.rev, who, pin.name, git_cands, network=not plain)
    except _NotInMirrors:
        ctx.say(f"{who}: copying pre-fetched checkout {plain}")
        _rmtree(stage)
        os.makedirs(stage)
        _copy_tree(plain, stage)
        return "tree:" + plain, "", pin.submodules, pin.rev_date, notes
    except SourceUnreachable as e:
        if notes:
            raise SourceUnreachable(e.name, e.url, e.reason, e.mirror_name, "; ".join([e.extra] + notes).strip("; "))
        raise
    _git_checkout(ctx, stage, pin.rev, who)
    actual_tree = _git_out(ctx, stage, "rev-parse", "HEAD^{tree}").strip()
    if pin.git_tree and actual_tree != pin.git_tree:
        raise TreeHashMismatch(
            f"{who}: {origin} at rev {pin.rev} has git tree {actual_tree}, the lock says git_tree = "
            f"{pin.git_tree}; if you changed the pin on purpose, run the pin update "
            f"(python -m redox_tools.sources.pins update --only {pin.name})"
        )
    rev_date = _git_out(ctx, stage, "log", "-1", "--format=%cI", "HEAD").strip()
    subs = _fetch_submodules(ctx, pin, stage, origin, discover)
    return origin, actual_tree, subs, rev_date, notes


def _fetch_submodules(
    ctx: _Ctx, pin: SourcePin, stage: str, origin: str, discover: bool
) -> Tuple[Submodule, ...]:
    who = f"[sources.{pin.name}]"
    pinned = {s.path: s for s in pin.submodules}
    found: Dict[str, str] = {}
    used: List[Submodule] = []
    mirror_checkout = origin if os.path.isdir(origin) and os.path.exists(os.path.join(origin, ".git")) else ""
    queue: List[Tuple[str, str]] = [("", pin.git)]  # (prefix, url of that repo)
    while queue:
        prefix, repo_url = queue.pop(0)
        repo = os.path.join(stage, prefix) if prefix else stage
        links = _gitlinks(ctx, repo)
        modules = _gitmodules(ctx, repo) if discover else {}
        for rel in sorted(links):
            full = f"{prefix}/{rel}" if prefix else rel
            found[full] = links[rel]
            if discover:
                url, branch = modules.get(rel, ("", ""))
                if not url and full in pinned:  # .gitmodules names it differently (relibc's dlmalloc-rs)
                    url, branch = pinned[full].url, pinned[full].branch
                if not url:
                    raise ToolError(f"{who}: submodule {full} (commit {links[rel]}) has no url in .gitmodules")
                sub = Submodule(path=full, url=_resolve_url(repo_url, url), commit=links[rel], branch=branch)
            else:
                if full not in pinned:
                    raise ToolError(
                        f"{who}: the tree at {pin.rev[:12]} has submodule {full} (commit {links[rel]}) that the "
                        "lock does not list; add it to `submodules` (pins update --bump rewrites the list)"
                    )
                sub = pinned[full]
                if sub.commit != links[rel]:
                    raise ToolError(
                        f"{who}: submodule {full} is pinned at {sub.commit} but the tree at {pin.rev[:12]} "
                        f"records {links[rel]}; fix the lock (or run pins update --bump)"
                    )
            cands = []
            if mirror_checkout and _is_git_dir(os.path.join(mirror_checkout, full)):
                cands.append(("git", os.path.join(mirror_checkout, full)))
            cands += [c for c in _candidates(ctx, [_repo_basename(sub.url)]) if c[0] == "git"]
            sub_dir = os.path.join(stage, full)
            _fetch_repo(ctx, sub_dir, sub.url, sub.commit, who, _repo_basename(sub.url), cands)
            _git_checkout(ctx, sub_dir, sub.commit, f"{who} submodule {full}")
            used.append(sub)
            queue.append((full, sub.url))
    if not discover:
        missing = sorted(set(pinned) - set(found))
        if missing:
            raise ToolError(
                f"{who}: the lock lists submodule(s) {', '.join(missing)} but the tree at {pin.rev[:12]} has no "
                "gitlink there; remove them from `submodules`"
            )
    return tuple(used)


def git_ls_remote(ctx: _Ctx, remote: str, ref: str, who: str) -> str:
    reason = _probe(remote, ctx)
    if reason:
        raise SourceUnreachable(who, remote, reason)
    r = _run([ctx.git, "ls-remote", remote, ref], ctx)
    if not r.ok:
        if _looks_unreachable(r, late=True):
            raise SourceUnreachable(who, remote, _last_line(r.err))
        raise ToolError(f"{who}: git ls-remote {remote} {ref} failed: {_last_line(r.err)}")
    for line in r.out.splitlines():
        sha, _, name = line.partition("\t")
        if name in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"):
            return sha
    raise RevNotFound(f"{who}: {remote} has no ref {ref!r}; fix `branch` in the lock")


# --------------------------------------------------------------------------------------------
# Archives


def _download(ctx: _Ctx, url: str, out_path: str, who: str, mirror_name: str) -> str:
    """Download `url` to `out_path`; returns its sha256 hex."""
    if _local_path(url) is None:
        reason = _probe(url, ctx)
        if reason:
            raise SourceUnreachable(who, url, reason, mirror_name)
    h = hashlib.sha256()
    deadline = time.monotonic() + ctx.timeout
    try:
        with urllib.request.urlopen(url, timeout=ctx.connect_timeout) as resp, open(out_path, "wb") as out:
            while True:
                block = resp.read(1 << 20)
                if not block:
                    break
                h.update(block)
                out.write(block)
                if time.monotonic() > deadline:
                    raise SourceUnreachable(who, url, f"download took longer than {ctx.timeout:.0f} s", mirror_name)
    except urllib.error.HTTPError as e:
        raise SourceUnreachable(who, url, f"HTTP {e.code} {e.reason}", mirror_name) from None
    except urllib.error.URLError as e:
        reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else str(e.reason)
        raise SourceUnreachable(who, url, reason, mirror_name) from None
    except (socket.timeout, TimeoutError):
        raise SourceUnreachable(who, url, f"timed out after {ctx.connect_timeout:g} s", mirror_name) from None
    except OSError as e:
        if isinstance(e, SourceUnreachable):
            raise
        raise SourceUnreachable(who, url, e.strerror or str(e), mirror_name) from None
    return h.hexdigest()


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def safe_extract(archive: str, dest: str, strip_components: int, who: str = "") -> None:
    """Unpack a tar archive into `dest`, refusing anything that would land outside it."""
    pre = f"{who}: " if who else ""
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise ToolError(f"{pre}{archive} is not a readable tar archive: {e}") from None
    links: set = set()
    with tf:
        for m in tf:
            raw = m.name
            if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
                raise ToolError(f"{pre}archive member {raw!r} has an absolute path; refusing to unpack")
            parts = [p for p in raw.split("/") if p not in ("", ".")]
            if ".." in parts:
                raise ToolError(f"{pre}archive member {raw!r} contains '..'; refusing to unpack")
            if len(parts) <= strip_components:
                if m.isdir() or not parts:
                    continue
                raise ToolError(
                    f"{pre}archive member {raw!r} has fewer than {strip_components + 1} path components "
                    "(strip_components is wrong for this archive)"
                )
            parts = parts[strip_components:]
            rel = "/".join(parts)
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in links:
                    raise ToolError(f"{pre}archive member {raw!r} lies below a symlink; refusing to unpack")
            target = os.path.join(dest, *parts)
            if m.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.lexists(target):
                _rmtree(target)
            if m.issym():
                link = m.linkname
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
                if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
                    raise ToolError(f"{pre}archive symlink {raw!r} -> {link!r} points outside the tree; refusing")
                os.symlink(link, target)
                links.add(rel)
            elif m.islnk():
                lparts = [p for p in m.linkname.split("/") if p not in ("", ".")]
                if m.linkname.startswith("/") or ".." in lparts or len(lparts) <= strip_components:
                    raise ToolError(f"{pre}archive hard link {raw!r} -> {m.linkname!r} points outside the tree")
                src = os.path.join(dest, *lparts[strip_components:])
                if not os.path.isfile(src) or os.path.islink(src):
                    raise ToolError(f"{pre}archive hard link {raw!r} -> {m.linkname!r}: target not unpacked before it")
                shutil.copyfile(src, target)
                os.chmod(target, os.stat(src).st_mode & 0o777)
            elif m.isreg():
                fh = tf.extractfile(m)
                assert fh is not None
                with fh, open(target, "wb") as out:
                    shutil.copyfileobj(fh, out, 1 << 20)
                os.chmod(target, 0o755 if m.mode & 0o100 else 0o644)
            else:
                raise ToolError(f"{pre}archive member {raw!r} is a device, fifo or other special file; refusing")


def _fetch_archive_tree(ctx: _Ctx, pin: SourcePin, stage: str, record: bool = False) -> Tuple[str, List[str], str]:
    """Unpack the pinned archive into `stage`: (origin, notes, its sha256). An archive whose
    sha256 the lock does not hold yet is only accepted when `record`ing (the pin update)."""
    who = f"[sources.{pin.name}]"
    fname = posixpath.basename(urllib.parse.urlparse(pin.archive_url).path) or pin.name
    notes: List[str] = []
    for m in ctx.mirror_dirs:
        tree = os.path.join(m, pin.name)
        if os.path.isdir(tree):
            if pin.tree_hash_verified:
                ctx.say(f"{who}: copying pre-fetched tree {tree}")
                _copy_tree(tree, stage)
                return "tree:" + os.path.abspath(tree), notes, ""
            notes.append(f"plain mirror copy {tree} not usable: the lock has no verified tree_hash to check it")
        arch = os.path.join(m, fname)
        if os.path.isfile(arch):
            got = _sha256_file(arch)
            if got == pin.archive_sha256 or (record and not pin.archive_sha256_verified):
                ctx.say(f"{who}: unpacking mirrored archive {arch}")
                safe_extract(arch, stage, pin.strip_components, who)
                return os.path.abspath(arch), notes, got
            notes.append(f"mirror archive {arch} has sha256 {got}, not the pinned one")
    fd, tmp = tempfile.mkstemp(prefix=f".{pin.name}.", suffix=".download", dir=os.path.dirname(stage))
    os.close(fd)
    try:
        ctx.say(f"{who}: downloading {pin.archive_url}")
        try:
            got = _download(ctx, pin.archive_url, tmp, who, pin.name)
        except SourceUnreachable as e:
            raise SourceUnreachable(e.name, e.url, e.reason, e.mirror_name, "; ".join(notes)) from None
        if not pin.archive_sha256_verified and not record:
            raise TreeHashMismatch(
                f"{who}: the lock has no sha256 for {pin.archive_url} ({pin.archive_sha256}), so its content cannot "
                f"be checked; record it on a connected machine: python -m redox_tools.sources.pins update --only "
                f"{pin.name} (downloaded: sha256 {got})"
            )
        if pin.archive_sha256_verified and got != pin.archive_sha256:
            raise TreeHashMismatch(
                f"{who}: archive {pin.archive_url} has sha256 {got}, the lock says archive_sha256 = "
                f"{pin.archive_sha256}; if you changed the pin on purpose, run the pin update"
            )
        safe_extract(tmp, stage, pin.strip_components, who)
    finally:
        os.unlink(tmp)
    return pin.archive_url, notes, got


# --------------------------------------------------------------------------------------------
# Patches


def apply_patches(pin: SourcePin, tree: str, patch_cmd: str = "patch", env: Optional[Mapping[str, str]] = None) -> None:
    """Apply `pin.patches` in order to `tree` (`patch -p1 --forward --batch`)."""
    who = f"[sources.{pin.name}]"
    at = pin.rev[:12] if pin.rev else pin.archive_url
    for p in pin.patches:
        if not os.path.isfile(p.path):
            hint = f"; copy it from {p.origin}" if p.origin else ""
            raise PatchFailed(f"{who}: patch file {p.file} not found ({p.path}){hint}")
        cmd = [patch_cmd, "-p1", "--forward", "--batch", "--no-backup-if-mismatch", "--reject-file=-",
               "-d", tree, "-i", os.path.abspath(p.path)]
        try:
            r = subprocess.run(cmd, env=dict(env) if env else None, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        except FileNotFoundError:
            raise ToolError(f"{patch_cmd} not found: install GNU patch") from None
        if r.returncode != 0:
            out = r.stdout.decode("utf-8", "replace")
            current = ""
            problems = []
            for line in out.splitlines():
                if line.startswith("patching file "):
                    current = line[len("patching file "):].strip("'\"")
                elif "FAILED" in line or "Reversed (or previously applied)" in line or "can't find file" in line \
                        or "No such file" in line or "malformed" in line.lower() or "Only garbage" in line:
                    problems.append(f"{current}: {line.strip()}" if current else line.strip())
            detail = "; ".join(problems[:4]) or _last_line(out)
            raise PatchFailed(
                f"{who}: patch {p.file} does not apply to {at}: {detail}; refresh the patch against the pinned "
                "rev (or pin the rev it was made for)"
            )


# --------------------------------------------------------------------------------------------
# fetch_source / fetch_all


def _make_ctx(git: str, timeout: float, connect_timeout: float, patch: str, env: Optional[Mapping[str, str]],
              mirror_dirs: Iterable[str], log: Log, probe_cache: Optional[Dict] = None) -> _Ctx:
    return _Ctx(
        git=git, timeout=timeout, connect_timeout=connect_timeout, patch=patch,
        env=_git_env(env, connect_timeout), probe_cache={} if probe_cache is None else probe_cache,
        mirror_dirs=tuple(os.path.abspath(m) for m in mirror_dirs), log=log,
    )


def fetch_source(
    pin: SourcePin,
    dest: str,
    *,
    mirror_dirs: Sequence[str] = (),
    git: str = "git",
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    keep_git: bool = False,
    verify: bool = True,
    discover_submodules: bool = False,
    replace: bool = False,
    patch: str = "patch",
    env: Optional[Mapping[str, str]] = None,
    log: Log = None,
    _probe_cache: Optional[Dict] = None,
) -> FetchResult:
    """Fetch, check, patch and verify `pin` into `dest` (see the module docstring).

    `verify=False` skips only the final tree-hash comparison (the pin update uses it);
    `discover_submodules=True` takes the submodule list from the checked-out tree instead of
    checking it against the lock (for a bumped rev). `dest` must not exist or be empty unless
    `replace=True`.
    """
    pin.validate()
    ctx = _make_ctx(git, timeout, connect_timeout, patch, env, mirror_dirs, log, _probe_cache)
    dest = os.path.abspath(dest)
    who = f"[sources.{pin.name}]"
    if os.path.lexists(dest) and not (os.path.isdir(dest) and not os.listdir(dest)):
        if not replace:
            raise ToolError(f"{who}: destination {dest} exists and is not empty; remove it or pass replace/--force")
        _rmtree(dest)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    stage = dest + ".partial"
    _rmtree(stage)
    os.makedirs(stage)
    try:
        subs: Tuple[Submodule, ...] = ()
        rev_date = ""
        actual_tree = ""
        archive_sha = ""
        try:
            if pin.git:
                origin, actual_tree, subs, rev_date, notes = _fetch_git_tree(ctx, pin, stage, discover_submodules)
            else:
                origin, notes, archive_sha = _fetch_archive_tree(ctx, pin, stage, record=not verify)
        except SourceUnreachable as e:
            raise _with_searched(e, ctx.mirror_dirs) from None
        if origin.startswith("tree:"):
            origin = origin[5:]
        apply_patches(pin, stage, patch, ctx.env)
        refuse_escaping_links(stage, who)  # no host paths (/etc/shadow, ../..) carried into packages
        actual = tree_hash(stage)
        verified = False
        if pin.tree_hash_verified:
            if actual != pin.tree_hash:
                if verify:
                    raise TreeHashMismatch(
                        f"{who}: tree hash mismatch for {pin.url}" + (f" @ {pin.rev}" if pin.rev else "")
                        + f" (from {origin}): expected {pin.tree_hash}, got {actual}; the content differs from "
                        "the lock (tampered mirror or changed patch?); if you changed the pin on purpose, run the "
                        f"pin update (python -m redox_tools.sources.pins update --only {pin.name})"
                    )
            else:
                verified = True
        if not verified and verify:
            notes.append(
                f'tree_hash not verified: record tree_hash = "{actual}" in [sources.{pin.name}] '
                f"(or run python -m redox_tools.sources.pins update --only {pin.name})"
            )
        if not keep_git:
            _strip_git(stage)
        if os.path.isdir(dest):
            os.rmdir(dest)
        os.rename(stage, dest)
    finally:
        _rmtree(stage)
    return FetchResult(
        name=pin.name, dest=dest, origin=origin, rev=pin.rev, git_tree=actual_tree, tree_hash=actual,
        tree_hash_verified=verified, submodules=subs, rev_date=rev_date, notes=tuple(notes),
        archive_sha256=archive_sha,
    )


def _with_searched(e: SourceUnreachable, mirror_dirs: Sequence[str]) -> SourceUnreachable:
    """Add the mirror directories that were searched (helps when the wrong one was given)."""
    if not mirror_dirs or "searched " in e.extra:
        return e
    extra = "; ".join(x for x in (e.extra, "searched " + ", ".join(mirror_dirs)) if x)
    return SourceUnreachable(e.name, e.url, e.reason, e.mirror_name, extra)


def _network_urls(pin: SourcePin, ctx: _Ctx) -> List[Tuple[str, str]]:
    """(url, mirror name) pairs the pin would need from the network given the mirror dirs."""
    out = []
    if pin.git:
        primary = _candidates(ctx, [pin.name, _repo_basename(pin.git)])
        if not primary:
            out.append((pin.git, pin.name))
        if any(kind == "tree" for kind, _ in primary):
            return out  # a plain copy includes its submodules (or is rejected with its own message)
        checkouts = [p for kind, p in primary if kind == "git"]
        for s in pin.submodules:
            in_checkout = any(_is_git_dir(os.path.join(c, s.path)) for c in checkouts)
            if not in_checkout and not _candidates(ctx, [_repo_basename(s.url)]):
                out.append((s.url, _repo_basename(s.url)))
    elif not any(
        os.path.isdir(os.path.join(m, pin.name))
        or os.path.isfile(os.path.join(m, posixpath.basename(urllib.parse.urlparse(pin.archive_url).path)))
        for m in ctx.mirror_dirs
    ):
        out.append((pin.archive_url, pin.name))
    return out


def _preflight(pins: Sequence[SourcePin], ctx: _Ctx) -> Dict[str, SourceUnreachable]:
    """Probe every network host the pins need, in parallel; unreachable pins by name."""
    needs = {pin.name: _network_urls(pin, ctx) for pin in pins}
    urls = sorted({u for lst in needs.values() for u, _ in lst})
    if urls:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(urls))) as ex:
            list(ex.map(lambda u: _probe(u, ctx), urls))
    bad: Dict[str, SourceUnreachable] = {}
    for pin in pins:
        for url, mname in needs[pin.name]:
            reason = _probe(url, ctx)  # cached
            if reason:
                bad[pin.name] = _with_searched(SourceUnreachable(pin.name, url, reason, mname), ctx.mirror_dirs)
                break
    return bad


def fetch_all(
    pins: Sequence[SourcePin],
    dest_root: str,
    *,
    mirror_dirs: Sequence[str] = (),
    git: str = "git",
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    keep_git: bool = False,
    replace: bool = False,
    patch: str = "patch",
    env: Optional[Mapping[str, str]] = None,
    log: Log = None,
) -> List[FetchResult]:
    """Fetch every pin into `dest_root/<name>`. All network hosts are probed first (in
    parallel) so an offline machine fails within about `connect_timeout`; every pin is tried
    and one `SourcesUnavailable` lists all unreachable and failed sources."""
    ctx = _make_ctx(git, timeout, connect_timeout, patch, env, mirror_dirs, log)
    unreachable = _preflight(pins, ctx)
    results: List[FetchResult] = []
    unreach: List[SourceUnreachable] = []
    failures: List[Tuple[str, ToolError]] = []
    for pin in pins:
        if pin.name in unreachable:
            unreach.append(unreachable[pin.name])
            continue
        try:
            results.append(
                fetch_source(
                    pin, os.path.join(dest_root, pin.name), mirror_dirs=mirror_dirs, git=git, timeout=timeout,
                    connect_timeout=connect_timeout, keep_git=keep_git, replace=replace, patch=patch, env=env,
                    log=log, _probe_cache=ctx.probe_cache,
                )
            )
        except SourceUnreachable as e:
            unreach.append(e)
        except ToolError as e:
            failures.append((pin.name, e))
    if unreach or failures:
        raise SourcesUnavailable(unreach, failures, results, len(pins))
    return results


# --------------------------------------------------------------------------------------------
# Pin update


_ORIGIN_RE = re.compile(r"^(?P<url>.+)@(?P<rev>[0-9a-f]{40}):(?P<path>[^:]+)$")


def fetch_missing_patches(pin: SourcePin, ctx: _Ctx, root: str, repos: Dict[Tuple[str, str], str]) -> List[str]:
    """Write each of `pin`'s patch files that is missing from the repository from its `origin`
    (`<git url>@<40-hex rev>:<path>`, e.g. a recipe's patch in the build repo). `repos` caches
    one fetched repository per (url, rev). Returns one line per patch written."""
    who = f"[sources.{pin.name}]"
    lines = []
    for p in pin.patches:
        if os.path.isfile(p.path):
            continue
        m = _ORIGIN_RE.match(p.origin)
        if not m:
            raise PatchFailed(
                f"{who}: patch file {p.file} is missing and its origin {p.origin!r} is not `<git url>@<rev>:<path>`; "
                "copy the patch there by hand"
            )
        url, rev, path = m.group("url"), m.group("rev"), m.group("path")
        repo = repos.get((url, rev))
        if repo is None:
            repo = os.path.join(root, f"__patch-origin-{len(repos)}")
            _fetch_repo(ctx, repo, url, rev, who, _repo_basename(url), _candidates(ctx, [_repo_basename(url)]))
            repos[(url, rev)] = repo
        r = _git(ctx, repo, "show", f"{rev}:{path}")
        if not r.ok:
            raise PatchFailed(f"{who}: patch origin {p.origin} has no such file ({_last_line(r.err)})")
        os.makedirs(os.path.dirname(os.path.abspath(p.path)), exist_ok=True)
        tmp = p.path + ".part"
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(r.out)
        os.replace(tmp, p.path)
        lines.append(f"{pin.name}: wrote patch {p.file} from {p.origin}")
    return lines


def update_pins(
    lock: Lock,
    *,
    names: Optional[Sequence[str]] = None,
    bump: bool = False,
    mirror_dirs: Sequence[str] = (),
    git: str = "git",
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    work_dir: Optional[str] = None,
    patch: str = "patch",
    env: Optional[Mapping[str, str]] = None,
    on_progress: Log = None,
    on_updated: Optional[Callable[[Lock], None]] = None,
) -> Tuple[Lock, List[str]]:
    """Fetch the selected pins and record their computed tree hashes (and, with `bump`, move a
    git pin to the head of its `branch` or of HEAD first, re-reading git_tree and submodules).
    Patch files missing from the repository are first written from their `origin`.

    `on_updated(lock)` is called after each source so progress is saved even if a later one
    fails; at the end one `SourcesUnavailable` names every source that could not be updated.
    """
    pins = [lock.get(n) for n in names] if names else list(lock.sources)
    ctx = _make_ctx(git, timeout, connect_timeout, patch, env, mirror_dirs, on_progress)
    lines: List[str] = []
    unreach: List[SourceUnreachable] = []
    failures: List[Tuple[str, ToolError]] = []
    results: List[FetchResult] = []
    own_tmp = work_dir is None
    root = tempfile.mkdtemp(prefix="redox-pins-update.") if work_dir is None else os.path.abspath(work_dir)
    try:
        patch_repos: Dict[Tuple[str, str], str] = {}
        for pin in pins:
            try:
                lines += fetch_missing_patches(pin, ctx, root, patch_repos)
                target = pin
                bumped = False
                if bump and pin.git:
                    who = f"[sources.{pin.name}]"
                    git_cands = [p for k, p in _candidates(ctx, [pin.name, _repo_basename(pin.git)]) if k == "git"]
                    remote = git_cands[0] if git_cands else pin.git
                    head = git_ls_remote(ctx, remote, pin.branch or "HEAD", who)
                    if head != pin.rev:
                        bumped = True
                        target = dataclasses.replace(
                            pin, rev=head, git_tree="", rev_date="", tree_hash=UNVERIFIED_TREE_HASH
                        )
                        lines.append(f"{pin.name}: rev {pin.rev} -> {head} ({pin.branch or 'HEAD'} of {remote})")
                res = fetch_source(
                    target, os.path.join(root, pin.name), mirror_dirs=mirror_dirs, git=git, timeout=timeout,
                    connect_timeout=connect_timeout, verify=False, discover_submodules=bumped, replace=True,
                    patch=patch, env=env, log=on_progress, _probe_cache=ctx.probe_cache,
                )
                results.append(res)
                if res.archive_sha256 and res.archive_sha256 != target.archive_sha256:
                    lines.append(f"{pin.name}: archive_sha256 {target.archive_sha256} -> {res.archive_sha256}")
                new = dataclasses.replace(
                    target,
                    archive_sha256=res.archive_sha256 or target.archive_sha256,
                    tree_hash=res.tree_hash,
                    git_tree=res.git_tree or target.git_tree,
                    rev_date=target.rev_date or res.rev_date,
                    submodules=res.submodules if bumped else target.submodules,
                )
                if new.tree_hash != pin.tree_hash:
                    lines.append(f"{pin.name}: tree_hash {pin.tree_hash} -> {new.tree_hash}")
                else:
                    lines.append(f"{pin.name}: unchanged ({new.tree_hash})")
                if new != pin:
                    lock = lock.replace(new)
                    if on_updated:
                        on_updated(lock)
                if own_tmp:
                    _rmtree(res.dest)
            except SourceUnreachable as e:
                unreach.append(e)
            except ToolError as e:
                failures.append((pin.name, e))
    finally:
        if own_tmp:
            _rmtree(root)
    if unreach or failures:
        raise SourcesUnavailable(unreach, failures, results, len(pins))
    return lock, lines
