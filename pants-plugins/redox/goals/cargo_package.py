"""`redox_cargo_package`: one sandboxed, offline cargo build per package -> staged tree."""
from __future__ import annotations

import json
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import AddPrefix, Digest, MergeDigests
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    HydratedSources,
    HydrateSourcesRequest,
    SourcesField,
    Targets,
    UnparsedAddressInputs,
)
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from redox.subsystems.toolchain import RedoxToolchainSubsystem
from redox.target_types import (
    CargoBinsField,
    CargoBuildStdFeaturesField,
    CargoBuildStdField,
    CargoEntryField,
    CargoFeaturesField,
    CargoLinkerScriptField,
    CargoNasmSourcesField,
    CargoNoDefaultFeaturesField,
    CargoPackageNameField,
    CargoProfileField,
    CargoRustflagsField,
    CargoSourceField,
    CargoSourceSubdirField,
    CargoSourcesField,
    CargoTargetSpecField,
    CargoVendorField,
    RedoxInstallField,
    RedoxTargetTripleField,
)
from redox.goals.source import SourceCheckout, SourceCheckoutRequest
from redox.util_rules.package_build import PackageBuildError, PackageBuildRequest
from redox.util_rules.references import parse_reference
from redox.util_rules.staged_tree import (
    StagedTree,
    StagedTreeFieldSet,
    StagedTreePackageRequest,
)
from redox.util_rules.toolchain import RedoxToolchain, RedoxToolchainRequest

UPSTREAM_DIR = "__upstream"


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
    cargo_package: CargoPackageNameField
    bins: CargoBinsField
    entry: CargoEntryField
    nasm_sources: CargoNasmSourcesField
    vendor: CargoVendorField
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
    if field_set.source.value:
        source_address = await Get(
            Address,
            AddressInput,
            parse_reference(field_set.source.value, relative_to=address.spec_path, origin=f"the `source` field of {address}"),
        )
        checkout = await Get(SourceCheckout, SourceCheckoutRequest(source_address, f"the `source` field of {address}"))
        upstream_digest = await Get(Digest, AddPrefix(checkout.digest, UPSTREAM_DIR))
        upstream_dir = "/".join(p for p in (UPSTREAM_DIR, (field_set.source_subdir.value or "").strip("/")) if p)
    toolchain, sources, vendor_files = await MultiGet(
        Get(RedoxToolchain, RedoxToolchainRequest(triple, needs_rust_src=bool(field_set.build_std.value))),
        Get(HydratedSources, HydrateSourcesRequest(field_set.sources)),
        Get(SourceFiles, SourceFilesRequest([t[SourcesField] for t in vendor_targets])),
    )
    spec = {
        "package": str(address),
        "crate_dir": upstream_dir if upstream_dir is not None else crate_dir(address, sources.snapshot.files),
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
        "cargo_package": field_set.cargo_package.value,
        "bins": list(field_set.bins.value or ()),
        # A vendor target's files are a cargo vendor directory rooted at the target's directory.
        "vendor_dirs": [t.address.spec_path for t in vendor_targets],
        "install": dict(field_set.install.value),
        "path": list(toolchain_subsystem.search_path) + ["/usr/bin", "/bin"],
    }
    input_digest = await Get(
        Digest,
        MergeDigests(
            [sources.snapshot.digest, vendor_files.snapshot.digest, *([upstream_digest] if upstream_digest else [])]
        ),
    )
    return await Get(
        StagedTree,
        PackageBuildRequest.create(
            address,
            "redox_tools.cargo_build",
            spec,
            input_digest,
            toolchain,
            dict(field_set.install.value),
            f"cargo build {address} ({triple})",
        ),
    )


@rule(desc="Package a Redox Cargo package", level=LogLevel.DEBUG)
async def package_cargo_package(field_set: CargoPackageFieldSet) -> BuiltPackage:
    return await Get(BuiltPackage, StagedTreePackageRequest(field_set.address, field_set.output_path))


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, CargoPackageFieldSet),
        UnionRule(StagedTreeFieldSet, CargoPackageFieldSet),
    ]
