"""`redox_sysroot`: a relibc-shaped C sysroot assembled in one sandboxed process -> staged tree.

The parts (Rust staticlib, C archives, crt objects, ld_so) are other packages' staged-tree files,
named by `<address>[=path]` references; headers and cbindgen inputs are the target's own files
or a `redox_source` checkout. Packages that link against a sysroot name it in their `sysroot`
field; `SysrootInputRequest` hands them its tree under `SYSROOT_DIR`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from pants.core.goals.package import BuiltPackage, OutputPathField, PackageFieldSet
from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths, BinaryPathTest
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, Digest, MergeDigests, Snapshot
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import HydratedSources, HydrateSourcesRequest, WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from redox.goals.source import PackageSource, PackageSourceRequest
from redox.subsystems.toolchain import RedoxToolchainSubsystem
from redox.target_types import (
    REDOX_TRIPLE,
    RedoxMakePackageTarget,
    RedoxSysrootTarget,
    SysrootArchivesField,
    SysrootCbindgenCommonField,
    SysrootCbindgenField,
    SysrootCrtObjectsField,
    SysrootHeadersField,
    SysrootInterpreterField,
    SysrootLdSoObjectField,
    SysrootLibmField,
    SysrootLibrariesField,
    SysrootRustSymbolPrefixField,
    SysrootSonameField,
    SysrootSourceField,
    SysrootSourcesField,
    SysrootSourceSubdirField,
)
from redox.util_rules.package_build import PackageBuildError, PackageBuildRequest
from redox.util_rules.references import FileReferenceRequest, ResolvedFile, parse_reference
from redox.util_rules.staged_tree import (
    StagedTree,
    StagedTreeFieldSet,
    StagedTreePackageRequest,
    StagedTreeRequest,
)
from redox.util_rules.toolchain import RedoxToolchain, RedoxToolchainRequest

CRT_KEYS = ("crt0", "crti", "crtn")
INPUTS_DIR = "__inputs"
SYSROOT_DIR = "__sysroot"


@dataclass(frozen=True)
class SysrootFieldSet(PackageFieldSet, StagedTreeFieldSet):
    required_fields = (SysrootArchivesField, SysrootCrtObjectsField)

    sources: SysrootSourcesField
    source: SysrootSourceField
    source_subdir: SysrootSourceSubdirField
    archives: SysrootArchivesField
    crt_objects: SysrootCrtObjectsField
    ld_so_object: SysrootLdSoObjectField
    libm: SysrootLibmField
    libraries: SysrootLibrariesField
    headers: SysrootHeadersField
    cbindgen: SysrootCbindgenField
    cbindgen_common: SysrootCbindgenCommonField
    soname: SysrootSonameField
    interpreter: SysrootInterpreterField
    rust_symbol_prefix: SysrootRustSymbolPrefixField
    output_path: OutputPathField


def reference_fields(fs: SysrootFieldSet) -> List[Tuple[str, str]]:
    """(field alias, `<address>[=path]`) of every part the sysroot is assembled from, in order."""
    refs = [("archives", a) for a in fs.archives.value or ()]
    refs += [("crt_objects", v) for _, v in sorted((fs.crt_objects.value or {}).items())]
    refs += [(f.alias, f.value) for f in (fs.ld_so_object, fs.libm) if f.value]
    refs += [("libraries", v) for _, v in sorted((fs.libraries.value or {}).items())]
    return refs


@rule(desc="Build a Redox sysroot", level=LogLevel.DEBUG)
async def build_sysroot(field_set: SysrootFieldSet, toolchain_subsystem: RedoxToolchainSubsystem) -> StagedTree:
    address = field_set.address
    crt = dict(field_set.crt_objects.value or {})
    missing = [k for k in CRT_KEYS if not crt.get(k)]
    if missing:
        raise PackageBuildError(
            f"{address}: `crt_objects` has no {', '.join(missing)}; a sysroot needs crt0 (_start), crti and "
            'crtn (.init/.fini), e.g. crt_objects={"crt0": "<address>=usr/lib/crt0.o", ...}'
        )
    unknown = sorted(set(crt) - set(CRT_KEYS))
    if unknown:
        raise PackageBuildError(
            f"{address}: `crt_objects` has unknown key(s) {', '.join(unknown)} (expected {', '.join(CRT_KEYS)})"
        )
    refs = reference_fields(field_set)
    resolved = await MultiGet(
        Get(ResolvedFile, FileReferenceRequest(value, address.spec_path, f"the `{alias}` field of {address}"))
        for alias, value in refs
    )
    # Each part under its own directory: two packages may install the same path.
    placed = await MultiGet(Get(Digest, AddPrefix(r.digest, f"{INPUTS_DIR}/{i}")) for i, r in enumerate(resolved))
    paths = {value: f"{INPUTS_DIR}/{i}/{r.path}" for i, ((_, value), r) in enumerate(zip(refs, resolved))}

    if field_set.source.value:
        upstream = await Get(
            PackageSource, PackageSourceRequest(address, field_set.source.value, field_set.source_subdir.value or "")
        )
        own = upstream.digest
        src_dir = upstream.root
    else:
        sources = await Get(HydratedSources, HydrateSourcesRequest(field_set.sources))
        own = sources.snapshot.digest
        src_dir = address.spec_path

    toolchain = await Get(RedoxToolchain, RedoxToolchainRequest(REDOX_TRIPLE, needs_rust_src=False))
    tools: Dict[str, Optional[str]] = {k: toolchain.tools.get(k) for k in ("lld", "ar", "objcopy")}
    fingerprints = {}
    if field_set.cbindgen.value:
        search_path = (*toolchain_subsystem.search_path, "/usr/bin")
        found = await Get(
            BinaryPaths,
            BinaryPathRequest(
                binary_name="cbindgen",
                search_path=search_path,
                test=BinaryPathTest(args=["--version"], fingerprint_stdout=True),
            ),
        )
        cbindgen = found.first_path
        if cbindgen is None:
            raise PackageBuildError(
                f"{address}: `cbindgen` needs the cbindgen tool, and none is in {':'.join(search_path)} "
                "(install cbindgen; 3rdparty/tools/host-packages lists it)"
            )
        tools["cbindgen"] = cbindgen.path
        # The version is part of the process key (the path alone would not change on an upgrade).
        fingerprints["cbindgen"] = cbindgen.fingerprint
    spec = {
        "package": str(address),
        "tools": tools,
        "fingerprints": fingerprints,
        "archives": [paths[a] for a in field_set.archives.value or ()],
        "crt_objects": {k: paths[v] for k, v in crt.items()},
        "ld_so_object": paths.get(field_set.ld_so_object.value or ""),
        "libm": paths.get(field_set.libm.value or ""),
        "libraries": {name: paths[v] for name, v in (field_set.libraries.value or {}).items()},
        "src_dir": src_dir,
        "headers": list(field_set.headers.value or ()),
        "cbindgen": dict(field_set.cbindgen.value or {}),
        "cbindgen_common": field_set.cbindgen_common.value,
        "soname": field_set.soname.value,
        "interpreter": field_set.interpreter.value,
        "rust_symbol_prefix": field_set.rust_symbol_prefix.value or "",
        "labels": {p: v for v, p in paths.items()},
        "path": list(toolchain_subsystem.search_path) + ["/usr/bin", "/bin"],
    }
    input_digest = await Get(Digest, MergeDigests([own, *placed]))
    tree = await Get(
        StagedTree,
        PackageBuildRequest.create(
            address, "redox_tools.sysroot_build", spec, input_digest, toolchain, {}, f"sysroot {address}"
        ),
    )
    snapshot = await Get(Snapshot, Digest, tree.digest)
    return StagedTree(address, tree.digest, tuple(sorted(snapshot.files)))


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
            "or a `redox_make_package` (relibc's own `make install`)"
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
