"""A package's staged tree: its files at their install paths, as one Digest.

Every package kind (Cargo, C, initfs, ...) turns a target into a `StagedTree`; consumers (initfs,
disk images) only ever ask for `StagedTree` by address, so adding a package kind touches no
consumer. Executable bits travel in the digest; ownership and times never do (the root manifest
decides them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from pants.engine.addresses import Address
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField
from pants.engine.environment import EnvironmentName
from pants.engine.fs import AddPrefix, Digest
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import FieldSet, WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionMembership, union
from pants.util.logging import LogLevel


class StagedTreeError(Exception):
    pass


@dataclass(frozen=True)
class StagedTree:
    address: Address
    digest: Digest
    files: Tuple[str, ...]  # paths relative to the image root, sorted


# Implementations run processes, so the environment must stay in scope across the union Get.
@union(in_scope_types=[EnvironmentName])
class StagedTreeFieldSet(FieldSet):
    """Union base: field sets of targets that produce a staged tree (register with UnionRule)."""


@dataclass(frozen=True)
class StagedTreeRequest:
    address: Address
    description_of_origin: str


@rule
async def staged_tree_for_address(request: StagedTreeRequest, union_membership: UnionMembership) -> StagedTree:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin=request.description_of_origin)
    )
    target = wrapped.target
    for member in union_membership.get(StagedTreeFieldSet):
        if member.is_applicable(target):
            return await Get(StagedTree, StagedTreeFieldSet, member.create(target))
    raise StagedTreeError(
        f"{request.description_of_origin}: {request.address} is a `{target.alias}` target, which installs "
        "no files; expected a package (redox_cargo_package, redox_c_package, redox_initfs)"
    )


@dataclass(frozen=True)
class StagedTreePackageRequest:
    """`./pants package` of any staged-tree target: the tree under its output path in dist/."""

    address: Address
    output_path: OutputPathField


@rule(desc="Write a staged tree to dist/", level=LogLevel.DEBUG)
async def package_staged_tree(request: StagedTreePackageRequest) -> BuiltPackage:
    tree = await Get(StagedTree, StagedTreeRequest(request.address, "package"))
    out = request.output_path.value_or_default(file_ending=None)
    digest = await Get(Digest, AddPrefix(tree.digest, out))
    return BuiltPackage(digest, tuple(BuiltPackageArtifact(f"{out}/{f}") for f in tree.files))


def rules():
    return collect_rules()
