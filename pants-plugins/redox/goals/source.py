"""`redox_source`: fetch a pinned upstream source (the only network step) -> a verified checkout.

The pin comes from the lock file (`[redox-sources].lock`); the fetch, verification and patching
are `redox_tools.sources fetch`. The process key holds only this source's pin (and its patch
files), so changing another pin re-fetches nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Dict, List, Optional, Tuple

import toml
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
)
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    HydratedSources,
    HydrateSourcesRequest,
    SourcesField,
    TransitiveTargets,
    TransitiveTargetsRequest,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from redox.subsystems.sources import RedoxSourcesSubsystem
from redox.target_types import RedoxSourcePinField, RedoxSourceTarget
from redox.util_rules.redox_tools import RedoxToolProcess
from redox.util_rules.references import parse_reference

OUT_DIR = "__source"
# Where a package's checkout sits in its build sandbox.
UPSTREAM_DIR = "__upstream"


class SourceUnavailable(Exception):
    """Sources that cannot be fetched; the message lists them and how to provide a mirror."""


@dataclass(frozen=True)
class SourceCheckoutRequest:
    address: Address
    description_of_origin: str


@dataclass(frozen=True)
class FallibleSourceCheckout:
    address: Address
    pin: str
    digest: Optional[Digest]  # the verified, patched tree at its root
    error: str  # one line when digest is None


@dataclass(frozen=True)
class SourceCheckout:
    address: Address
    pin: str
    digest: Digest


@dataclass(frozen=True)
class PinLock:
    """The parsed lock file (entries as plain dicts) and the directory patches are relative to."""

    entries: FrozenDict[str, str]  # name -> TOML text of a one-entry lock
    patch_files: FrozenDict[str, Tuple[str, ...]]  # name -> repo paths of its patches
    lock_dir: str


@rule(desc="Read the source pin lock", level=LogLevel.DEBUG)
async def read_pin_lock(subsystem: RedoxSourcesSubsystem) -> PinLock:
    contents = await Get(DigestContents, PathGlobs([subsystem.lock]))
    if not contents:
        raise SourceUnavailable(f"[redox-sources].lock: {subsystem.lock} does not exist")
    try:
        data = toml.loads(contents[0].content.decode())
    except Exception as e:  # toml's errors have no common base class worth naming
        raise SourceUnavailable(f"[redox-sources].lock: {subsystem.lock} is not valid TOML: {e}") from None
    lock_dir = subsystem.lock.rsplit("/", 1)[0] if "/" in subsystem.lock else ""
    entries: Dict[str, str] = {}
    patches: Dict[str, Tuple[str, ...]] = {}
    for name, entry in sorted(data.get("sources", {}).items()):
        entries[name] = toml.dumps({"lock": data.get("lock", {}), "sources": {name: entry}})
        patches[name] = tuple(
            f"{lock_dir}/{p['file']}" if lock_dir else p["file"] for p in entry.get("patches", []) if "file" in p
        )
    return PinLock(FrozenDict(entries), FrozenDict(patches), lock_dir)


@rule(desc="Fetch a pinned Redox source", level=LogLevel.DEBUG)
async def fetch_source(
    request: SourceCheckoutRequest, lock: PinLock, subsystem: RedoxSourcesSubsystem
) -> FallibleSourceCheckout:
    wrapped = await Get(
        WrappedTarget, WrappedTargetRequest(request.address, description_of_origin=request.description_of_origin)
    )
    target = wrapped.target
    if not target.has_field(RedoxSourcePinField):
        raise SourceUnavailable(
            f"{request.description_of_origin}: {request.address} is a `{target.alias}`, not a `redox_source`"
        )
    pin = target[RedoxSourcePinField].value or request.address.target_name
    if pin not in lock.entries:
        raise SourceUnavailable(
            f"{request.address}: pin `{pin}` is not in {lock.lock_dir or '.'}/ lock file "
            f"(known: {', '.join(sorted(lock.entries)) or 'none'}); add it or fix `pin`"
        )
    lock_path = f"{lock.lock_dir}/__pin.lock.toml" if lock.lock_dir else "__pin.lock.toml"
    lock_digest, patches = await MultiGet(
        Get(Digest, CreateDigest([FileContent(lock_path, lock.entries[pin].encode())])),
        Get(Snapshot, PathGlobs(lock.patch_files[pin])),
    )
    missing = [p for p in lock.patch_files[pin] if p not in patches.files]
    if missing:
        return FallibleSourceCheckout(
            request.address,
            pin,
            None,
            f"patch file {', '.join(missing)} is missing from the repository; on a connected machine "
            f"`./pants run 3rdparty/redox:update-pins -- --only {pin}` writes it from the `origin` its entry names "
            f"in the lock file ([sources.{pin}].patches), or copy it from there",
        )
    patch_digest = patches.digest
    args: List[str] = ["fetch", "--lock", lock_path, "--name", pin, "--dest", OUT_DIR, "-q"]
    args += ["--connect-timeout", str(subsystem.connect_timeout)]
    for m in subsystem.mirror_dirs:
        args += ["--mirror", m]
    process = await Get(
        Process,
        RedoxToolProcess(
            module="redox_tools.sources",
            args=tuple(args),
            description=f"Fetch source {pin} ({request.address})",
            input_digest=await Get(Digest, MergeDigests([lock_digest, patch_digest])),
            output_directories=(OUT_DIR,),
            env=FrozenDict({"PATH": "/usr/bin:/bin"}),
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        err = result.stderr.decode(errors="replace").strip().splitlines()
        line = next((ln[len("error: "):] for ln in err if ln.startswith("error: ")), err[-1] if err else "failed")
        return FallibleSourceCheckout(request.address, pin, None, line)
    digest = await Get(Digest, RemovePrefix(result.output_digest, OUT_DIR))
    return FallibleSourceCheckout(request.address, pin, digest, "")


@rule
async def source_checkout(request: SourceCheckoutRequest) -> SourceCheckout:
    fallible = await Get(FallibleSourceCheckout, SourceCheckoutRequest, request)
    if fallible.digest is None:
        raise SourceUnavailable(f"{request.address}: {fallible.error}")
    return SourceCheckout(request.address, fallible.pin, fallible.digest)


@dataclass(frozen=True)
class PackageSourceRequest:
    """A package's `source` (+ `source_subdir`) fields: its verified checkout, for the build."""

    owner: Address
    source: str  # the field's value: a `redox_source` address
    subdir: str = ""


@dataclass(frozen=True)
class PackageSource:
    checkout: SourceCheckout
    digest: Digest  # the checkout under UPSTREAM_DIR
    root: str  # UPSTREAM_DIR[/subdir]: where the package's files are in the sandbox
    subdir: str  # the subdir alone ("" for the checkout's root)


@rule
async def package_source(request: PackageSourceRequest) -> PackageSource:
    origin = f"the `source` field of {request.owner}"
    address = await Get(
        Address, AddressInput, parse_reference(request.source, relative_to=request.owner.spec_path, origin=origin)
    )
    checkout = await Get(SourceCheckout, SourceCheckoutRequest(address, origin))
    digest = await Get(Digest, AddPrefix(checkout.digest, UPSTREAM_DIR))
    subdir = request.subdir.strip("/")
    return PackageSource(checkout, digest, "/".join(p for p in (UPSTREAM_DIR, subdir) if p), subdir)


class OwnSourcesLayout(Enum):
    """Where a package without a `source` puts its own `sources` in the build sandbox."""

    AS_IS = "as-is"  # at their repository paths, the package rooted at its BUILD file's directory
    UNDER_UPSTREAM = "under-upstream"  # laid out like a checkout: under UPSTREAM_DIR


@dataclass(frozen=True)
class PackageCodeRequest:
    """A package's code: its `source` checkout when the field is set, else its own `sources`."""

    owner: Address
    source: Optional[str]  # the `source` field's value
    subdir: str  # the `source_subdir` field's value ("" when unset)
    sources: SourcesField  # the target's own sources, used only without a `source`
    layout: OwnSourcesLayout


@dataclass(frozen=True)
class PackageCode:
    digest: Digest  # the checkout under UPSTREAM_DIR, or the own sources placed per the layout
    root: str  # where the package's files are in `digest`: UPSTREAM_DIR[/subdir], or [UPSTREAM_DIR/]spec_path
    from_checkout: bool
    files: Tuple[str, ...]  # the own sources' files as placed in `digest`; () for a checkout (not listed)


@rule
async def package_code(request: PackageCodeRequest) -> PackageCode:
    if request.source:
        upstream = await Get(PackageSource, PackageSourceRequest(request.owner, request.source, request.subdir))
        return PackageCode(upstream.digest, upstream.root, True, ())
    sources = await Get(HydratedSources, HydrateSourcesRequest(request.sources))
    if request.layout is OwnSourcesLayout.AS_IS:
        return PackageCode(sources.snapshot.digest, request.owner.spec_path, False, sources.snapshot.files)
    placed = await Get(Digest, AddPrefix(sources.snapshot.digest, UPSTREAM_DIR))
    return PackageCode(
        placed,
        "/".join(p for p in (UPSTREAM_DIR, request.owner.spec_path) if p),
        False,
        tuple(f"{UPSTREAM_DIR}/{f}" for f in sources.snapshot.files),
    )


@dataclass(frozen=True)
class SourcesPreflightRequest:
    """Fetch every source an image needs up front, so offline users get ONE message listing all."""

    address: Address
    roots: Tuple[Address, ...] = ()  # more targets whose sources count (a redox_system's packages)


@dataclass(frozen=True)
class SourcesPreflight:
    count: int


@dataclass(frozen=True)
class FallibleSourcesPreflight:
    count: int
    error: str  # the whole message (every unreachable source + how to mirror), or ""


@rule
async def sources_preflight(request: SourcesPreflightRequest) -> SourcesPreflight:
    result = await Get(FallibleSourcesPreflight, SourcesPreflightRequest, request)
    if result.error:
        raise SourceUnavailable(result.error)
    return SourcesPreflight(result.count)


@rule(desc="Fetch the sources an image needs", level=LogLevel.DEBUG)
async def fallible_sources_preflight(
    request: SourcesPreflightRequest, subsystem: RedoxSourcesSubsystem
) -> FallibleSourcesPreflight:
    transitive = await Get(TransitiveTargets, TransitiveTargetsRequest([request.address, *request.roots]))
    sources = sorted(
        (t.address for t in transitive.closure if isinstance(t, RedoxSourceTarget)), key=lambda a: a.spec
    )
    results = await MultiGet(
        Get(FallibleSourceCheckout, SourceCheckoutRequest(a, f"the sources of {request.address}")) for a in sources
    )
    failed = [r for r in results if r.digest is None]
    if failed:
        listing = "\n".join(f"  - {r.pin} ({r.address}): {r.error}" for r in failed)
        mirrors = ", ".join(subsystem.mirror_dirs) or "none set"
        return FallibleSourcesPreflight(
            len(sources),
            f"{request.address}: {len(failed)} of {len(sources)} upstream sources could not be fetched:\n"
            f"{listing}\n"
            "To build offline, copy each checkout to <dir>/<name> (or a bare mirror to <dir>/<name>.git) and run "
            f"with --redox-sources-mirror-dirs=\"['<dir>']\" (mirror dirs now: {mirrors}).",
        )
    return FallibleSourcesPreflight(len(sources), "")


def rules():
    return [*collect_rules(), *RedoxSourcesSubsystem.rules()]
