"""`redox_c_package`: C compiled with clang for Redox in one sandboxed process -> staged tree."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, OutputPathField, PackageFieldSet
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests, RemovePrefix
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import HydratedSources, HydrateSourcesRequest
from pants.engine.unions import UnionRule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from redox.goals.cargo_package import PackageBuildError, failure_message
from redox.target_types import (
    CFlagsField,
    COutputKindField,
    CSourcesField,
    RedoxInstallField,
    RedoxTargetTripleField,
)
from redox.util_rules.redox_tools import RedoxToolProcess
from redox.util_rules.staged_tree import StagedTree, StagedTreeFieldSet, StagedTreePackageRequest
from redox.util_rules.toolchain import RedoxToolchain, RedoxToolchainRequest, ToolchainError

SPEC_FILE = "__c_build_spec.json"
OUT_DIR = "__staged"


@dataclass(frozen=True)
class CPackageFieldSet(PackageFieldSet, StagedTreeFieldSet):
    required_fields = (CSourcesField, COutputKindField)

    sources: CSourcesField
    rust_target: RedoxTargetTripleField
    output_kind: COutputKindField
    cflags: CFlagsField
    install: RedoxInstallField
    output_path: OutputPathField


@rule(desc="Build a Redox C package", level=LogLevel.DEBUG)
async def build_c_package(field_set: CPackageFieldSet) -> StagedTree:
    address = field_set.address
    triple = field_set.rust_target.value or ""
    if not field_set.install.value:
        raise PackageBuildError(f"{address}: `install` is empty, so the package would stage nothing")
    toolchain, sources = await MultiGet(
        Get(RedoxToolchain, RedoxToolchainRequest(triple, needs_rust_src=False)),
        Get(HydratedSources, HydrateSourcesRequest(field_set.sources)),
    )
    if "clang" not in toolchain.tools:
        raise ToolchainError(f"{address}: the toolchain has no clang (install clang-22)")
    spec = {
        "package": str(address),
        "name": address.target_name,
        "sources": sorted(sources.snapshot.files),
        "clang": toolchain.tools["clang"],
        "ar": toolchain.tools.get("ar"),
        "triple": triple,
        "cflags": list(field_set.cflags.value or ()),
        "output_kind": field_set.output_kind.value,
        "install": dict(field_set.install.value),
        "out_dir": OUT_DIR,
    }
    spec_digest = await Get(
        Digest, CreateDigest([FileContent(SPEC_FILE, json.dumps(spec, sort_keys=True, indent=1).encode())])
    )
    input_digest = await Get(Digest, MergeDigests([sources.snapshot.digest, spec_digest]))
    process = await Get(
        Process,
        RedoxToolProcess(
            module="redox_tools.c_build",
            args=(SPEC_FILE,),
            description=f"clang {address} ({triple})",
            input_digest=input_digest,
            output_directories=(OUT_DIR,),
            env=FrozenDict({"REDOX_TOOLCHAIN_FINGERPRINT": toolchain.fingerprint}),
        ),
    )
    process = dataclasses.replace(
        process, immutable_input_digests=FrozenDict({**process.immutable_input_digests, **toolchain.immutable_input_digests})
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise PackageBuildError(failure_message(result))
    staged = await Get(Digest, RemovePrefix(result.output_digest, OUT_DIR))
    return StagedTree(address, staged, tuple(sorted(v.lstrip("/") for v in field_set.install.value.values())))


@rule(desc="Package a Redox C package", level=LogLevel.DEBUG)
async def package_c_package(field_set: CPackageFieldSet) -> BuiltPackage:
    return await Get(BuiltPackage, StagedTreePackageRequest(field_set.address, field_set.output_path))


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, CPackageFieldSet),
        UnionRule(StagedTreeFieldSet, CPackageFieldSet),
    ]
