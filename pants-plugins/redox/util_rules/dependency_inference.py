"""Make `<address>[=path]` fields (kernel, initfs, bootloader, bootstrap, image, vm) real graph edges,
so `./pants dependencies --transitive` shows everything an image is built from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

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
    InitfsBootstrapField,
    RedoxVmControlVmField,
    RedoxVmImageField,
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


def _inputs(address: Address, named: Iterable[tuple]) -> list:
    return [
        parse_reference(value, relative_to=address.spec_path, origin=f"the `{name}` field of {address}")
        for name, value in named
        if value
    ]


@rule
async def infer_disk_image_references(request: InferDiskImageReferences) -> InferredDependencies:
    fs = request.field_set
    inputs = _inputs(
        fs.address, [("bootloader", fs.bootloader.value), ("kernel", fs.kernel.value), ("initfs", fs.initfs.value)]
    )
    return InferredDependencies(await MultiGet(Get(Address, AddressInput, i) for i in inputs))


@rule
async def infer_initfs_references(request: InferInitfsReferences) -> InferredDependencies:
    fs = request.field_set
    inputs = _inputs(fs.address, [("bootstrap", fs.bootstrap.value)])
    return InferredDependencies(await MultiGet(Get(Address, AddressInput, i) for i in inputs))


@rule
async def infer_boot_test_references(request: InferBootTestReferences) -> InferredDependencies:
    fs = request.field_set
    inputs = _inputs(fs.address, [("image", fs.image.value)])
    return InferredDependencies(await MultiGet(Get(Address, AddressInput, i) for i in inputs))


@rule
async def infer_vm_image_references(request: InferVmImageReferences) -> InferredDependencies:
    fs = request.field_set
    inputs = _inputs(fs.address, [("image", fs.image.value)])
    return InferredDependencies(await MultiGet(Get(Address, AddressInput, i) for i in inputs))


@rule
async def infer_vm_control_references(request: InferVmControlReferences) -> InferredDependencies:
    fs = request.field_set
    inputs = _inputs(fs.address, [("vm", fs.vm.value)])
    return InferredDependencies(await MultiGet(Get(Address, AddressInput, i) for i in inputs))


@rule
async def infer_cargo_source_reference(request: InferCargoSourceReference) -> InferredDependencies:
    fs = request.field_set
    inputs = _inputs(fs.address, [("source", fs.source.value)])
    return InferredDependencies(await MultiGet(Get(Address, AddressInput, i) for i in inputs))


def rules():
    return [
        *collect_rules(),
        UnionRule(InferDependenciesRequest, InferDiskImageReferences),
        UnionRule(InferDependenciesRequest, InferInitfsReferences),
        UnionRule(InferDependenciesRequest, InferBootTestReferences),
        UnionRule(InferDependenciesRequest, InferCargoSourceReference),
        UnionRule(InferDependenciesRequest, InferVmImageReferences),
        UnionRule(InferDependenciesRequest, InferVmControlReferences),
    ]
