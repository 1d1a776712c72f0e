"""`redox_module` + `redox_system`: modules -> evaluated configuration -> generated files + packages
-> disk image.

The evaluation is `python -m redox_tools.system build` (pure, no Pants imports); these rules
gather the modules a system imports, hand them to it as one JSON description, check that every
package the configuration names is a package target, and assemble the image like a
`redox_disk_image` with the generated files as an overlay over the packages' trees.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Set, Tuple

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import CreateDigest, Digest, DigestContents, DigestSubset, FileContent, MergeDigests, PathGlobs
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    FieldSet,
    InferDependenciesRequest,
    InferredDependencies,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.engine.unions import UnionMembership, UnionRule
from pants.util.logging import LogLevel

from redox.goals.disk_image import IMAGE_FORMAT, DiskImage, DiskImageSpec, SystemImageRequest
from redox.subsystems.image import RedoxImageSubsystem
from redox.target_types import (
    DiskImageSourceDateEpochField,
    ModuleImportsField,
    PackageGroupMembersField,
    SystemConfigField,
    SystemModulesField,
)
from redox.util_rules.image_inputs import ImageTreesRequest
from redox.util_rules.redox_tools import RedoxToolProcess
from redox.util_rules.references import split_reference
from redox.util_rules.staged_tree import StagedTreeFieldSet

logger = logging.getLogger(__name__)

SYSTEM_TOOL = "redox_tools.system"
DESCRIPTION_FILE = "__system.json"
OUT_DIR = "__system"


class SystemConfigError(Exception):
    """A module system error (the tool's one line, naming the option and the module)."""


def module_name(address: Address) -> str:
    return f"//{address.spec_path}:{address.target_name}"


@dataclass(frozen=True)
class SystemFieldSet(PackageFieldSet):
    required_fields = (SystemModulesField,)

    modules: SystemModulesField
    config: SystemConfigField
    source_date_epoch: DiskImageSourceDateEpochField
    output_path: OutputPathField


@dataclass(frozen=True)
class SystemDescriptionRequest:
    address: Address


@dataclass(frozen=True)
class SystemDescription:
    address: Address
    digest: Digest  # DESCRIPTION_FILE + every repository file a `files.*.source` names


def _sources_in(config: Any, module_dir: str) -> List[str]:
    """Repository files named by `files.<path>.source` anywhere in a module's config (markers included)."""
    found: List[str] = []

    def walk(v: Any, under_files: bool) -> None:
        if isinstance(v, dict):
            for k, sub in v.items():
                if under_files and k == "source" and isinstance(sub, str):
                    found.append(sub[2:] if sub.startswith("//") else f"{module_dir}/{sub}" if module_dir else sub)
                else:
                    walk(sub, under_files or k == "files")
        elif isinstance(v, list):
            for x in v:
                walk(x, under_files)

    walk(config, False)
    return found


def _address_inputs(specs: Tuple[str, ...], owner: Address, field: str) -> List[AddressInput]:
    return [
        AddressInput.parse(s, relative_to=owner.spec_path, description_of_origin=f"the `{field}` field of {owner}")
        for s in specs
    ]


@rule(desc="Gather a system's modules", level=LogLevel.DEBUG)
async def system_description(request: SystemDescriptionRequest) -> SystemDescription:
    address = request.address
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(address, description_of_origin="redox_system"))
    target = wrapped.target
    if not target.has_field(SystemModulesField):
        raise SystemConfigError(f"{address} is a `{target.alias}`, not a `redox_system`")
    name = module_name(address)

    roots = list(
        await MultiGet(
            Get(Address, AddressInput, i)
            for i in _address_inputs(tuple(target[SystemModulesField].value or ()), address, "modules")
        )
    )
    modules: List[Dict[str, Any]] = [{
        "name": name, "file": f"{address.spec_path}/BUILD", "dir": address.spec_path,
        "imports": [module_name(a) for a in roots], "config": json.loads(target[SystemConfigField].value or "{}"),
    }]
    seen: Set[Address] = set()
    frontier = [(a, address) for a in roots]
    while frontier:
        batch = [(a, owner) for a, owner in frontier if a not in seen]
        seen.update(a for a, _ in batch)
        wrapped_all = await MultiGet(
            Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin=f"the modules of {o}")) for a, o in batch
        )
        frontier = []
        for (a, owner), w in zip(batch, wrapped_all):
            t = w.target
            if not t.has_field(ModuleImportsField):
                raise SystemConfigError(
                    f"{owner} imports {a}, which is a `{t.alias}`, not a `redox_module`"
                )
            imports = await MultiGet(
                Get(Address, AddressInput, i) for i in _address_inputs(tuple(t[ModuleImportsField].value or ()), a, "imports")
            )
            modules.append({
                "name": module_name(a), "file": f"{a.spec_path}/BUILD", "dir": a.spec_path,
                "imports": [module_name(i) for i in imports], "config": json.loads(t[SystemConfigField].value or "{}"),
            })
            frontier += [(i, a) for i in imports]
    modules.sort(key=lambda m: m["name"])
    text = json.dumps({"system": name, "roots": [name], "modules": modules}, sort_keys=True, indent=1)
    sources = sorted({s for m in modules for s in _sources_in(m["config"], m["dir"])})
    digests = [await Get(Digest, CreateDigest([FileContent(DESCRIPTION_FILE, text.encode())]))]
    if sources:
        digests.append(await Get(Digest, PathGlobs(sources)))
    return SystemDescription(address, await Get(Digest, MergeDigests(digests)))


@dataclass(frozen=True)
class EvaluatedSystemRequest:
    address: Address
    source_date_epoch: int


@dataclass(frozen=True)
class EvaluatedSystem:
    address: Address
    digest: Digest  # OUT_DIR/{config.json, overlay.json, files/...}
    config_json: str  # the evaluated configuration (secrets redacted)
    packages: Tuple[str, ...]
    drop_drivers: Tuple[str, ...] = ()  # the drivers `hardware.drivers` leaves out of the image

    @property
    def config(self) -> Dict[str, Any]:
        return json.loads(self.config_json)["config"]


def tool_failure(result: FallibleProcessResult) -> str:
    err = result.stderr.decode(errors="replace").strip()
    lines = [line[len("error: "):] if line.startswith("error: ") else line for line in err.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {result.exit_code}"


@rule(desc="Evaluate a Redox system's modules", level=LogLevel.DEBUG)
async def evaluate_system(request: EvaluatedSystemRequest) -> EvaluatedSystem:
    description = await Get(SystemDescription, SystemDescriptionRequest(request.address))
    process = await Get(
        Process,
        RedoxToolProcess(
            module=SYSTEM_TOOL,
            args=("build", DESCRIPTION_FILE, "--out-dir", OUT_DIR, "--root", ".",
                  "--source-date-epoch", str(request.source_date_epoch)),
            description=f"Evaluate the modules of {request.address}",
            input_digest=description.digest,
            output_directories=(OUT_DIR,),
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise SystemConfigError(f"{request.address}: {tool_failure(result)}")
    for line in result.stderr.decode(errors="replace").splitlines():
        if line.startswith("warning: "):
            logger.warning(f"{request.address}: {line[len('warning: '):]}")
    contents = await Get(DigestContents, DigestSubset(result.output_digest, PathGlobs([f"{OUT_DIR}/config.json"])))
    config_json = contents[0].content.decode()
    evaluated = json.loads(config_json)
    return EvaluatedSystem(
        request.address, result.output_digest, config_json, tuple(evaluated["packages"]),
        tuple(evaluated["drop_drivers"]),
    )


async def _check_packages(
    address: Address, option: str, values: Tuple[str, ...], union_membership: UnionMembership
) -> Tuple[Address, ...]:
    """Addresses of the package targets `values` name; anything else is an error naming the option."""
    where = f"option `{option}` of {address}"
    addresses = await MultiGet(
        Get(Address, AddressInput, AddressInput.parse(split_reference(v)[0], description_of_origin=where)) for v in values
    )
    wrapped = await MultiGet(Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin=where)) for a in addresses)
    members = union_membership.get(StagedTreeFieldSet)
    for v, w in zip(values, wrapped):
        t = w.target
        if t.has_field(PackageGroupMembersField) or any(m.is_applicable(t) for m in members):
            continue
        raise SystemConfigError(
            f"{where}: {v} is a `{t.alias}` target, not a package (a redox_cargo_package, redox_c_package, "
            "redox_data_package, redox_package_group, ...)"
        )
    return tuple(addresses)


def system_epoch(field: DiskImageSourceDateEpochField, image: RedoxImageSubsystem) -> int:
    return image.source_date_epoch if field.value is None else field.value


@dataclass(frozen=True)
class SystemDependenciesFieldSet(FieldSet):
    required_fields = (SystemModulesField,)

    source_date_epoch: DiskImageSourceDateEpochField


class InferSystemDependencies(InferDependenciesRequest):
    infer_from = SystemDependenciesFieldSet


@rule(desc="Infer the packages a Redox system's options name", level=LogLevel.DEBUG)
async def infer_system_dependencies(
    request: InferSystemDependencies, image: RedoxImageSubsystem
) -> InferredDependencies:
    """The packages of the evaluated options (`environment.system_packages`, `boot.*`) as graph
    edges. It is the evaluation the image build runs (same request, so one cached process
    serves both); the `modules`/`imports` edges come from their reference fields."""
    address = request.field_set.address
    epoch = system_epoch(request.field_set.source_date_epoch, image)
    system = await Get(EvaluatedSystem, EvaluatedSystemRequest(address, epoch))
    boot = system.config["boot"]
    named = [(v, "environment.system_packages") for v in system.packages]
    named += [(boot[k], f"boot.{k}") for k in ("bootloader", "kernel", "initfs") if boot[k]]
    origins = [f"option `{option}` of {address}" for _v, option in named]
    addresses = await MultiGet(
        Get(Address, AddressInput, AddressInput.parse(split_reference(v)[0], description_of_origin=o))
        for (v, _option), o in zip(named, origins)
    )
    # a name that is no target: one error naming the option, here rather than later in the graph
    await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(a, description_of_origin=o)) for a, o in zip(addresses, origins)
    )
    return InferredDependencies(sorted(set(addresses)))


@dataclass(frozen=True)
class SystemImageSpecRequest:
    """What a `redox_system`'s disk image is made of (its evaluated options as a DiskImageSpec);
    boot tests ask for it too, to check the system's sources before building anything."""

    address: Address


@rule(desc="Build a Redox system's disk image", level=LogLevel.DEBUG)
async def system_disk_image(request: SystemImageRequest) -> DiskImage:
    spec = await Get(DiskImageSpec, SystemImageSpecRequest(request.address))
    return await Get(DiskImage, DiskImageSpec, spec)


@rule(desc="Evaluate a Redox system's image", level=LogLevel.DEBUG)
async def system_disk_image_spec(
    request: SystemImageSpecRequest, image: RedoxImageSubsystem, union_membership: UnionMembership
) -> DiskImageSpec:
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(request.address, description_of_origin="redox_system"))
    field_set = SystemFieldSet.create(wrapped.target)
    address = field_set.address
    epoch = system_epoch(field_set.source_date_epoch, image)
    system = await Get(EvaluatedSystem, EvaluatedSystemRequest(address, epoch))
    config = system.config
    boot = config["boot"]
    if not boot["bootloader"]:
        raise SystemConfigError(f"{address}: option `boot.bootloader` is not set: a disk image needs a UEFI bootloader")
    packages = await _check_packages(address, "environment.system_packages", system.packages, union_membership)
    boot_values = tuple(v for v in (boot["bootloader"], boot["kernel"]) if v)
    boot_addresses = await _check_packages(address, "boot", boot_values, union_membership)
    if boot["initfs"]:
        initfs = await Get(
            Address, AddressInput,
            AddressInput.parse(split_reference(boot["initfs"])[0], description_of_origin=f"option `boot.initfs` of {address}"),
        )
        boot_addresses += (initfs,)
    spec = DiskImageSpec(
        address=address,
        packages=ImageTreesRequest(address, None, f"option `environment.system_packages` of {address}", packages),
        bootloader=boot["bootloader"],
        kernel=boot["kernel"],
        initfs=boot["initfs"],
        size=config["filesystem"]["size"],
        esp_size_mib=boot["esp_size_mib"],
        source_date_epoch=epoch,
        require_boot_files=boot["require_boot_files"],
        output_path=field_set.output_path.value_or_default(file_ending=IMAGE_FORMAT),
        origin="option",
        overlay_digest=system.digest,
        overlay=f"{OUT_DIR}/overlay.json",
        preflight_roots=tuple(sorted(set(packages) | set(boot_addresses))),
        drop_drivers=system.drop_drivers,
    )
    return spec


@rule(desc="Package a Redox system", level=LogLevel.DEBUG)
async def package_system(field_set: SystemFieldSet) -> BuiltPackage:
    image = await Get(DiskImage, SystemImageRequest(field_set.address))
    return BuiltPackage(
        image.digest, (BuiltPackageArtifact(image.path), BuiltPackageArtifact(f"{image.path}.manifest.json"))
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, SystemFieldSet),
        UnionRule(InferDependenciesRequest, InferSystemDependencies),
    ]
