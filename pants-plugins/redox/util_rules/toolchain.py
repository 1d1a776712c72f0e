"""The Redox toolchain as a value: one `RedoxToolchain` per target triple, from either provider.

Build rules never care where the tools came from: they get absolute host paths (system
provider) or paths below `TOOLCHAIN_DIR` inside the sandbox (download provider, mounted as an
immutable input), plus a fingerprint that is part of every cache key.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from pants.core.util_rules.archive import ExtractedArchive, MaybeExtractArchiveRequest
from pants.core.util_rules.system_binaries import (
    BashBinary,
    BinaryPathRequest,
    BinaryPaths,
    BinaryPathTest,
)
from pants.engine.fs import (
    EMPTY_DIGEST,
    Digest,
    DigestSubset,
    DownloadFile,
    FileDigest,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from redox.subsystems.toolchain import DOWNLOAD, SYSTEM, RedoxToolchainSubsystem
from redox.target_types import KNOWN_TRIPLES

TOOLCHAIN_DIR = "__redox_toolchain"
TOOL_KEYS = ("rustc", "cargo", "clang", "lld", "objcopy", "ar", "nasm")


class ToolchainError(Exception):
    """The toolchain cannot be provided; the message says what is missing and the fix."""


@dataclass(frozen=True)
class RedoxToolchainRequest:
    triple: str  # one of KNOWN_TRIPLES, or "custom" for a target JSON
    needs_rust_src: bool = True


@dataclass(frozen=True)
class RedoxToolchain:
    """Tools for one triple. Paths are absolute (system) or relative to the sandbox root."""

    triple: str
    provider: str
    tools: FrozenDict[str, str]  # key in TOOL_KEYS -> path
    sysroot: str
    rust_src: str  # the directory holding library/ (rust-src root)
    std_vendor: str  # the std library's vendored crates (cargo directory source)
    fingerprint: str
    digest: Digest = EMPTY_DIGEST  # download provider: mounted at TOOLCHAIN_DIR

    @property
    def immutable_input_digests(self) -> Dict[str, Digest]:
        return {TOOLCHAIN_DIR: self.digest} if self.digest != EMPTY_DIGEST else {}

    def tool(self, key: str) -> str:
        try:
            return self.tools[key]
        except KeyError:
            raise ToolchainError(
                f"[redox-toolchain] provider={self.provider} has no `{key}` tool; "
                f"add it to [redox-toolchain].tool_names or install it"
            ) from None

    def env_json(self) -> str:
        """The toolchain as JSON for build scripts (they resolve relative paths against $PWD)."""
        return json.dumps(
            {
                "provider": self.provider,
                "tools": dict(self.tools),
                "sysroot": self.sysroot,
                "rust_src": self.rust_src,
                "std_vendor": self.std_vendor,
                "fingerprint": self.fingerprint,
            },
            sort_keys=True,
        )


def check_triple(triple: str) -> None:
    if triple not in KNOWN_TRIPLES and triple != "custom":
        raise ToolchainError(
            f"unknown target triple {triple!r}: use one of {', '.join(KNOWN_TRIPLES)}, or a custom "
            "target JSON via `target_spec`"
        )


# ---------------------------------------------------------------------------------------------
# system provider
# ---------------------------------------------------------------------------------------------

_PROBE_SCRIPT = r"""
set -u
sysroot="$("$1" --print sysroot)" || { echo "RUSTC-FAILED"; exit 3; }
src="$sysroot/lib/rustlib/src/rust"
echo "$sysroot"
if [ ! -f "$src/library/core/Cargo.toml" ]; then echo "MISSING-RUST-SRC $src/library"; exit 0; fi
echo "$(cd "$src" && pwd -P)"
"""

_INSTALL_HINT = {
    "rustc": "rustc-web (Debian bookworm-security)",
    "cargo": "cargo-web",
    "clang": "clang-22",
    "lld": "lld-22",
    "objcopy": "llvm-22",
    "ar": "llvm-22",
    "nasm": "nasm",
}
REQUIRED_TOOLS = ("rustc", "cargo", "lld")


@dataclass(frozen=True)
class SystemToolRequest:
    key: str
    names: Tuple[str, ...]
    search_path: Tuple[str, ...]


@dataclass(frozen=True)
class SystemTool:
    key: str
    path: Optional[str]
    fingerprint: str
    tried: Tuple[str, ...]


@rule(desc="Find a host tool for the Redox toolchain", level=LogLevel.DEBUG)
async def find_system_tool(request: SystemToolRequest) -> SystemTool:
    results = await MultiGet(
        Get(
            BinaryPaths,
            BinaryPathRequest(
                binary_name=name,
                search_path=request.search_path,
                test=BinaryPathTest(args=["--version"], fingerprint_stdout=True),
            ),
        )
        for name in request.names
    )
    for paths in results:
        first = paths.first_path
        if first is not None:
            return SystemTool(request.key, first.path, first.fingerprint, request.names)
    return SystemTool(request.key, None, "", request.names)


def tool_requests(subsystem: RedoxToolchainSubsystem) -> List[SystemToolRequest]:
    names = dict(subsystem.tool_names)
    search_path = tuple(subsystem.search_path)
    return [
        SystemToolRequest(key, tuple(n.strip() for n in names.get(key, key).split(",") if n.strip()), search_path)
        for key in TOOL_KEYS
    ]


def missing_tools_message(found: Dict[str, SystemTool], search_path: Tuple[str, ...]) -> Optional[str]:
    missing = [found[k] for k in REQUIRED_TOOLS if found[k].path is None]
    if not missing:
        return None
    return "[redox-toolchain] provider=system: " + "; ".join(
        f"no {t.key} ({' or '.join(t.tried)}) in {':'.join(search_path)} (install {_INSTALL_HINT[t.key]})"
        for t in missing
    )


def fingerprint_of(parts: Dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class SystemToolchainRequest:
    triple: str
    needs_rust_src: bool


@rule(desc="Set up the system Redox toolchain", level=LogLevel.DEBUG)
async def system_toolchain(
    request: SystemToolchainRequest, subsystem: RedoxToolchainSubsystem, bash: BashBinary
) -> RedoxToolchain:
    requests = tool_requests(subsystem)
    found_list = await MultiGet(Get(SystemTool, SystemToolRequest, r) for r in requests)
    found = {t.key: t for t in found_list}
    problem = missing_tools_message(found, tuple(subsystem.search_path))
    if problem:
        raise ToolchainError(problem)
    rustc = found["rustc"].path
    assert rustc is not None
    probe = await Get(
        ProcessResult,
        Process(
            [bash.path, "-c", _PROBE_SCRIPT, "probe", rustc],
            description=f"Probe {rustc} for its sysroot and rust-src",
            # The rustc fingerprint is part of the key; the probe reruns once per Pants restart in
            # case rust-src was removed from the host meanwhile.
            env={"REDOX_RUSTC_FINGERPRINT": found["rustc"].fingerprint},
            cache_scope=ProcessCacheScope.PER_RESTART_SUCCESSFUL,
            level=LogLevel.DEBUG,
        ),
    )
    lines = probe.stdout.decode().split()
    sysroot = lines[0] if lines else ""
    rust_src = lines[1] if len(lines) > 1 else ""
    if rust_src == "MISSING-RUST-SRC":
        if request.needs_rust_src:
            raise ToolchainError(
                f"[redox-toolchain] provider=system: {rustc} has no rust-src (looked for "
                f"{lines[2] if len(lines) > 2 else sysroot + '/lib/rustlib/src/rust/library'}); "
                "-Z build-std needs it: install rust-web-src (Debian) or use provider=download"
            )
        rust_src = ""
    fp = fingerprint_of(
        {**{k: t.fingerprint for k, t in found.items()}, "sysroot": sysroot, "rust_src": rust_src}
    )
    return RedoxToolchain(
        triple=request.triple,
        provider=SYSTEM,
        tools=FrozenDict({k: t.path for k, t in found.items() if t.path}),
        sysroot=sysroot,
        rust_src=rust_src,
        std_vendor=f"{rust_src}/library/vendor" if rust_src else "",
        fingerprint=fp,
    )


# ---------------------------------------------------------------------------------------------
# download provider
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchivePin:
    date: str
    component: str
    archive_triple: str
    sha256: str
    length: int

    @classmethod
    def parse(cls, text: str) -> "ArchivePin":
        parts = [p.strip() for p in text.split("|")]
        if len(parts) != 5 or not parts[4].isdigit():
            raise ToolchainError(
                f"[redox-toolchain].known_versions entry {text!r} is not "
                "`<date>|<component>|<archive_triple>|<sha256>|<length>`"
            )
        return cls(parts[0], parts[1], parts[2], parts[3], int(parts[4]))


def needed_archives(host: str) -> List[Tuple[str, str]]:
    """(component, archive_triple) pairs of the download provider. The same for every target:
    Redox, UEFI and custom targets build their std from rust-src (`-Z build-std`), and the host's
    rust-std serves build scripts and host packages."""
    return [("rustc", host), ("cargo", host), ("rust-std", host), ("rust-src", "")]


def archive_subdir(component: str, archive_triple: str) -> str:
    """Top directory and component directory inside a Rust dist archive."""
    top = f"{component}-nightly" + (f"-{archive_triple}" if archive_triple else "")
    inner = component + (f"-{archive_triple}" if component == "rust-std" else "")
    if component == "rust-src":
        inner = "rust-src"
    return f"{top}/{inner}"


def pins_for(subsystem: RedoxToolchainSubsystem) -> List[Tuple[ArchivePin, str]]:
    pins = [ArchivePin.parse(t) for t in subsystem.known_versions]
    chosen: List[Tuple[ArchivePin, str]] = []
    missing = []
    for component, archive_triple in needed_archives(subsystem.host_triple):
        match = next(
            (
                p
                for p in pins
                if p.date == subsystem.nightly and p.component == component and p.archive_triple == archive_triple
            ),
            None,
        )
        if match is None:
            missing.append(f"{component}{'-' + archive_triple if archive_triple else ''}")
            continue
        url = subsystem.url_template.format(
            date=subsystem.nightly, component=component, archive_triple=archive_triple
        ).replace("-nightly-.tar", "-nightly.tar")
        chosen.append((match, url))
    if missing:
        raise ToolchainError(
            f"[redox-toolchain] provider=download: no pinned sha256 for nightly {subsystem.nightly} "
            f"archives {', '.join(missing)}; add them to [redox-toolchain].known_versions "
            "(from the channel manifest on a connected machine) or use provider=system"
        )
    return chosen


@dataclass(frozen=True)
class DownloadToolchainRequest:
    triple: str


@rule(desc="Download the pinned Rust nightly", level=LogLevel.DEBUG)
async def download_toolchain(
    request: DownloadToolchainRequest, subsystem: RedoxToolchainSubsystem
) -> RedoxToolchain:
    chosen = pins_for(subsystem)
    try:
        downloaded = await MultiGet(
            Get(Digest, DownloadFile(url, FileDigest(pin.sha256, pin.length))) for pin, url in chosen
        )
    except Exception as e:  # the engine raises its own error types for failed downloads
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ToolchainError(
            f"[redox-toolchain] provider=download: cannot fetch the Rust nightly {subsystem.nightly} "
            f"({first}). Offline? Point [redox-toolchain].url_template at a mirror (file:// works) "
            "or use provider=system"
        ) from None
    extracted = await MultiGet(Get(ExtractedArchive, MaybeExtractArchiveRequest(d)) for d in downloaded)
    # Each dist archive holds `<top>/<component>/<sysroot files>` next to installer files.
    subdirs = [archive_subdir(pin.component, pin.archive_triple) for pin, _ in chosen]
    subsets = await MultiGet(
        Get(Digest, DigestSubset(x.digest, PathGlobs([f"{sub}/**"]))) for x, sub in zip(extracted, subdirs)
    )
    installed = await MultiGet(Get(Digest, RemovePrefix(d, sub)) for d, sub in zip(subsets, subdirs))
    sysroot_digest = await Get(Digest, MergeDigests(installed))
    root = TOOLCHAIN_DIR
    tools = {"rustc": f"{root}/bin/rustc", "cargo": f"{root}/bin/cargo"}
    return RedoxToolchain(
        triple=request.triple,
        provider=DOWNLOAD,
        tools=FrozenDict(tools),
        sysroot=root,
        rust_src=f"{root}/lib/rustlib/src/rust",
        std_vendor=f"{root}/lib/rustlib/src/rust/library/vendor",
        fingerprint=fingerprint_of({f"{p.component}-{p.archive_triple}": p.sha256 for p, _ in chosen}),
        digest=sysroot_digest,
    )


@rule(desc="Set up the Redox toolchain", level=LogLevel.DEBUG)
async def redox_toolchain(request: RedoxToolchainRequest, subsystem: RedoxToolchainSubsystem) -> RedoxToolchain:
    check_triple(request.triple)
    if subsystem.provider == SYSTEM:
        return await Get(RedoxToolchain, SystemToolchainRequest(request.triple, request.needs_rust_src))
    if subsystem.provider == DOWNLOAD:
        return await Get(RedoxToolchain, DownloadToolchainRequest(request.triple))
    raise ToolchainError(
        f"[redox-toolchain].provider = {subsystem.provider!r}: expected `{SYSTEM}` or `{DOWNLOAD}`"
    )


def rules():
    return [*collect_rules(), *RedoxToolchainSubsystem.rules()]
