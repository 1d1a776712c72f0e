"""`redox_cargo_package`: one sandboxed, offline cargo build per package -> staged tree."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import List

from pants.core.goals.package import BuiltPackage, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    Snapshot,
)
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    HydratedSources,
    HydrateSourcesRequest,
    SourcesField,
    Targets,
    UnparsedAddressInputs,
)
from pants.engine.unions import UnionRule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from redox.subsystems.sources import RedoxSourcesSubsystem
from redox.subsystems.toolchain import RedoxToolchainSubsystem
from redox.target_types import (
    CargoBinsField,
    CargoBuildStdFeaturesField,
    CargoBuildStdField,
    CargoEmitObjectField,
    CargoLibOnlyField,
    CargoEntryField,
    CargoFeaturesField,
    CargoLinkerScriptField,
    CargoNasmSourcesField,
    CargoNoDefaultFeaturesField,
    CargoPackageNameField,
    CargoProfileField,
    CargoProfileSettingsField,
    CargoRustflagsField,
    CargoSourceField,
    CargoSourceSubdirField,
    CargoSourcesField,
    CargoSplitDebugField,
    CargoTargetSpecField,
    CargoVendorField,
    CargoVendorLockfileField,
    RedoxInstallField,
    RedoxLinkageField,
    RedoxSysrootField,
    RedoxTargetTripleField,
)
from redox.goals.sysroot import SysrootInput, SysrootInputRequest
from redox.goals.source import (
    UPSTREAM_DIR,
    OwnSourcesLayout,
    PackageCode,
    PackageCodeRequest,
    PackageSource,
    PackageSourceRequest,
)
from redox.util_rules.package_build import PackageBuildError, PackageBuildRequest, failure_message
from redox.util_rules.redox_tools import RedoxToolProcess
from redox.util_rules.staged_tree import (
    StagedTree,
    StagedTreeFieldSet,
    StagedTreePackageRequest,
)
from redox.util_rules.std_sysroot import PackageStdRequest, StdSysroot
from redox.util_rules import std_sysroot
from redox.util_rules.toolchain import RedoxToolchain, RedoxToolchainRequest

CARGO_VENDOR_DIR = "__cargo_vendor"
CARGO_GIT_DIR = "__cargo_git"  # the lock's git dependencies, fetched by the project (redox_tools.sources.cargo_git)
CARGO_HOME_DIR = "__cargo_home"


@dataclass(frozen=True)
class CargoPackageFieldSet(PackageFieldSet, StagedTreeFieldSet):
    required_fields = (CargoSourcesField, RedoxTargetTripleField)

    sources: CargoSourcesField
    source: CargoSourceField
    source_subdir: CargoSourceSubdirField
    rust_target: RedoxTargetTripleField
    target_spec: CargoTargetSpecField
    linker_script: CargoLinkerScriptField
    build_std: CargoBuildStdField
    build_std_features: CargoBuildStdFeaturesField
    features: CargoFeaturesField
    no_default_features: CargoNoDefaultFeaturesField
    rustflags: CargoRustflagsField
    profile: CargoProfileField
    cargo_packages: CargoPackageNameField
    profile_settings: CargoProfileSettingsField
    split_debug: CargoSplitDebugField
    bins: CargoBinsField
    entry: CargoEntryField
    nasm_sources: CargoNasmSourcesField
    emit_object: CargoEmitObjectField
    lib_only: CargoLibOnlyField
    vendor: CargoVendorField
    vendor_lockfile: CargoVendorLockfileField
    sysroot: RedoxSysrootField
    linkage: RedoxLinkageField
    install: RedoxInstallField
    output_path: OutputPathField


def crate_dir(address, files) -> str:
    """The directory of the crate's root Cargo.toml among the target's sources (the shallowest)."""
    manifests = sorted((f for f in files if f.rsplit("/", 1)[-1] == "Cargo.toml"), key=lambda f: (f.count("/"), f))
    if not manifests:
        raise PackageBuildError(f"{address}: no Cargo.toml among the target's `sources`")
    return manifests[0].rsplit("/", 1)[0] if "/" in manifests[0] else ""


def triple_of(fs: CargoPackageFieldSet) -> str:
    return "custom" if fs.target_spec.value else (fs.rust_target.value or "")


@dataclass(frozen=True)
class CargoPackageStdRequest:
    """The prebuilt std a cargo package's `build_std` asks for: for its build and its `redox_rust_std`."""

    field_set: CargoPackageFieldSet


@rule(desc="Get a cargo package's std", level=LogLevel.DEBUG)
async def cargo_package_std(request: CargoPackageStdRequest) -> StdSysroot:
    fs = request.field_set
    # The key reads the crate's Cargo.toml (its profiles) and target JSON: in the `source`
    # checkout, else among the target's own sources.
    code = await Get(
        PackageCode,
        PackageCodeRequest(fs.address, fs.source.value, fs.source_subdir.value or "", fs.sources, OwnSourcesLayout.AS_IS),
    )
    root = code.root if code.from_checkout else crate_dir(fs.address, code.files)
    return await Get(
        StdSysroot,
        PackageStdRequest(
            address=fs.address,
            sources_digest=code.digest,
            crate_dir=root,
            triple=triple_of(fs),
            target_spec=fs.target_spec.value,
            crates=tuple(sorted(set(fs.build_std.value or ()))),
            features=tuple(sorted(set(fs.build_std_features.value or ()))),
            profile=fs.profile.value or "release",
            profile_settings=tuple(sorted((fs.profile_settings.value or {}).items())),
            rustflags=tuple(fs.rustflags.value or ()),
            linkage=fs.linkage.value or "static",
        ),
    )


@dataclass(frozen=True)
class CargoVendorRequest:
    """Vendor the crates.io (and git) crates a `redox_source` crate's Cargo.lock pins."""

    address: Address  # the package, for messages
    upstream_digest: Digest  # the checkout under UPSTREAM_DIR
    crate_dir: str  # the crate inside it (UPSTREAM_DIR/<source_subdir>)
    toolchain: RedoxToolchain


@dataclass(frozen=True)
class CargoVendor:
    digest: Digest  # crates.io crates under CARGO_VENDOR_DIR, git dependencies under CARGO_GIT_DIR


def lock_candidates(crate_dir: str) -> List[str]:
    """Where the crate's Cargo.lock may be, nearest first: its own directory, then each parent up
    to the checkout root (a workspace member's lock is the workspace root's)."""
    if not crate_dir.startswith(UPSTREAM_DIR):  # a project crate (`vendor_lockfile`): its own lock
        return [f"{crate_dir}/Cargo.lock" if crate_dir else "Cargo.lock"]
    parts = crate_dir.split("/")
    return ["/".join(parts[:n] + ["Cargo.lock"]) for n in range(len(parts), 0, -1) if "/".join(parts[:n]).startswith(UPSTREAM_DIR)]


@dataclass(frozen=True)
class CrateMirrorFingerprintRequest:
    cargo_config: str


@dataclass(frozen=True)
class CrateMirrorFingerprint:
    value: str


@rule(desc="Fingerprint the local crate mirrors", level=LogLevel.DEBUG)
async def crate_mirror_fingerprint(request: CrateMirrorFingerprintRequest) -> CrateMirrorFingerprint:
    """What the `directory`/`local-registry` mirrors of `[redox-sources].cargo_config` hold,
    measured once per run (they live outside the repository), so that changing them re-vendors."""
    if not request.cargo_config.strip():
        return CrateMirrorFingerprint("")
    config = await Get(Digest, CreateDigest([FileContent("__cargo_config.toml", request.cargo_config.encode())]))
    process = await Get(
        Process,
        RedoxToolProcess(
            module="redox_tools.sources",
            args=("crate-mirror-fingerprint", "__cargo_config.toml"),
            description="Fingerprint the crate mirrors of [redox-sources].cargo_config",
            input_digest=config,
            cache_scope=ProcessCacheScope.PER_SESSION,
            level=LogLevel.DEBUG,
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise PackageBuildError(f"[redox-sources].cargo_config: {failure_message(result)}")
    return CrateMirrorFingerprint(result.stdout.decode().strip())


def in_sandbox(path: str) -> str:
    """An absolute path for a tool path that may be relative to the sandbox root."""
    return path if path.startswith("/") else "{chroot}/" + path


@rule(desc="Vendor a Redox Cargo package's crates", level=LogLevel.DEBUG)
async def vendor_cargo_crates(request: CargoVendorRequest, subsystem: RedoxSourcesSubsystem) -> CargoVendor:
    candidates = lock_candidates(request.crate_dir)
    found = await Get(Snapshot, DigestSubset(request.upstream_digest, PathGlobs(candidates)))
    lockfile = next((c for c in candidates if c in found.files), None)
    if lockfile is None:
        raise PackageBuildError(
            f"{request.address}: the source checkout has no Cargo.lock in "
            f"{request.crate_dir[len(UPSTREAM_DIR):].lstrip('/') or 'its root'} or above it; the vendor step "
            "vendors exactly the lock file, so the upstream crate must commit one (or set `source_subdir` to the "
            "crate that does)"
        )
    lock_dir = lockfile.rsplit("/", 1)[0]
    config, fingerprint = await MultiGet(
        Get(Digest, CreateDigest([FileContent(f"{CARGO_HOME_DIR}/config.toml", subsystem.cargo_config.encode())])),
        Get(CrateMirrorFingerprint, CrateMirrorFingerprintRequest(subsystem.cargo_config)),
    )
    toolchain = request.toolchain
    mirrors: List[str] = []
    for m in subsystem.mirror_dirs:
        mirrors += ["--mirror", m]
    process = await Get(
        Process,
        RedoxToolProcess(
            module="redox_tools.sources",
            args=(
                "vendor",
                *("--crate", lock_dir, "--out", CARGO_VENDOR_DIR, "--git-out", CARGO_GIT_DIR),
                *("--cargo", in_sandbox(toolchain.tool("cargo"))),
                *("--name", str(request.address), "--connect-timeout", str(subsystem.connect_timeout)),
                *mirrors,
            ),
            description=f"Vendor crates of {request.address}",
            input_digest=await Get(Digest, MergeDigests([request.upstream_digest, config])),
            output_directories=(CARGO_VENDOR_DIR, CARGO_GIT_DIR),
            env=FrozenDict(
                {
                    "PATH": "/usr/bin:/bin",
                    "RUSTC": in_sandbox(toolchain.tool("rustc")),
                    "CARGO_HOME": "{chroot}/" + CARGO_HOME_DIR,
                    "HOME": "{chroot}/" + CARGO_HOME_DIR,
                    "REDOX_TOOLCHAIN_FINGERPRINT": toolchain.fingerprint,
                    # What the local crate mirrors hold (they are outside the repository).
                    "REDOX_CRATE_MIRROR_FINGERPRINT": fingerprint.value,
                }
            ),
        ),
    )
    process = dataclasses.replace(
        process,
        immutable_input_digests=FrozenDict({**process.immutable_input_digests, **toolchain.immutable_input_digests}),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        # The tool's lines name the package and the cause (which source or crate, unreachable
        # or missing from the mirror), one line each.
        cause = failure_message(result)
        if not cause.startswith(str(request.address)):
            cause = f"{request.address}: vendoring its crates failed: {cause}"
        raise PackageBuildError(cause)
    return CargoVendor(result.output_digest)


@rule(desc="Build a Redox Cargo package", level=LogLevel.DEBUG)
async def build_cargo_package(
    field_set: CargoPackageFieldSet, toolchain_subsystem: RedoxToolchainSubsystem
) -> StagedTree:
    address = field_set.address
    triple = triple_of(field_set)
    if not field_set.install.value:
        raise PackageBuildError(f"{address}: `install` is empty, so the package would stage nothing")
    vendor_targets = await Get(Targets, UnparsedAddressInputs, field_set.vendor.to_unparsed_address_inputs())
    for t in vendor_targets:
        if not t.has_field(SourcesField):
            raise PackageBuildError(
                f"{address}: vendor target {t.address} has no files; use a `files` target over a cargo vendor directory"
            )
    upstream_digest = None
    upstream_dir = None
    git_vendor_dir = None
    toolchain_request = RedoxToolchainRequest(triple, needs_rust_src=bool(field_set.build_std.value))
    vendor_dirs = [t.address.spec_path for t in vendor_targets]
    if field_set.source.value:
        upstream = await Get(
            PackageSource, PackageSourceRequest(address, field_set.source.value, field_set.source_subdir.value or "")
        )
        upstream_digest = upstream.digest
        upstream_dir = upstream.root
        # The network step of the build: crates.io crates of the checkout's Cargo.lock.
        vendor_toolchain = await Get(RedoxToolchain, RedoxToolchainRequest, toolchain_request)
        cargo_vendor = await Get(
            CargoVendor, CargoVendorRequest(address, upstream_digest, upstream_dir, vendor_toolchain)
        )
        upstream_digest = await Get(Digest, MergeDigests([upstream_digest, cargo_vendor.digest]))
        vendor_dirs.append(CARGO_VENDOR_DIR)
        git_vendor_dir = CARGO_GIT_DIR
    sources = await Get(HydratedSources, HydrateSourcesRequest(field_set.sources))
    if field_set.vendor_lockfile.value and upstream_dir is None:
        # A project crate with crates.io dependencies: the same network step, over its own lock.
        vendor_toolchain = await Get(RedoxToolchain, RedoxToolchainRequest, toolchain_request)
        cargo_vendor = await Get(
            CargoVendor,
            CargoVendorRequest(
                address, sources.snapshot.digest, crate_dir(address, sources.snapshot.files), vendor_toolchain
            ),
        )
        upstream_digest = cargo_vendor.digest
        vendor_dirs.append(CARGO_VENDOR_DIR)
        git_vendor_dir = CARGO_GIT_DIR
    toolchain, vendor_files, sysroot = await MultiGet(
        Get(RedoxToolchain, RedoxToolchainRequest, toolchain_request),
        Get(SourceFiles, SourceFilesRequest([t[SourcesField] for t in vendor_targets])),
        Get(SysrootInput, SysrootInputRequest(address, field_set.sysroot.value)),
    )
    the_crate_dir = upstream_dir if upstream_dir is not None else crate_dir(address, sources.snapshot.files)
    # The std crates come prebuilt (one cached build per std key), not from `-Z build-std` here.
    std = await Get(StdSysroot, CargoPackageStdRequest(field_set)) if field_set.build_std.value else None
    spec = {
        "package": str(address),
        "crate_dir": the_crate_dir,
        "toolchain": json.loads(toolchain.env_json()),
        "target": triple,
        "target_spec": field_set.target_spec.value,
        "linker_script": field_set.linker_script.value,
        "entry": field_set.entry.value,
        "nasm_sources": list(field_set.nasm_sources.value or ()),
        "build_std": list(field_set.build_std.value or ()),
        "build_std_features": list(field_set.build_std_features.value or ()),
        "features": list(field_set.features.value or ()),
        "no_default_features": bool(field_set.no_default_features.value),
        "rustflags": list(field_set.rustflags.value or ()),
        "profile": field_set.profile.value or "release",
        "cargo_packages": list(field_set.cargo_packages.value or ()),
        "profile_settings": dict(field_set.profile_settings.value or {}),
        "split_debug": list(field_set.split_debug.value or ()),
        "bins": list(field_set.bins.value or ()),
        "emit_object": bool(field_set.emit_object.value),
        "lib_only": bool(field_set.lib_only.value),
        # A vendor target's files are a cargo vendor directory rooted at the target's directory.
        # (and, for a `source`, the crates its Cargo.lock pins, vendored above).
        "vendor_dirs": vendor_dirs,
        "git_vendor_dir": git_vendor_dir,
        "install": dict(field_set.install.value),
        "sysroot": sysroot.path,
        "linkage": field_set.linkage.value or "static",
        "interpreter": sysroot.interpreter,
        "path": list(toolchain_subsystem.search_path) + ["/usr/bin", "/bin"],
        "std_sysroot": std.path if std else None,
    }
    input_digest = await Get(
        Digest,
        MergeDigests(
            [
                sources.snapshot.digest,
                vendor_files.snapshot.digest,
                sysroot.digest,
                *([upstream_digest] if upstream_digest else []),
            ]
        ),
    )
    return await Get(
        StagedTree,
        PackageBuildRequest.create(
            address,
            "redox_tools.builders.cargo_build",
            spec,
            input_digest,
            toolchain,
            dict(field_set.install.value),
            f"cargo build {address} ({triple})",
            immutable_inputs={std.path: std.digest} if std else None,
        ),
    )


@rule(desc="Package a Redox Cargo package", level=LogLevel.DEBUG)
async def package_cargo_package(field_set: CargoPackageFieldSet) -> BuiltPackage:
    return await Get(BuiltPackage, StagedTreePackageRequest(field_set.address, field_set.output_path))


def rules():
    return [
        *collect_rules(),
        *std_sysroot.rules(),
        UnionRule(PackageFieldSet, CargoPackageFieldSet),
        UnionRule(StagedTreeFieldSet, CargoPackageFieldSet),
    ]
