"""`redox_data_package`: files installed as they are (and symlinks) -> staged tree.

No process runs: the staged tree is made from the source files' digest entries, so installing
data costs nothing but the fetch of its source.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

from pants.core.goals.package import BuiltPackage, OutputPathField, PackageFieldSet
from pants.engine.fs import CreateDigest, Digest, DigestEntries, FileEntry, SymlinkEntry
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from redox.goals.source import OwnSourcesLayout, PackageCode, PackageCodeRequest
from redox.target_types import (
    CargoSourceField,
    CargoSourceSubdirField,
    DataInstallField,
    DataSourcesField,
    DataSymlinksField,
)
from redox.util_rules.package_build import PackageBuildError
from redox.util_rules.staged_tree import StagedTree, StagedTreeFieldSet, StagedTreePackageRequest

GLOB_CHARS = "*?["
DIR_PLACEHOLDER = "{dir}"  # in a glob's image path: the name of the matched file's directory
NAME_PLACEHOLDER = "{name}"  # ... the matched file's own name


def image_path(owner: str, what: str, dest: str) -> str:
    rel = dest.strip("/")
    parts = rel.split("/")
    if not dest.startswith("/") or not rel or any(p in ("", ".", "..") for p in parts):
        raise PackageBuildError(f"{owner}: {what} {dest!r} is not an absolute plain path in the image")
    return rel


def install_plan(owner: str, files: Sequence[str], install: Mapping[str, str]) -> List[Tuple[str, str]]:
    """[(file, image-relative path)] for `install` over `files` (paths relative to the package
    root). Every key must match something; two keys may not install to the same path."""
    plan: Dict[str, str] = {}
    for key, dest in sorted(install.items()):
        rel_dest = image_path(owner, f"install path for {key!r}", dest)
        wild = min((key.find(c) for c in GLOB_CHARS if c in key), default=-1)
        if wild < 0:
            if key not in files:
                raise PackageBuildError(f"{owner}: `install` names {key!r}, which is not among the package's files")
            matches = [(key, rel_dest)]
        else:
            base = key[: key.rfind("/", 0, wild) + 1]  # the directory part before the first wildcard
            pattern = key.replace("**/", "*").replace("/**", "/*")
            found = [f for f in files if fnmatch.fnmatchcase(f, pattern)]
            if DIR_PLACEHOLDER in rel_dest or NAME_PLACEHOLDER in rel_dest:
                # base's pcid.d: drivers/**/config.toml -> /usr/lib/pcid.d/{dir}.toml
                # libgcc: **/lib/libgcc_s.so.1 -> /usr/lib/{name}
                matches = [
                    (
                        f,
                        rel_dest.replace(DIR_PLACEHOLDER, f.rsplit("/", 2)[-2] if "/" in f else "").replace(
                            NAME_PLACEHOLDER, f.rsplit("/", 1)[-1]
                        ),
                    )
                    for f in found
                ]
            else:
                matches = [(f, f"{rel_dest}/{f[len(base):]}") for f in found]
            if not matches:
                raise PackageBuildError(f"{owner}: `install` glob {key!r} matches none of the package's files")
        for src, out in matches:
            if out in plan and plan[out] != src:
                raise PackageBuildError(f"{owner}: both {plan[out]!r} and {src!r} would install /{out}")
            plan[out] = src
    return sorted((src, out) for out, src in plan.items())


@dataclass(frozen=True)
class DataPackageFieldSet(PackageFieldSet, StagedTreeFieldSet):
    required_fields = (DataInstallField, DataSymlinksField)

    sources: DataSourcesField
    source: CargoSourceField
    source_subdir: CargoSourceSubdirField
    install: DataInstallField
    symlinks: DataSymlinksField
    output_path: OutputPathField


@rule(desc="Stage a Redox data package", level=LogLevel.DEBUG)
async def build_data_package(field_set: DataPackageFieldSet) -> StagedTree:
    address = field_set.address
    owner = str(address)
    if not field_set.install.value and not field_set.symlinks.value:
        raise PackageBuildError(f"{owner}: neither `install` nor `symlinks` is set, so the package would stage nothing")
    code = await Get(
        PackageCode,
        PackageCodeRequest(
            address, field_set.source.value, field_set.source_subdir.value or "", field_set.sources, OwnSourcesLayout.AS_IS
        ),
    )
    # Paths are taken relative to the package's root, so only the files' digests reach the tree.
    entries = await Get(DigestEntries, Digest, code.digest)
    prefix = f"{code.root}/" if code.root else ""
    by_path = {e.path[len(prefix):]: e for e in entries if isinstance(e, FileEntry) and e.path.startswith(prefix)}
    plan = install_plan(owner, sorted(by_path), dict(field_set.install.value or {}))
    out: List[FileEntry | SymlinkEntry] = [
        FileEntry(dest, by_path[src].file_digest, is_executable=by_path[src].is_executable) for src, dest in plan
    ]
    installed = {dest for _, dest in plan}
    for link, target in sorted((field_set.symlinks.value or {}).items()):
        rel = image_path(owner, "symlink", link)
        if rel in installed:
            raise PackageBuildError(f"{owner}: /{rel} is both an installed file and a symlink")
        out.append(SymlinkEntry(rel, target))
        installed.add(rel)
    staged = await Get(Digest, CreateDigest(out))
    return StagedTree(address, staged, tuple(sorted(installed)))


@rule(desc="Package a Redox data package", level=LogLevel.DEBUG)
async def package_data_package(field_set: DataPackageFieldSet) -> BuiltPackage:
    return await Get(BuiltPackage, StagedTreePackageRequest(field_set.address, field_set.output_path))


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, DataPackageFieldSet),
        UnionRule(StagedTreeFieldSet, DataPackageFieldSet),
    ]
