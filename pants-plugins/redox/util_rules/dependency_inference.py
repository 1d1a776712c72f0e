"""Make `<address>[=path]` fields (kernel, initfs, bootloader, bootstrap, image, vm, source, sysroot
parts, input, ...) real graph edges, so `./pants dependencies --transitive` shows everything an image
is built from. Which fields those are is declared in the vocabulary: every field class that mixes in
`TargetReferenceField`; one rule serves them all."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Tuple

from pants.engine.addresses import Address, AddressInput
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    Field,
    FieldSet,
    InferDependenciesRequest,
    InferredDependencies,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.engine.unions import UnionRule

from redox.target_types import TargetReferenceField
from redox.util_rules.references import parse_reference


@dataclass(frozen=True)
class ReferencingTargetFieldSet(FieldSet):
    """Any target (sysroots, VM and boot-test targets have no `dependencies` field); the rule
    looks for its reference fields."""

    required_fields = ()


class InferTargetReferences(InferDependenciesRequest):
    infer_from = ReferencingTargetFieldSet


def reference_values(field: Field) -> Tuple[str, ...]:
    """The `<address>[=path]` strings a reference field holds (dict fields: their values)."""
    value = field.value
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Mapping):
        return tuple(value[k] for k in sorted(value))
    return tuple(value)


@rule
async def infer_target_references(request: InferTargetReferences) -> InferredDependencies:
    address = request.field_set.address
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(address, description_of_origin="dependency inference"))
    inputs = [
        parse_reference(value, relative_to=address.spec_path, origin=f"the `{field.alias}` field of {address}")
        for field in wrapped.target.field_values.values()
        if isinstance(field, TargetReferenceField)
        for value in reference_values(field)
    ]
    return InferredDependencies(await MultiGet(Get(Address, AddressInput, i) for i in inputs))


def rules():
    return [*collect_rules(), UnionRule(InferDependenciesRequest, InferTargetReferences)]
