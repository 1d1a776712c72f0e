"""The Rust standard library, built once per key and reused by every package build of that key.

A `redox_cargo_package` with `build_std` no longer compiles core/alloc/std itself: it gets a
sysroot (`lib/rustlib/<target>/lib/*.rlib`, built by `redox_tools.stdlib.build` as its own
cached process) and builds with `--sysroot` instead of `-Z build-std`.

The key is what shapes the std crates' code, and nothing else, so packages share it:
- the toolchain (its fingerprint) and the target (the triple, or the target JSON's contents and
  file stem, which is the target's name);
- the `-Z build-std` crates and `-Z build-std-features`;
- the profile settings that reach the std crates under `-Z build-std` (opt-level, debug,
  debug-assertions, overflow-checks, panic, codegen-units) from the crate manifest's
  `[profile.<name>]` (with `inherits`) overridden by the target's `profile_settings`,
  normalized against the built-in profile's defaults; `lto` only decides whether the rlibs carry
  bitcode;
- the package's rustflags minus those that only affect linking or the package's own crates
  (`-Clink-arg`, `-Zpre-link-arg`, `--cfg`, `-L`, lints, ...): relocation model, target
  features (crt-static included), panic strategy, code model and any flag not known to be
  link-only stay in the key. A dynamically linked package adds `-Ctarget-feature=-crt-static`
  (as the cargo driver does), so its std is built for that too.
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import toml
from pants.engine.addresses import Address
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from redox.util_rules.package_build import PackageBuildError, failure_message
from redox.util_rules.redox_tools import RedoxToolProcess
from redox.util_rules.toolchain import RedoxToolchain, RedoxToolchainRequest

STD_SYSROOT_DIR = "__std_sysroot"
STD_TARGET_DIR = "__std_target"
STD_SPEC_FILE = "__std_spec.json"

# ---------------------------------------------------------------------------------------------
# the key (pure functions)
# ---------------------------------------------------------------------------------------------

PROFILE_KEYS = ("opt-level", "debug", "debug-assertions", "overflow-checks", "panic", "codegen-units")
DEFAULTS = {
    "release": {"opt-level": "3", "debug": "0", "debug-assertions": "false", "overflow-checks": "false",
                "panic": "unwind", "codegen-units": "16"},
    "dev": {"opt-level": "0", "debug": "2", "debug-assertions": "true", "overflow-checks": "true",
            "panic": "unwind", "codegen-units": "256"},
}
BUILTIN_BASES = {"release": "release", "bench": "release", "dev": "dev", "test": "dev"}

# -C options that only matter when linking (or name the package's own outputs).
LINK_ONLY_C = frozenset({
    "link-arg", "link-args", "linker", "linker-flavor", "link-self-contained", "prefer-dynamic",
    "rpath", "strip", "link-dead-code", "relro-level", "default-linker-libraries", "incremental",
    "metadata", "extra-filename", "save-temps",
})
LINK_ONLY_Z = frozenset({"pre-link-arg", "pre-link-args"})
# Flags (with a value) that do not change the std crates' code.
DROPPED_WITH_VALUE = frozenset({"--cfg", "--check-cfg", "-L", "-l", "--remap-path-prefix", "-W", "-A", "-D",
                                "-F", "--warn", "--allow", "--deny", "--forbid", "--cap-lints"})


def _bool(value: Any) -> str:
    return str(value).lower()


def normalize_setting(key: str, value: Any) -> str:
    text = _bool(value) if isinstance(value, bool) else str(value).strip().lower()
    if key == "debug":
        return {"false": "0", "none": "0", "true": "2", "full": "2", "limited": "1"}.get(text, text)
    return text


def std_codegen_flags(rustflags: Sequence[str]) -> Tuple[str, ...]:
    """The package's rustflags that shape the std crates, as `-Cname=value` / `-Zname=value`."""
    out: List[str] = []
    flags = list(rustflags)
    i = 0
    while i < len(flags):
        flag = flags[i]
        i += 1
        if flag in ("-C", "-Z", "--codegen") and i < len(flags):
            flag = ("-Z" if flag == "-Z" else "-C") + flags[i]
            i += 1
        elif flag in DROPPED_WITH_VALUE:
            i += 1
            continue
        if flag.startswith(("--cfg=", "--check-cfg=", "--remap-path-prefix=", "--cap-lints=")):
            continue
        if flag[:2] in ("-L", "-l", "-W", "-A", "-D", "-F") and len(flag) > 2:
            continue
        if flag.startswith("--codegen="):
            flag = "-C" + flag[len("--codegen="):]
        if flag[:2] in ("-C", "-Z"):
            name = flag[2:].split("=", 1)[0]
            if (flag[:2] == "-C" and name in LINK_ONLY_C) or (flag[:2] == "-Z" and name in LINK_ONLY_Z):
                continue
        out.append(flag)
    return tuple(out)


def manifest_profiles(text: str) -> Dict[str, Dict[str, Any]]:
    """`[profile.*]` of a Cargo.toml ({} when it has none or does not parse: cargo will say why)."""
    try:
        data = toml.loads(text)
    except Exception:
        return {}
    profiles = data.get("profile", {})
    return {k: v for k, v in profiles.items() if isinstance(v, dict)} if isinstance(profiles, dict) else {}


def std_profile(
    profile: str, manifest: Mapping[str, Mapping[str, Any]], settings: Mapping[str, str]
) -> Tuple[str, Tuple[Tuple[str, str], ...], bool]:
    """(built-in base profile, std settings that differ from its defaults, rlibs need bitcode).

    A custom profile follows `inherits` in the manifest to dev or release; the manifest's values
    along the chain apply base first, and the target's `profile_settings` (cargo's
    CARGO_PROFILE_* config) override them."""
    chain = [profile]
    while chain[-1] not in BUILTIN_BASES:
        parent = manifest.get(chain[-1], {}).get("inherits")
        if not isinstance(parent, str) or parent in chain:
            raise PackageBuildError(
                f"profile {profile!r} is neither built in nor declared with `inherits` in the crate's Cargo.toml"
            )
        chain.append(parent)
    base = BUILTIN_BASES[chain[-1]]
    merged: Dict[str, Any] = {}
    for name in reversed(chain):
        merged.update(manifest.get(name, {}))
    merged.update(settings)
    std = {
        k: normalize_setting(k, merged[k])
        for k in PROFILE_KEYS
        if k in merged and normalize_setting(k, merged[k]) != DEFAULTS[base][k]
    }
    lto = normalize_setting("lto", merged.get("lto", "false"))
    return base, tuple(sorted(std.items())), lto not in ("false", "off", "")


# ---------------------------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StdSysrootRequest:
    """One std build: everything here (and the toolchain fingerprint) is the process key."""

    triple: str  # a triple, or "custom" with a target JSON
    target_json: Optional[str]  # file name of the JSON inside `target_json_digest` (under STD_TARGET_DIR)
    target_json_digest: Digest
    crates: Tuple[str, ...]
    features: Tuple[str, ...]
    profile: str  # "release" or "dev"
    profile_settings: Tuple[Tuple[str, str], ...]
    rustflags: Tuple[str, ...]
    embed_bitcode: bool

    def describe(self) -> str:
        target = self.target_json or self.triple
        extra = [*(f"{k}={v}" for k, v in self.profile_settings), *self.rustflags, *self.features]
        return f"{','.join(self.crates)} for {target} ({self.profile}{'; ' + ' '.join(extra) if extra else ''})"


@dataclass(frozen=True)
class StdSysroot:
    digest: Digest  # lib/rustlib/<target>/lib/*.rlib (the sysroot's contents), to mount at `path`
    path: str = STD_SYSROOT_DIR


@rule(desc="Build the Rust standard library once", level=LogLevel.DEBUG)
async def build_std_sysroot(request: StdSysrootRequest) -> StdSysroot:
    toolchain = await Get(RedoxToolchain, RedoxToolchainRequest(request.triple, needs_rust_src=True))
    spec = {
        "key": request.describe(),
        "toolchain": json.loads(toolchain.env_json()),
        "target": request.triple,
        "target_spec": f"{STD_TARGET_DIR}/{request.target_json}" if request.target_json else None,
        "crates": list(request.crates),
        "features": list(request.features),
        "profile": request.profile,
        "profile_settings": dict(request.profile_settings),
        "rustflags": list(request.rustflags),
        "embed_bitcode": request.embed_bitcode,
        "out_dir": STD_SYSROOT_DIR,
    }
    spec_digest = await Get(
        Digest, CreateDigest([FileContent(STD_SPEC_FILE, json.dumps(spec, sort_keys=True, indent=1).encode())])
    )
    process = await Get(
        Process,
        RedoxToolProcess(
            module="redox_tools.stdlib.build",
            args=(STD_SPEC_FILE,),
            description=f"Build Rust std {request.describe()}",
            input_digest=await Get(Digest, MergeDigests([spec_digest, request.target_json_digest])),
            output_directories=(STD_SYSROOT_DIR,),
            env=FrozenDict({"REDOX_TOOLCHAIN_FINGERPRINT": toolchain.fingerprint}),
        ),
    )
    process = dataclasses.replace(
        process,
        immutable_input_digests=FrozenDict({**process.immutable_input_digests, **toolchain.immutable_input_digests}),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise PackageBuildError(failure_message(result))
    return StdSysroot(await Get(Digest, RemovePrefix(result.output_digest, STD_SYSROOT_DIR)))


@dataclass(frozen=True)
class PackageStdRequest:
    """The std a cargo package's `build_std` asks for, resolved to a StdSysrootRequest."""

    address: Address
    sources_digest: Digest  # holds the crate's Cargo.toml (and target JSON) at `crate_dir`
    crate_dir: str
    triple: str
    target_spec: Optional[str]  # relative to crate_dir
    crates: Tuple[str, ...]
    features: Tuple[str, ...]
    profile: str
    profile_settings: Tuple[Tuple[str, str], ...]
    rustflags: Tuple[str, ...]
    linkage: str


@rule(desc="Resolve a package's std key", level=LogLevel.DEBUG)
async def package_std(request: PackageStdRequest) -> StdSysroot:
    manifest_path = posixpath.join(request.crate_dir, "Cargo.toml")
    json_path = posixpath.join(request.crate_dir, request.target_spec) if request.target_spec else None
    contents = await Get(
        DigestContents,
        DigestSubset(request.sources_digest, PathGlobs([manifest_path, *([json_path] if json_path else [])])),
    )
    by_path = {c.path: c.content for c in contents}
    manifest = manifest_profiles(by_path.get(manifest_path, b"").decode(errors="replace"))
    try:
        base, settings, bitcode = std_profile(request.profile, manifest, dict(request.profile_settings))
    except PackageBuildError as e:
        raise PackageBuildError(f"{request.address}: {e}") from None
    target_json = None
    json_digest = await Get(Digest, CreateDigest([]))
    if json_path:
        if json_path not in by_path:
            raise PackageBuildError(f"{request.address}: target_spec {request.target_spec} not found in the crate")
        target_json = posixpath.basename(json_path)
        json_digest = await Get(
            Digest, CreateDigest([FileContent(f"{STD_TARGET_DIR}/{target_json}", by_path[json_path])])
        )
    flags = list(request.rustflags)
    if request.linkage == "dynamic":
        flags.append("-Ctarget-feature=-crt-static")  # as redox_tools.builders.cargo_build adds for the package
    std_request = StdSysrootRequest(
        triple=request.triple,
        target_json=target_json,
        target_json_digest=json_digest,
        crates=request.crates,
        features=request.features,
        profile=base,
        profile_settings=settings,
        rustflags=std_codegen_flags(flags),
        embed_bitcode=bitcode,
    )
    try:
        return await Get(StdSysroot, StdSysrootRequest, std_request)
    except PackageBuildError as e:  # the std is shared: say which package asked for it
        raise PackageBuildError(f"{request.address}: its `build_std` failed to build: {e}") from None


def rules():
    return collect_rules()
