"""`redox_initfs`: staged trees + bootstrap ELF -> a RedoxFtw initfs image."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address
from pants.engine.fs import AddPrefix, Digest, MergeDigests
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from redox.util_rules.package_build import PackageBuildError, failure_message
from redox.subsystems.image import RedoxImageSubsystem
from redox.target_types import InitfsBootstrapField, InitfsContentsField
from redox.util_rules.image_inputs import ImageTrees, ImageTreesRequest
from redox.util_rules.redox_tools import RedoxToolProcess
from redox.util_rules.references import FileReferenceRequest, ResolvedFile

@dataclass(frozen=True)
class InitfsFieldSet(PackageFieldSet):
    required_fields = (InitfsBootstrapField,)

    dependencies: InitfsContentsField
    bootstrap: InitfsBootstrapField
    output_path: OutputPathField


@dataclass(frozen=True)
class InitfsImage:
    address: Address
    digest: Digest  # holds exactly `path`
    path: str


@dataclass(frozen=True)
class InitfsImageRequest:
    address: Address
    description_of_origin: str
    drop_drivers: Tuple[str, ...] = ()  # a system's `hardware.drivers` leaves these out


@dataclass(frozen=True)
class InitfsBuildRequest:
    field_set: InitfsFieldSet
    drop_drivers: Tuple[str, ...] = ()


@rule
async def build_initfs(field_set: InitfsFieldSet) -> InitfsImage:
    return await Get(InitfsImage, InitfsBuildRequest(field_set))


@rule(desc="Build a Redox initfs", level=LogLevel.DEBUG)
async def build_initfs_subset(request: InitfsBuildRequest, image: RedoxImageSubsystem) -> InitfsImage:
    # The trees are the target's whatever the subset: only this packing step differs per driver set.
    field_set = request.field_set
    address = field_set.address
    origin = f"the `bootstrap` field of {address}"
    bootstrap, trees = await MultiGet(
        Get(
            ResolvedFile,
            FileReferenceRequest(
                field_set.bootstrap.value or "", address.spec_path, origin, ("usr/lib/boot/bootstrap",)
            ),
        ),
        Get(ImageTrees, ImageTreesRequest(address, field_set.dependencies, f"the `dependencies` of {address}")),
    )
    boot_digest = await Get(Digest, AddPrefix(bootstrap.digest, "__bootstrap"))
    out = field_set.output_path.value_or_default(file_ending="initfs")
    process = await Get(
        Process,
        RedoxToolProcess(
            module="redox_tools.image.assemble",
            args=(
                "initfs",
                *trees.tree_args,
                "--bootstrap",
                f"__bootstrap/{bootstrap.path}",
                "--source-date-epoch",
                str(image.source_date_epoch),
                *(("--drop-drivers", ",".join(request.drop_drivers)) if request.drop_drivers else ()),
                "-o",
                out,
            ),
            description=f"Write initfs {address}",
            input_digest=await Get(Digest, MergeDigests([trees.digest, boot_digest])),
            output_files=(out,),
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise PackageBuildError(f"{address}: " + failure_message(result))
    return InitfsImage(address, result.output_digest, out)


@rule
async def initfs_for_address(request: InitfsImageRequest) -> InitfsImage:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin=request.description_of_origin)
    )
    if not InitfsFieldSet.is_applicable(wrapped.target):
        raise PackageBuildError(
            f"{request.description_of_origin}: {request.address} is a `{wrapped.target.alias}`, not a `redox_initfs`"
        )
    return await Get(InitfsImage, InitfsBuildRequest(InitfsFieldSet.create(wrapped.target), request.drop_drivers))


@rule(desc="Package a Redox initfs", level=LogLevel.DEBUG)
async def package_initfs(field_set: InitfsFieldSet) -> BuiltPackage:
    image = await Get(InitfsImage, InitfsFieldSet, field_set)
    return BuiltPackage(image.digest, (BuiltPackageArtifact(image.path),))


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, InitfsFieldSet)]
