"""`<address>[=<path in its staged tree>]` references from image fields, resolved to one file."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import Digest, DigestSubset, PathGlobs
from pants.engine.rules import Get, collect_rules, rule

from redox.util_rules.staged_tree import StagedTree, StagedTreeRequest


class ReferenceError(Exception):
    pass


def split_reference(value: str) -> Tuple[str, Optional[str]]:
    spec, sep, path = value.partition("=")
    return spec.strip(), (path.strip().lstrip("/") or None) if sep else None


def parse_reference(value: str, *, relative_to: str, origin: str) -> AddressInput:
    spec, _ = split_reference(value)
    return AddressInput.parse(spec, relative_to=relative_to, description_of_origin=origin)


def choose_file(files: Sequence[str], wanted: Optional[str], preferred: Sequence[str], what: str) -> str:
    """The file a reference means: the `=path` given, else a preferred path present, else the only file."""
    if wanted is not None:
        if wanted not in files:
            raise ReferenceError(f"{what}: the package installs no {wanted} (it installs: {', '.join(files) or 'nothing'})")
        return wanted
    for p in preferred:
        if p in files:
            return p
    if len(files) == 1:
        return files[0]
    raise ReferenceError(
        f"{what}: the package installs {len(files)} files ({', '.join(files)}); say which with `=<path>`"
    )


@dataclass(frozen=True)
class FileReferenceRequest:
    value: str  # `<address>[=<path>]`
    relative_to: str
    origin: str  # e.g. "the `kernel` field of images:foo"
    preferred: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedFile:
    address: Address
    path: str  # path in the staged tree
    digest: Digest  # holds exactly that file, at `path`


@rule
async def resolve_file_reference(request: FileReferenceRequest) -> ResolvedFile:
    address = await Get(
        Address, AddressInput, parse_reference(request.value, relative_to=request.relative_to, origin=request.origin)
    )
    tree = await Get(StagedTree, StagedTreeRequest(address, request.origin))
    _, wanted = split_reference(request.value)
    path = choose_file(tree.files, wanted, request.preferred, f"{request.origin} ({address})")
    digest = await Get(Digest, DigestSubset(tree.digest, PathGlobs([path])))
    return ResolvedFile(address, path, digest)


def rules():
    return collect_rules()
