"""`redox_rust_std`: the prebuilt standard library a cargo package links against, as a package.

The std is keyed by what shapes it (target, `build_std` crates and features, std-shaping profile
settings, rustflags; see util_rules/std_sysroot.py) and built once per key; this rule asks for the
named package's std through the same rule as its build (`CargoPackageStdRequest`), so
`./pants package` writes the very sysroot that build mounts, from the same cache entry.
"""
from __future__ import annotations

from dataclasses import dataclass

from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, OutputPathField, PackageFieldSet
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import AddPrefix, Snapshot
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from redox.goals.cargo_package import CargoPackageFieldSet, CargoPackageStdRequest
from redox.target_types import RedoxCargoPackageTarget, RustStdPackageField
from redox.util_rules.package_build import PackageBuildError
from redox.util_rules.references import parse_reference
from redox.util_rules.std_sysroot import StdSysroot


@dataclass(frozen=True)
class RustStdFieldSet(PackageFieldSet):
    required_fields = (RustStdPackageField,)

    package: RustStdPackageField
    output_path: OutputPathField


@rule(desc="Package the Rust std a cargo package links against", level=LogLevel.DEBUG)
async def package_rust_std(field_set: RustStdFieldSet) -> BuiltPackage:
    origin = f"the `package` field of {field_set.address}"
    address = await Get(
        Address, AddressInput, parse_reference(field_set.package.value or "", relative_to=field_set.address.spec_path, origin=origin)
    )
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(address, description_of_origin=origin))
    if not isinstance(wrapped.target, RedoxCargoPackageTarget):
        raise PackageBuildError(f"{origin}: {address} is a `{wrapped.target.alias}` target; expected a `redox_cargo_package`")
    cargo = CargoPackageFieldSet.create(wrapped.target)
    if not cargo.build_std.value:
        raise PackageBuildError(
            f"{origin}: {address} has no `build_std`, so it links against the toolchain's own std, not a prebuilt one"
        )
    std = await Get(StdSysroot, CargoPackageStdRequest(cargo))
    out = field_set.output_path.value_or_default(file_ending=None)
    snapshot = await Get(Snapshot, AddPrefix(std.digest, out))
    return BuiltPackage(snapshot.digest, tuple(BuiltPackageArtifact(f) for f in snapshot.files))


def rules():
    return [*collect_rules(), UnionRule(PackageFieldSet, RustStdFieldSet)]
