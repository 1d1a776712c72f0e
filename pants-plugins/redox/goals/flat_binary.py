"""`redox_flat_binary`: a package's static library linked with a linker script and wrapped by
`nasm -f bin` (the bootloader's BIOS variant) in one sandboxed process -> staged tree."""
from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, OutputPathField, PackageFieldSet
from pants.engine.fs import AddPrefix, Digest, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from redox.goals.source import OwnSourcesLayout, PackageCode, PackageCodeRequest
from redox.subsystems.toolchain import RedoxToolchainSubsystem
from redox.target_types import (
    REDOX_TRIPLE,
    CargoSourceField,
    CargoSourceSubdirField,
    FlatBinaryInputField,
    FlatBinaryLinkArgsField,
    FlatBinaryLinkerScriptField,
    FlatBinaryNasmDefinesField,
    FlatBinaryNasmIncludeDirsField,
    FlatBinaryNasmSourceField,
    FlatBinarySourcesField,
    FlatBinarySplitDebugField,
    RedoxInstallField,
)
from redox.util_rules.package_build import PackageBuildError, PackageBuildRequest
from redox.util_rules.references import FileReferenceRequest, ResolvedFile
from redox.util_rules.staged_tree import StagedTree, StagedTreeFieldSet, StagedTreePackageRequest
from redox.util_rules.toolchain import RedoxToolchain, RedoxToolchainRequest

INPUT_DIR = "__input"


@dataclass(frozen=True)
class FlatBinaryFieldSet(PackageFieldSet, StagedTreeFieldSet):
    required_fields = (FlatBinaryInputField, FlatBinaryNasmSourceField)

    sources: FlatBinarySourcesField
    source: CargoSourceField
    source_subdir: CargoSourceSubdirField
    input: FlatBinaryInputField
    linker_script: FlatBinaryLinkerScriptField
    link_args: FlatBinaryLinkArgsField
    split_debug: FlatBinarySplitDebugField
    nasm_source: FlatBinaryNasmSourceField
    nasm_include_dirs: FlatBinaryNasmIncludeDirsField
    nasm_defines: FlatBinaryNasmDefinesField
    install: RedoxInstallField
    output_path: OutputPathField


@rule(desc="Build a Redox flat binary", level=LogLevel.DEBUG)
async def build_flat_binary(field_set: FlatBinaryFieldSet, toolchain_subsystem: RedoxToolchainSubsystem) -> StagedTree:
    address = field_set.address
    if not field_set.install.value:
        raise PackageBuildError(f"{address}: `install` is empty, so the package would stage nothing")
    # The source first: offline, an unreachable checkout is the message (before building the input).
    code = await Get(
        PackageCode,
        PackageCodeRequest(
            address, field_set.source.value, field_set.source_subdir.value or "", field_set.sources, OwnSourcesLayout.AS_IS
        ),
    )
    origin = f"the `input` field of {address}"
    resolved, toolchain = await MultiGet(
        Get(ResolvedFile, FileReferenceRequest(field_set.input.value or "", address.spec_path, origin)),
        Get(RedoxToolchain, RedoxToolchainRequest(REDOX_TRIPLE, needs_rust_src=False)),
    )
    placed = await Get(Digest, AddPrefix(resolved.digest, INPUT_DIR))
    spec = {
        "package": str(address),
        "name": address.target_name,
        "input": f"{INPUT_DIR}/{resolved.path}",
        "input_label": f"{resolved.address}={resolved.path}",
        "src_dir": code.root,
        "nasm_source": field_set.nasm_source.value,
        "nasm": toolchain.tools.get("nasm"),
        "lld": toolchain.tools.get("lld"),
        "objcopy": toolchain.tools.get("objcopy"),
        "linker_script": field_set.linker_script.value,
        "link_args": list(field_set.link_args.value or ()),
        "split_debug": bool(field_set.split_debug.value),
        "nasm_include_dirs": list(field_set.nasm_include_dirs.value or ()),
        "nasm_defines": dict(field_set.nasm_defines.value or {}),
        "install": dict(field_set.install.value),
        "path": list(toolchain_subsystem.search_path) + ["/usr/bin", "/bin"],
    }
    return await Get(
        StagedTree,
        PackageBuildRequest.create(
            address,
            "redox_tools.builders.flat_binary",
            spec,
            await Get(Digest, MergeDigests([code.digest, placed])),
            toolchain,
            dict(field_set.install.value),
            f"flat binary {address}",
        ),
    )


@rule(desc="Package a Redox flat binary", level=LogLevel.DEBUG)
async def package_flat_binary(field_set: FlatBinaryFieldSet) -> BuiltPackage:
    return await Get(BuiltPackage, StagedTreePackageRequest(field_set.address, field_set.output_path))


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, FlatBinaryFieldSet),
        UnionRule(StagedTreeFieldSet, FlatBinaryFieldSet),
    ]
