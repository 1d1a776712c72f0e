"""`redox_c_package`: C compiled with clang for Redox in one sandboxed process -> staged tree."""
from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, OutputPathField, PackageFieldSet
from pants.engine.fs import EMPTY_DIGEST, Digest, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import HydratedSources, HydrateSourcesRequest
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from redox.util_rules.package_build import PackageBuildError, PackageBuildRequest
from redox.target_types import (
    CargoSourceField,
    CargoSourceSubdirField,
    CFlagsField,
    CIncludeDirsField,
    COutputKindField,
    CSourceFilesField,
    CSourcesField,
    RedoxInstallField,
    RedoxLinkageField,
    RedoxSysrootField,
    RedoxTargetTripleField,
)
from redox.goals.source import UPSTREAM_DIR, PackageSource, PackageSourceRequest
from redox.goals.sysroot import SysrootInput, SysrootInputRequest
from redox.util_rules.staged_tree import StagedTree, StagedTreeFieldSet, StagedTreePackageRequest
from redox.util_rules.toolchain import RedoxToolchain, RedoxToolchainRequest, ToolchainError



@dataclass(frozen=True)
class CPackageFieldSet(PackageFieldSet, StagedTreeFieldSet):
    required_fields = (CSourcesField, COutputKindField)

    sources: CSourcesField
    source: CargoSourceField
    source_subdir: CargoSourceSubdirField
    source_files: CSourceFilesField
    include_dirs: CIncludeDirsField
    rust_target: RedoxTargetTripleField
    output_kind: COutputKindField
    cflags: CFlagsField
    sysroot: RedoxSysrootField
    linkage: RedoxLinkageField
    install: RedoxInstallField
    output_path: OutputPathField


@rule(desc="Build a Redox C package", level=LogLevel.DEBUG)
async def build_c_package(field_set: CPackageFieldSet) -> StagedTree:
    address = field_set.address
    triple = field_set.rust_target.value or ""
    if not field_set.install.value:
        raise PackageBuildError(f"{address}: `install` is empty, so the package would stage nothing")
    if field_set.output_kind.value == "executable" and not field_set.sysroot.value:
        raise PackageBuildError(
            f"{address}: output_kind `executable` needs a `sysroot` (a redox_sysroot target, e.g. "
            "//packages/relibc:relibc) to link against"
        )
    toolchain, sources, sysroot = await MultiGet(
        Get(RedoxToolchain, RedoxToolchainRequest(triple, needs_rust_src=False)),
        Get(HydratedSources, HydrateSourcesRequest(field_set.sources)),
        Get(SysrootInput, SysrootInputRequest(address, field_set.sysroot.value)),
    )
    upstream_digest = EMPTY_DIGEST
    source_dir = None
    if field_set.source.value:
        upstream = await Get(
            PackageSource, PackageSourceRequest(address, field_set.source.value, field_set.source_subdir.value or "")
        )
        upstream_digest = upstream.digest
        source_dir = upstream.root
    if "clang" not in toolchain.tools:
        raise ToolchainError(f"{address}: the toolchain has no clang (install clang-22)")
    spec = {
        "package": str(address),
        "name": address.target_name,
        "sources": sorted(sources.snapshot.files),
        "clang": toolchain.tools["clang"],
        "ar": toolchain.tools.get("ar"),
        "lld": toolchain.tools.get("lld"),
        "sysroot": sysroot.path,
        "linkage": field_set.linkage.value or "static",
        "interpreter": sysroot.interpreter,
        "triple": triple,
        "cflags": list(field_set.cflags.value or ()),
        "output_kind": field_set.output_kind.value,
        "install": dict(field_set.install.value),
        "source_root": UPSTREAM_DIR if source_dir else None,
        "source_dir": source_dir,
        "source_files": list(field_set.source_files.value or ()),
        "include_dirs": list(field_set.include_dirs.value or ()),
        "include_base": address.spec_path,
    }
    return await Get(
        StagedTree,
        PackageBuildRequest.create(
            address,
            "redox_tools.builders.c_build",
            spec,
            await Get(Digest, MergeDigests([sources.snapshot.digest, sysroot.digest, upstream_digest])),
            toolchain,
            dict(field_set.install.value),
            f"clang {address} ({triple})",
        ),
    )


@rule(desc="Package a Redox C package", level=LogLevel.DEBUG)
async def package_c_package(field_set: CPackageFieldSet) -> BuiltPackage:
    return await Get(BuiltPackage, StagedTreePackageRequest(field_set.address, field_set.output_path))


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, CPackageFieldSet),
        UnionRule(StagedTreeFieldSet, CPackageFieldSet),
    ]
