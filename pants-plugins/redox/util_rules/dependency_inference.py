"""Make `<address>[=path]` fields (kernel, initfs, bootloader, bootstrap, image, vm, input) real graph edges,
so `./pants dependencies --transitive` shows everything an image is built from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from pants.engine.addresses import Address, AddressInput
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import FieldSet, InferDependenciesRequest, InferredDependencies
from pants.engine.unions import UnionRule

from redox.target_types import (
    BootTestImageField,
    CargoSourceField,
    DiskImageBootloaderField,
    DiskImageInitfsField,
    DiskImageKernelField,
    FlatBinaryInputField,
    InitfsBootstrapField,
    RedoxSysrootField,
    RedoxVmControlVmField,
    RedoxVmImageField,
    SysrootArchivesField,
    SysrootCrtObjectsField,
    SysrootLdSoObjectField,
    SysrootLibmField,
    SysrootLibrariesField,
    SysrootSourceField,
)
from redox.util_rules.references import parse_reference


@dataclass(frozen=True)
class DiskImageReferencesFieldSet(FieldSet):
    required_fields = (DiskImageBootloaderField,)
    bootloader: DiskImageBootloaderField
    kernel: DiskImageKernelField
    initfs: DiskImageInitfsField


@dataclass(frozen=True)
class InitfsReferencesFieldSet(FieldSet):
    required_fields = (InitfsBootstrapField,)
    bootstrap: InitfsBootstrapField


@dataclass(frozen=True)
class BootTestReferencesFieldSet(FieldSet):
    required_fields = (BootTestImageField,)
    image: BootTestImageField


@dataclass(frozen=True)
class VmImageReferencesFieldSet(FieldSet):
    required_fields = (RedoxVmImageField,)
    image: RedoxVmImageField


@dataclass(frozen=True)
class VmControlReferencesFieldSet(FieldSet):
    required_fields = (RedoxVmControlVmField,)
    vm: RedoxVmControlVmField


@dataclass(frozen=True)
class CargoSourceReferenceFieldSet(FieldSet):
    required_fields = (CargoSourceField,)
    source: CargoSourceField


@dataclass(frozen=True)
class SysrootReferenceFieldSet(FieldSet):
    """The `sysroot` field of C and Cargo packages."""

    required_fields = (RedoxSysrootField,)
    sysroot: RedoxSysrootField


@dataclass(frozen=True)
class SysrootPartsFieldSet(FieldSet):
    """A `redox_sysroot`'s parts: archives, crt objects, ld_so, libm, and its `source`."""

    required_fields = (SysrootArchivesField,)
    archives: SysrootArchivesField
    crt_objects: SysrootCrtObjectsField
    ld_so_object: SysrootLdSoObjectField
    libm: SysrootLibmField
    libraries: SysrootLibrariesField
    source: SysrootSourceField


@dataclass(frozen=True)
class FlatBinaryInputFieldSet(FieldSet):
    """The `input` of a `redox_flat_binary` (its `source` is a CargoSourceField, inferred above)."""

    required_fields = (FlatBinaryInputField,)
    input: FlatBinaryInputField


class InferFlatBinaryInput(InferDependenciesRequest):
    infer_from = FlatBinaryInputFieldSet


class InferSysrootReference(InferDependenciesRequest):
    infer_from = SysrootReferenceFieldSet


class InferSysrootParts(InferDependenciesRequest):
    infer_from = SysrootPartsFieldSet


class InferCargoSourceReference(InferDependenciesRequest):
    infer_from = CargoSourceReferenceFieldSet


class InferDiskImageReferences(InferDependenciesRequest):
    infer_from = DiskImageReferencesFieldSet


class InferInitfsReferences(InferDependenciesRequest):
    infer_from = InitfsReferencesFieldSet


class InferBootTestReferences(InferDependenciesRequest):
    infer_from = BootTestReferencesFieldSet


class InferVmImageReferences(InferDependenciesRequest):
    infer_from = VmImageReferencesFieldSet


class InferVmControlReferences(InferDependenciesRequest):
    infer_from = VmControlReferencesFieldSet


@dataclass(frozen=True)
class _References:
    """`(field alias, value)` pairs of one target's reference fields; empty values are skipped."""

    address: Address
    named: Tuple[Tuple[str, Optional[str]], ...]


@rule
async def resolve_references(request: _References) -> InferredDependencies:
    inputs = [
        parse_reference(value, relative_to=request.address.spec_path, origin=f"the `{name}` field of {request.address}")
        for name, value in request.named
        if value
    ]
    return InferredDependencies(await MultiGet(Get(Address, AddressInput, i) for i in inputs))


# Pants needs one rule per inference request type; each only names its fields.


@rule
async def infer_disk_image_references(request: InferDiskImageReferences) -> InferredDependencies:
    fs = request.field_set
    named = (("bootloader", fs.bootloader.value), ("kernel", fs.kernel.value), ("initfs", fs.initfs.value))
    return await Get(InferredDependencies, _References(fs.address, named))


@rule
async def infer_initfs_references(request: InferInitfsReferences) -> InferredDependencies:
    fs = request.field_set
    return await Get(InferredDependencies, _References(fs.address, (("bootstrap", fs.bootstrap.value),)))


@rule
async def infer_boot_test_references(request: InferBootTestReferences) -> InferredDependencies:
    fs = request.field_set
    return await Get(InferredDependencies, _References(fs.address, (("image", fs.image.value),)))


@rule
async def infer_vm_image_references(request: InferVmImageReferences) -> InferredDependencies:
    fs = request.field_set
    return await Get(InferredDependencies, _References(fs.address, (("image", fs.image.value),)))


@rule
async def infer_vm_control_references(request: InferVmControlReferences) -> InferredDependencies:
    fs = request.field_set
    return await Get(InferredDependencies, _References(fs.address, (("vm", fs.vm.value),)))


@rule
async def infer_cargo_source_reference(request: InferCargoSourceReference) -> InferredDependencies:
    fs = request.field_set
    return await Get(InferredDependencies, _References(fs.address, (("source", fs.source.value),)))


@rule
async def infer_sysroot_reference(request: InferSysrootReference) -> InferredDependencies:
    fs = request.field_set
    return await Get(InferredDependencies, _References(fs.address, (("sysroot", fs.sysroot.value),)))


@rule
async def infer_flat_binary_input(request: InferFlatBinaryInput) -> InferredDependencies:
    fs = request.field_set
    return await Get(InferredDependencies, _References(fs.address, (("input", fs.input.value),)))


@rule
async def infer_sysroot_parts(request: InferSysrootParts) -> InferredDependencies:
    fs = request.field_set
    named = [("archives", a) for a in fs.archives.value or ()]
    named += [("crt_objects", v) for _, v in sorted((fs.crt_objects.value or {}).items())]
    named += [("ld_so_object", fs.ld_so_object.value), ("libm", fs.libm.value), ("source", fs.source.value)]
    named += [("libraries", v) for _, v in sorted((fs.libraries.value or {}).items())]
    return await Get(InferredDependencies, _References(fs.address, tuple(named)))


def rules():
    return [
        *collect_rules(),
        UnionRule(InferDependenciesRequest, InferSysrootReference),
        UnionRule(InferDependenciesRequest, InferSysrootParts),
        UnionRule(InferDependenciesRequest, InferDiskImageReferences),
        UnionRule(InferDependenciesRequest, InferInitfsReferences),
        UnionRule(InferDependenciesRequest, InferBootTestReferences),
        UnionRule(InferDependenciesRequest, InferCargoSourceReference),
        UnionRule(InferDependenciesRequest, InferFlatBinaryInput),
        UnionRule(InferDependenciesRequest, InferVmImageReferences),
        UnionRule(InferDependenciesRequest, InferVmControlReferences),
    ]
