"""`redox_make_package`: an upstream's own Makefile (or script) run offline in the Redox cross
environment, in one sandboxed process -> staged tree (`redox_tools.builders.make_build`)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import AddPrefix, Digest, DigestSubset, MergeDigests, PathGlobs, Snapshot
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from redox.goals.cargo_package import CARGO_GIT_DIR, CARGO_VENDOR_DIR, CargoVendor, CargoVendorRequest
from redox.goals.source import OwnSourcesLayout, PackageCode, PackageCodeRequest
from redox.subsystems.toolchain import RedoxToolchainSubsystem
from redox.target_types import (
    CargoRustflagsField,
    CargoSourceField,
    CargoSourceSubdirField,
    MakeCommandsField,
    MakeHostToolsField,
    MakeScriptField,
    MakeSourcesField,
    MakeSysrootField,
    MakeVariablesField,
    RedoxTargetTripleField,
    SysrootInterpreterField,
)
from redox.util_rules.package_build import PackageBuildError, PackageBuildRequest
from redox.util_rules.references import parse_reference
from redox.util_rules.staged_tree import (
    StagedTree,
    StagedTreeFieldSet,
    StagedTreePackageRequest,
    StagedTreeRequest,
)
from redox.util_rules.toolchain import RedoxToolchain, RedoxToolchainRequest

HOST_TOOLS_DIR = "__host_tools"
MAKE_SYSROOT_DIR = "__make_sysroot"


@dataclass(frozen=True)
class MakePackageFieldSet(PackageFieldSet, StagedTreeFieldSet):
    required_fields = (MakeCommandsField, MakeScriptField)

    sources: MakeSourcesField
    source: CargoSourceField
    source_subdir: CargoSourceSubdirField
    rust_target: RedoxTargetTripleField
    make: MakeCommandsField
    script: MakeScriptField
    make_variables: MakeVariablesField
    rustflags: CargoRustflagsField
    host_tools: MakeHostToolsField
    sysroot: MakeSysrootField
    interpreter: SysrootInterpreterField
    output_path: OutputPathField


def _input(reference: str, address: Address, field: str) -> AddressInput:
    origin = f"the `{field}` field of {address}"
    return parse_reference(reference, relative_to=address.spec_path, origin=origin)


@rule(desc="Build a Redox make package", level=LogLevel.DEBUG)
async def build_make_package(field_set: MakePackageFieldSet, toolchain_subsystem: RedoxToolchainSubsystem) -> StagedTree:
    address = field_set.address
    triple = field_set.rust_target.value or ""
    if bool(field_set.make.value) == bool(field_set.script.value):
        raise PackageBuildError(f"{address}: set exactly one of `make` (upstream's make runs) or `script`")
    # Without a `source`, the package's own tree is laid out like a checkout (the vendor step
    # looks for Cargo.lock there).
    code = await Get(
        PackageCode,
        PackageCodeRequest(
            address,
            field_set.source.value,
            field_set.source_subdir.value or "",
            field_set.sources,
            OwnSourcesLayout.UNDER_UPSTREAM,
        ),
    )
    tree_digest, src_dir = code.digest, code.root
    toolchain = await Get(RedoxToolchain, RedoxToolchainRequest(triple, needs_rust_src=True))

    # The crates the tree's Cargo.lock pins (the build's only network step, cached by lock).
    vendor_dirs = []
    git_vendor_dir = None
    lockfile = f"{src_dir}/Cargo.lock"
    found = await Get(Snapshot, DigestSubset(tree_digest, PathGlobs([lockfile])))
    inputs = [tree_digest]
    if lockfile in found.files:
        vendor = await Get(CargoVendor, CargoVendorRequest(address, tree_digest, src_dir, toolchain))
        inputs.append(vendor.digest)
        vendor_dirs.append(CARGO_VENDOR_DIR)
        git_vendor_dir = CARGO_GIT_DIR

    # Host tools (their bin/ first on PATH) and the sysroot: other packages' staged trees.
    refs = [("host_tools", r) for r in field_set.host_tools.value or ()]
    if field_set.sysroot.value:
        refs.append(("sysroot", field_set.sysroot.value))
    addresses = await MultiGet(Get(Address, AddressInput, _input(r, address, f)) for f, r in refs)
    trees = await MultiGet(
        Get(StagedTree, StagedTreeRequest(a, f"the `{f}` field of {address}")) for a, (f, _) in zip(addresses, refs)
    )
    dirs = [f"{HOST_TOOLS_DIR}/{i}" if f == "host_tools" else MAKE_SYSROOT_DIR for i, (f, _) in enumerate(refs)]
    inputs += await MultiGet(Get(Digest, AddPrefix(t.digest, d)) for t, d in zip(trees, dirs))
    host_dirs = [d for d in dirs if d != MAKE_SYSROOT_DIR]
    sysroot = MAKE_SYSROOT_DIR if field_set.sysroot.value else None

    spec = {
        "package": str(address),
        "src_dir": src_dir,
        "toolchain": json.loads(toolchain.env_json()),
        "target": triple,
        "make": list(field_set.make.value or ()),
        "script": field_set.script.value,
        "make_variables": dict(field_set.make_variables.value or {}),
        "rustflags": list(field_set.rustflags.value or ()),
        "vendor_dirs": vendor_dirs,
        "git_vendor_dir": git_vendor_dir,
        "host_tools": host_dirs,
        "sysroot": sysroot,
        "path": list(toolchain_subsystem.search_path) + ["/usr/bin", "/bin"],
    }
    tree = await Get(
        StagedTree,
        PackageBuildRequest.create(
            address,
            "redox_tools.builders.make_build",
            spec,
            await Get(Digest, MergeDigests(inputs)),
            toolchain,
            {},
            f"make {address} ({triple})",
        ),
    )
    snapshot = await Get(Snapshot, Digest, tree.digest)
    return StagedTree(address, tree.digest, tuple(sorted(snapshot.files)))


@rule(desc="Package a Redox make package", level=LogLevel.DEBUG)
async def package_make_package(field_set: MakePackageFieldSet) -> BuiltPackage:
    return await Get(BuiltPackage, StagedTreePackageRequest(field_set.address, field_set.output_path))


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, MakePackageFieldSet),
        UnionRule(StagedTreeFieldSet, MakePackageFieldSet),
    ]
