"""`redox_disk_image`: root trees + kernel + initfs + bootloader -> GPT disk image, as qcow2.

The image leaves the process as qcow2 (`redox_tools.qcow2`), so the store and dist/ grow by the
image's data, not its size. Pants 2.17's `package` can only write a digest's bytes to dist/
(no sparse files, no step after the write), so the raw `.img` for a USB stick is one command
away: `./pants run :raw-image -- dist/images/X.qcow2 X.img`, byte-identical to the raw image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, Digest, MergeDigests
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from redox.util_rules.package_build import PackageBuildError, failure_message
from redox.goals.initfs import InitfsImage, InitfsImageRequest
from redox.goals.source import SourcesPreflight, SourcesPreflightRequest
from redox.subsystems.image import RedoxImageSubsystem
from redox.target_types import (
    DiskImageBootloaderField,
    DiskImageEspSizeField,
    DiskImageInitfsField,
    DiskImageKernelField,
    DiskImageRequireBootFilesField,
    DiskImageRootField,
    DiskImageSizeField,
    DiskImageSourceDateEpochField,
    SystemModulesField,
)
from redox.util_rules.image_inputs import ImageTrees, ImageTreesRequest
from redox.util_rules.redox_tools import RedoxToolProcess
from redox.util_rules.references import FileReferenceRequest, ResolvedFile, parse_reference

IMAGE_FORMAT = "qcow2"
WRITER_DIR = "__redoxfs_write"
WRITER_BIN = "bin/redoxfs-write"
KERNEL_PATH = "/usr/lib/boot/kernel"
INITFS_PATH = "/usr/lib/boot/initfs"


@dataclass(frozen=True)
class DiskImageFieldSet(PackageFieldSet):
    required_fields = (DiskImageBootloaderField, DiskImageSizeField)

    dependencies: DiskImageRootField
    kernel: DiskImageKernelField
    initfs: DiskImageInitfsField
    bootloader: DiskImageBootloaderField
    size: DiskImageSizeField
    esp_size_mib: DiskImageEspSizeField
    source_date_epoch: DiskImageSourceDateEpochField
    require_boot_files: DiskImageRequireBootFilesField
    output_path: OutputPathField


@dataclass(frozen=True)
class DiskImage:
    address: Address
    digest: Digest  # holds exactly `path`
    path: str
    format: str = IMAGE_FORMAT


@dataclass(frozen=True)
class DiskImageRequest:
    address: Address
    description_of_origin: str


@dataclass(frozen=True)
class SystemImageRequest:
    """The disk image of a `redox_system` (rules in goals/system.py)."""

    address: Address


@dataclass(frozen=True)
class DiskImageSpec:
    """Everything a disk image is made of, whoever describes it (a `redox_disk_image` target or
    an evaluated `redox_system`)."""

    address: Address
    packages: ImageTreesRequest
    bootloader: str
    kernel: Optional[str]
    initfs: Optional[str]
    size: str
    esp_size_mib: int
    source_date_epoch: int
    require_boot_files: bool
    output_path: str
    origin: str  # what set the boot fields, for messages: "field" or "option"
    overlay_digest: Digest = EMPTY_DIGEST  # holds `overlay` (a manifest) and its files
    overlay: Optional[str] = None
    preflight_roots: Tuple[Address, ...] = ()  # packages not reachable from `address` in the graph
    drop_drivers: Tuple[str, ...] = ()  # drivers left out of the root and the initfs (`hardware.drivers`)


@rule(desc="Build a Redox disk image", level=LogLevel.DEBUG)
async def build_disk_image(field_set: DiskImageFieldSet, image: RedoxImageSubsystem) -> DiskImage:
    address = field_set.address
    epoch = field_set.source_date_epoch.value
    spec = DiskImageSpec(
        address=address,
        packages=ImageTreesRequest(address, field_set.dependencies, f"the `dependencies` of {address}"),
        bootloader=field_set.bootloader.value or "",
        kernel=field_set.kernel.value,
        initfs=field_set.initfs.value,
        size=field_set.size.value or "512M",
        esp_size_mib=field_set.esp_size_mib.value or 1,
        source_date_epoch=image.source_date_epoch if epoch is None else epoch,
        require_boot_files=field_set.require_boot_files.value,
        output_path=field_set.output_path.value_or_default(file_ending=IMAGE_FORMAT),
        origin="field",
    )
    return await Get(DiskImage, DiskImageSpec, spec)


def _what(spec: DiskImageSpec, name: str) -> str:
    if spec.origin == "option":
        return f"option `boot.{name}` of {spec.address}"
    return f"the `{name}` field of {spec.address}"


@dataclass(frozen=True)
class RedoxfsWriterTool:
    """The native RedoxFS writer's files (under WRITER_DIR) and the arguments that select it;
    empty when `[redox-image].redoxfs_writer` is "" (the Python writer in the image process)."""

    digest: Digest
    args: Tuple[str, ...]


@dataclass(frozen=True)
class RedoxfsWriterToolRequest:
    pass


@rule(desc="Build the native RedoxFS writer", level=LogLevel.DEBUG)
async def redoxfs_writer_tool(_: RedoxfsWriterToolRequest, image: RedoxImageSubsystem) -> RedoxfsWriterTool:
    if not image.redoxfs_writer:
        return RedoxfsWriterTool(EMPTY_DIGEST, ())
    # An `<address>[=<path>]` reference like the image fields'; the path defaults to the writer's.
    value = image.redoxfs_writer if "=" in image.redoxfs_writer else f"{image.redoxfs_writer}={WRITER_BIN}"
    tool = await Get(ResolvedFile, FileReferenceRequest(value, "", "the option `[redox-image].redoxfs_writer`"))
    digest = await Get(Digest, AddPrefix(tool.digest, WRITER_DIR))
    return RedoxfsWriterTool(digest, ("--redoxfs-writer", f"{WRITER_DIR}/{tool.path}"))


@rule(desc="Assemble a Redox disk image", level=LogLevel.DEBUG)
async def assemble_disk_image(spec: DiskImageSpec) -> DiskImage:
    address = spec.address
    here = address.spec_path

    # Every upstream source first, so that offline one message lists all that are missing.
    await Get(SourcesPreflight, SourcesPreflightRequest(address, spec.preflight_roots))
    bootloader_get = Get(
        ResolvedFile,
        FileReferenceRequest(
            spec.bootloader,
            here,
            _what(spec, "bootloader"),
            ("EFI/BOOT/BOOTX64.EFI", "usr/lib/boot/bootloader.efi"),
        ),
    )
    trees_get = Get(ImageTrees, ImageTreesRequest, spec.packages)
    bootloader, trees, writer = await MultiGet(bootloader_get, trees_get, Get(RedoxfsWriterTool, RedoxfsWriterToolRequest()))

    digests: List[Digest] = [
        trees.digest,
        await Get(Digest, AddPrefix(bootloader.digest, "__efi")),
        spec.overlay_digest,
        writer.digest,
    ]
    file_args: List[str] = []
    if spec.kernel:
        kernel = await Get(
            ResolvedFile,
            FileReferenceRequest(spec.kernel, here, _what(spec, "kernel"), (KERNEL_PATH[1:],)),
        )
        digests.append(await Get(Digest, AddPrefix(kernel.digest, "__kernel")))
        file_args += ["--file", f"{KERNEL_PATH}=__kernel/{kernel.path}:755"]
    if spec.initfs:
        initfs_address = await Get(
            Address,
            parse_reference(spec.initfs, relative_to=here, origin=_what(spec, "initfs")),
        )
        initfs = await Get(
            InitfsImage, InitfsImageRequest(initfs_address, _what(spec, "initfs"), spec.drop_drivers)
        )
        digests.append(await Get(Digest, AddPrefix(initfs.digest, "__initfs")))
        file_args += ["--file", f"{INITFS_PATH}=__initfs/{initfs.path}:644"]
    if spec.overlay:
        file_args += ["--overlay", spec.overlay]
    if spec.drop_drivers:
        file_args += ["--drop-drivers", ",".join(spec.drop_drivers)]

    out = spec.output_path
    args: Tuple[str, ...] = (
        "disk",
        *trees.tree_args,
        *file_args,
        "--efi",
        f"__efi/{bootloader.path}",
        f"--size={spec.size}",  # one token: argparse never reads it as an option
        "--esp-size-mib",
        str(spec.esp_size_mib),
        "--source-date-epoch",
        str(spec.source_date_epoch),
        "--format",
        IMAGE_FORMAT,
        *(() if spec.require_boot_files else ("--no-require-boot-files",)),
        *writer.args,
        "--manifest-out",
        f"{out}.manifest.json",
        "-o",
        out,
    )
    process = await Get(
        Process,
        RedoxToolProcess(
            module="redox_tools.image.assemble",
            args=args,
            description=f"Write disk image {address}",
            input_digest=await Get(Digest, MergeDigests(digests)),
            output_files=(out, f"{out}.manifest.json"),
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise PackageBuildError(f"{address}: " + failure_message(result))
    return DiskImage(address, result.output_digest, out)


@rule
async def disk_image_for_address(request: DiskImageRequest) -> DiskImage:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin=request.description_of_origin)
    )
    if wrapped.target.has_field(SystemModulesField):
        return await Get(DiskImage, SystemImageRequest(request.address))
    if not DiskImageFieldSet.is_applicable(wrapped.target):
        raise PackageBuildError(
            f"{request.description_of_origin}: {request.address} is a `{wrapped.target.alias}`, "
            "not a `redox_disk_image` or `redox_system`"
        )
    return await Get(DiskImage, DiskImageFieldSet, DiskImageFieldSet.create(wrapped.target))


@rule(desc="Package a Redox disk image", level=LogLevel.DEBUG)
async def package_disk_image(field_set: DiskImageFieldSet) -> BuiltPackage:
    image = await Get(DiskImage, DiskImageFieldSet, field_set)
    return BuiltPackage(
        image.digest, (BuiltPackageArtifact(image.path), BuiltPackageArtifact(f"{image.path}.manifest.json"))
    )


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, DiskImageFieldSet)]
