"""Package groups, run-time dependencies and data packages through Pants' engine.

No compiler runs here: data packages are staged straight from digests, so these tests are quick.
"""
from __future__ import annotations

from typing import List

import pytest
from pants.backend.python import register as python_backend
from pants.backend.python import target_types_rules
from pants.backend.python.util_rules import pex_from_targets
from pants.core.util_rules import archive, system_binaries
from pants.engine.addresses import Address
from pants.engine.fs import Digest, DigestEntries, FileEntry, SymlinkEntry
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.testutil.rule_runner import QueryRule, RuleRunner

from redox import register
from redox.goals.data_package import DataPackageFieldSet, install_plan
from redox.target_types import PackageGroupMembersField
from redox.util_rules.image_inputs import PackageClosure, PackageClosureRequest, find_cycle
from redox.util_rules.package_build import PackageBuildError
from redox.util_rules.staged_tree import StagedTree


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(
        rules=[
            *register.rules(),
            *pex_from_targets.rules(),
            *target_types_rules.rules(),
            *archive.rules(),
            *system_binaries.rules(),
            QueryRule(WrappedTarget, [WrappedTargetRequest]),
            QueryRule(PackageClosure, [PackageClosureRequest]),
            QueryRule(StagedTree, [DataPackageFieldSet]),
            QueryRule(DigestEntries, [Digest]),
        ],
        target_types=[*register.target_types(), *python_backend.target_types()],
    )


def data(name: str, deps: List[str] = ()) -> str:  # type: ignore[assignment]
    return (
        f'redox_data_package(name="{name}", sources=["{name}.txt"], install={{"{name}.txt": "/usr/share/{name}.txt"}}, '
        f"dependencies={list(deps)!r})\n"
    )


def closure(rule_runner: RuleRunner, group: str) -> List[str]:
    target = rule_runner.request(WrappedTarget, [WrappedTargetRequest(Address("p", target_name=group), "test")]).target
    result = rule_runner.request(
        PackageClosure, [PackageClosureRequest(target.address, target[PackageGroupMembersField], "test image")]
    )
    return [str(a) for a in result.addresses]


def test_groups_expand_and_runtime_dependencies_follow(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            **{f"p/{n}.txt": n for n in "abcd"},
            "p/BUILD": data("a", [":b"]) + data("b", [":c"]) + data("c") + data("d")
            + 'redox_package_group(name="inner", dependencies=[":d"])\n'
            + 'redox_package_group(name="profile", dependencies=[":a", ":inner"])\n',
        }
    )
    # b and c come in as a's run-time dependencies, d through the nested group; groups themselves
    # install nothing.
    assert closure(rule_runner, "profile") == ["p:a", "p:b", "p:c", "p:d"]


def test_dependency_cycle_names_the_chain(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            **{f"p/{n}.txt": n for n in "abc"},
            "p/BUILD": data("a", [":b"]) + data("b", [":c"]) + data("c", [":a"])
            + 'redox_package_group(name="profile", dependencies=[":a"])\n',
        }
    )
    with pytest.raises(ExecutionError) as e:
        closure(rule_runner, "profile")
    assert "the package `dependencies` form a cycle: p:a -> p:b -> p:c -> p:a" in str(e.value)


def test_unknown_package_names_the_target(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"p/a.txt": "a", "p/BUILD": data("a", [":nope"]) + 'redox_package_group(name="profile", dependencies=[":a"])\n'}
    )
    with pytest.raises(ExecutionError) as e:
        closure(rule_runner, "profile")
    message = str(e.value)
    assert "The address p:nope from the `dependencies` of p:a does not exist" in message


def test_data_package_stages_files_and_symlinks(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "p/init.d/00_base": "x",
            "p/init.d/10_net": "y",
            "p/issue": "Redox\n",
            "p/BUILD": 'redox_data_package(name="d", sources=["init.d/*", "issue"], '
            'install={"init.d/*": "/usr/lib/init.d", "issue": "/etc/issue"}, symlinks={"/dev/null": "/scheme/null"})\n',
        }
    )
    target = rule_runner.get_target(Address("p", target_name="d"))
    tree = rule_runner.request(StagedTree, [DataPackageFieldSet.create(target)])
    assert tree.files == ("dev/null", "etc/issue", "usr/lib/init.d/00_base", "usr/lib/init.d/10_net")
    entries = {e.path: e for e in rule_runner.request(DigestEntries, [tree.digest])}
    assert isinstance(entries["dev/null"], SymlinkEntry) and entries["dev/null"].target == "/scheme/null"
    assert isinstance(entries["etc/issue"], FileEntry)


def test_install_plan_errors() -> None:
    files = ["init.d/00_base", "ui/fonts/a.ttf", "ui/icons/b.png"]
    assert install_plan("t", files, {"ui/**": "/ui"}) == [("ui/fonts/a.ttf", "ui/fonts/a.ttf"), ("ui/icons/b.png", "ui/icons/b.png")]
    drivers = ["drivers/net/e1000d/config.toml", "drivers/audio/ac97d/config.toml", "drivers/README"]
    assert install_plan("t", drivers, {"drivers/**/config.toml": "/usr/lib/pcid.d/{dir}.toml"}) == [
        ("drivers/audio/ac97d/config.toml", "usr/lib/pcid.d/ac97d.toml"),
        ("drivers/net/e1000d/config.toml", "usr/lib/pcid.d/e1000d.toml"),
    ]
    prefix = ["x86_64-unknown-redox/lib/libgcc_s.so.1", "lib/gcc/x86_64-unknown-redox/13.2.0/libgcc_eh.a"]
    assert install_plan("t", prefix, {"**/libgcc_eh.a": "/usr/lib/{name}"}) == [
        ("lib/gcc/x86_64-unknown-redox/13.2.0/libgcc_eh.a", "usr/lib/libgcc_eh.a")
    ]
    with pytest.raises(PackageBuildError, match="names 'nope'"):
        install_plan("t", files, {"nope": "/x"})
    with pytest.raises(PackageBuildError, match="matches none"):
        install_plan("t", files, {"etc/*": "/etc"})
    with pytest.raises(PackageBuildError, match="not an absolute plain path"):
        install_plan("t", files, {"init.d/00_base": "usr/../x"})


def test_find_cycle() -> None:
    a, b, c = (Address("p", target_name=n) for n in "abc")
    assert find_cycle([a], {a: (b,), b: (c,), c: ()}) is None
    assert find_cycle([a], {a: (b,), b: (c,), c: (b,)}) == [b, c, b]
