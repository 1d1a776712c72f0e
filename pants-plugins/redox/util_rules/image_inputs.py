"""Gathering what an image is made of: the packages a target names (groups expanded, each
package's run-time `dependencies` added, cycles refused), their staged trees laid out in one
input digest as `__trees/<n>/` with `--tree <address>=__trees/<n>` arguments."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from pants.engine.addresses import Address, Addresses
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, Digest, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    Dependencies,
    DependenciesRequest,
    ExplicitlyProvidedDependencies,
    WrappedTarget,
    WrappedTargetRequest,
)

from redox.target_types import PackageGroupMembersField, RedoxDependenciesField
from redox.util_rules.staged_tree import StagedTree, StagedTreeRequest


class PackageGraphError(Exception):
    pass


@dataclass(frozen=True)
class PackageClosureRequest:
    address: Address  # the image or initfs, for messages
    dependencies: Optional[Dependencies]
    description_of_origin: str
    roots: Tuple[Address, ...] = ()  # packages named elsewhere (a redox_system's evaluated options)


@dataclass(frozen=True)
class PackageClosure:
    addresses: Tuple[Address, ...]  # the packages to install (groups expanded), sorted


def find_cycle(roots: Sequence[Address], edges: Dict[Address, Tuple[Address, ...]]) -> Optional[List[Address]]:
    """The first dependency cycle reachable from `roots` (as a path ending where it starts), or None."""
    state: Dict[Address, int] = {}  # 1 = on the current path, 2 = done
    path: List[Address] = []

    def visit(a: Address) -> Optional[List[Address]]:
        if state.get(a) == 2:
            return None
        if state.get(a) == 1:
            return path[path.index(a):] + [a]
        state[a] = 1
        path.append(a)
        for d in edges.get(a, ()):
            found = visit(d)
            if found:
                return found
        path.pop()
        state[a] = 2
        return None

    for r in roots:
        found = visit(r)
        if found:
            return found
    return None


def _explicit(deps: ExplicitlyProvidedDependencies) -> Tuple[Address, ...]:
    return tuple(sorted(set(deps.includes) - set(deps.ignores)))


@rule
async def package_closure(request: PackageClosureRequest) -> PackageClosure:
    roots: Tuple[Address, ...] = request.roots
    if request.dependencies is not None:
        named = _explicit(await Get(ExplicitlyProvidedDependencies, DependenciesRequest(request.dependencies)))
        roots = tuple(sorted(set(roots) | set(named)))
    edges: Dict[Address, Tuple[Address, ...]] = {}
    groups = set()
    frontier = list(roots)
    origin = {a: request.description_of_origin for a in roots}
    while frontier:
        wrapped = await MultiGet(
            Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin=origin[a])) for a in frontier
        )
        fields: List[Dependencies] = []
        owners: List[Address] = []
        for a, w in zip(frontier, wrapped):
            edges[a] = ()
            target = w.target
            if target.has_field(PackageGroupMembersField):
                groups.add(a)
                fields.append(target[PackageGroupMembersField])
                owners.append(a)
            elif target.has_field(RedoxDependenciesField):
                fields.append(target[RedoxDependenciesField])
                owners.append(a)
        explicit = await MultiGet(Get(ExplicitlyProvidedDependencies, DependenciesRequest(f)) for f in fields)
        for a, e in zip(owners, explicit):
            edges[a] = _explicit(e)
            for d in edges[a]:
                origin.setdefault(d, f"the `dependencies` of {a}")
        frontier = sorted({d for a in owners for d in edges[a]} - set(edges))
    cycle = find_cycle(roots, edges)
    if cycle:
        raise PackageGraphError(
            f"{request.description_of_origin}: the package `dependencies` form a cycle: "
            + " -> ".join(str(a) for a in cycle)
            + "; remove one of these dependencies"
        )
    return PackageClosure(tuple(sorted(a for a in edges if a not in groups)))


@dataclass(frozen=True)
class ImageTreesRequest:
    address: Address
    dependencies: Optional[Dependencies]
    description_of_origin: str
    roots: Tuple[Address, ...] = ()


@dataclass(frozen=True)
class ImageTrees:
    digest: Digest
    tree_args: Tuple[str, ...]  # --tree ORIGIN=DIR ...
    addresses: Tuple[Address, ...]


@rule
async def image_trees(request: ImageTreesRequest) -> ImageTrees:
    closure = await Get(
        PackageClosure,
        PackageClosureRequest(request.address, request.dependencies, request.description_of_origin, request.roots),
    )
    addresses = Addresses(closure.addresses)
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
