"""Gathering what an image is made of: the staged trees of a target's explicit dependencies,
laid out in one input digest as `__trees/<n>/` with `--tree <address>=__trees/<n>` arguments."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from pants.engine.addresses import Address, Addresses
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, Digest, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import Dependencies, DependenciesRequest, ExplicitlyProvidedDependencies

from redox.util_rules.staged_tree import StagedTree, StagedTreeRequest


@dataclass(frozen=True)
class ImageTreesRequest:
    address: Address
    dependencies: Dependencies
    description_of_origin: str


@dataclass(frozen=True)
class ImageTrees:
    digest: Digest
    tree_args: Tuple[str, ...]  # --tree ORIGIN=DIR ...
    addresses: Tuple[Address, ...]


@rule
async def image_trees(request: ImageTreesRequest) -> ImageTrees:
    explicit = await Get(ExplicitlyProvidedDependencies, DependenciesRequest(request.dependencies))
    addresses = Addresses(sorted(set(explicit.includes) - set(explicit.ignores)))
    trees = await MultiGet(
        Get(StagedTree, StagedTreeRequest(a, request.description_of_origin)) for a in addresses
    )
    prefixed = await MultiGet(Get(Digest, AddPrefix(t.digest, f"__trees/{i}")) for i, t in enumerate(trees))
    digest = await Get(Digest, MergeDigests(prefixed)) if prefixed else EMPTY_DIGEST
    args = []
    for i, t in enumerate(trees):
        args += ["--tree", f"{t.address}=__trees/{i}"]
    return ImageTrees(digest, tuple(args), tuple(addresses))


def rules():
    return collect_rules()
