"""`redox_sysroot`: installed trees (relibc's `make install`, libgcc) merged into one sysroot.

Nothing is built here: the C library comes from its upstream's own Makefile (a
`redox_make_package`), the compiler runtime from the prefix toolchain; the sysroot is their staged
trees merged, the way the cookbook's prefix sysroot holds both. Packages that compile or link
against a sysroot name it (or a `redox_make_package` directly) in their `sysroot` field;
`SysrootInputRequest` hands them its tree under `SYSROOT_DIR`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from pants.core.goals.package import BuiltPackage, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, Digest, DigestEntries, FileEntry, MergeDigests, SymlinkEntry
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from redox.target_types import (
    RedoxMakePackageTarget,
    RedoxSysrootTarget,
    SysrootInterpreterField,
    SysrootTreesField,
)
from redox.util_rules.package_build import PackageBuildError
from redox.util_rules.references import parse_reference
from redox.util_rules.staged_tree import (
    StagedTree,
    StagedTreeFieldSet,
    StagedTreePackageRequest,
    StagedTreeRequest,
)

SYSROOT_DIR = "__sysroot"


@dataclass(frozen=True)
class SysrootFieldSet(PackageFieldSet, StagedTreeFieldSet):
    required_fields = (SysrootTreesField,)

    trees: SysrootTreesField
    interpreter: SysrootInterpreterField
    output_path: OutputPathField


def tree_conflicts(trees: Sequence[Tuple[str, Iterable[Tuple[str, str]]]]) -> List[str]:
    """Paths installed by more than one tree with different contents, one message each.

    `trees`: (package, [(path, what)]) in order, `what` naming the entry's content (a file's
    digest and mode, a symlink's target). The same bytes from two trees are no conflict.
    """
    seen: Dict[str, Tuple[str, str]] = {}
    out = []
    for package, entries in trees:
        for path, what in entries:
            first = seen.setdefault(path, (package, what))
            if first[1] != what:
                out.append(f"{path} (from {first[0]} and {package})")
    return sorted(set(out))


def _entry_identity(entry: object) -> Optional[Tuple[str, str]]:
    if isinstance(entry, FileEntry):
        return entry.path, f"file {entry.file_digest.fingerprint} {'x' if entry.is_executable else '-'}"
    if isinstance(entry, SymlinkEntry):
        return entry.path, f"symlink -> {entry.target}"
    return None  # directories merge


@rule(desc="Merge a Redox sysroot", level=LogLevel.DEBUG)
async def build_sysroot(field_set: SysrootFieldSet) -> StagedTree:
    address = field_set.address
    origin = f"the `trees` field of {address}"
    addresses = await MultiGet(
        Get(Address, AddressInput, parse_reference(value, relative_to=address.spec_path, origin=origin))
        for value in field_set.trees.value or ()
    )
    if not addresses:
        raise PackageBuildError(f"{address}: `trees` is empty; name relibc's package and libgcc's")
    trees = await MultiGet(Get(StagedTree, StagedTreeRequest(a, origin)) for a in addresses)
    entries = await MultiGet(Get(DigestEntries, Digest, t.digest) for t in trees)
    identities = [
        (str(t.address), [i for i in (_entry_identity(e) for e in es) if i is not None]) for t, es in zip(trees, entries)
    ]
    conflicts = tree_conflicts(identities)
    if conflicts:
        raise PackageBuildError(
            f"{address}: its `trees` install the same path with different contents: {'; '.join(conflicts)}"
        )
    # Identical entries from two trees merge into one.
    digest = await Get(Digest, MergeDigests(t.digest for t in trees))
    files = sorted({f for t in trees for f in t.files})
    return StagedTree(address, digest, tuple(files))


@rule(desc="Package a Redox sysroot", level=LogLevel.DEBUG)
async def package_sysroot(field_set: SysrootFieldSet) -> BuiltPackage:
    return await Get(BuiltPackage, StagedTreePackageRequest(field_set.address, field_set.output_path))


@dataclass(frozen=True)
class SysrootInputRequest:
    """The `sysroot` field of a package: its tree as a build input."""

    address: Address  # the package, for messages
    value: Optional[str]


@dataclass(frozen=True)
class SysrootInput:
    digest: Digest  # the sysroot tree under `path`, or EMPTY_DIGEST
    path: Optional[str]
    interpreter: Optional[str] = None  # PT_INTERP of programs linked dynamically against it


@rule(desc="Get a package's sysroot", level=LogLevel.DEBUG)
async def sysroot_input(request: SysrootInputRequest) -> SysrootInput:
    if not request.value:
        return SysrootInput(EMPTY_DIGEST, None)
    origin = f"the `sysroot` field of {request.address}"
    sysroot_address = await Get(
        Address, AddressInput, parse_reference(request.value, relative_to=request.address.spec_path, origin=origin)
    )
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(sysroot_address, description_of_origin=origin))
    if not isinstance(wrapped.target, (RedoxSysrootTarget, RedoxMakePackageTarget)):
        raise PackageBuildError(
            f"{origin}: {sysroot_address} is a `{wrapped.target.alias}` target; expected a `redox_sysroot` "
            "(relibc + libgcc) or a `redox_make_package` (relibc's own `make install`)"
        )
    tree = await Get(StagedTree, StagedTreeRequest(sysroot_address, origin))
    # Where the image has the loader: the sysroot installs it as usr/lib/<interpreter>.
    interpreter = f"/usr/lib/{wrapped.target[SysrootInterpreterField].value}"
    return SysrootInput(await Get(Digest, AddPrefix(tree.digest, SYSROOT_DIR)), SYSROOT_DIR, interpreter)


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, SysrootFieldSet),
        UnionRule(StagedTreeFieldSet, SysrootFieldSet),
    ]
