"""A `redox_system` in Pants' graph: its modules and the packages its evaluated options name are
its dependencies (what `./pants dependencies` shows), and bad options are one error naming the
option, through the engine (the real evaluator runs in its venv)."""
from __future__ import annotations

import os

import pytest
from pants.engine.addresses import Address, Addresses
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.target import Dependencies, DependenciesRequest, WrappedTarget, WrappedTargetRequest
from pants.testutil.rule_runner import QueryRule, RuleRunner

from redox.goals.package_integration_test import PEX, build_root_files, configure, redox_rule_runner

pytestmark = pytest.mark.skipif(not os.path.isfile(PEX), reason="needs the bootstrapped pex (run via ./pants)")

PACKAGES_BUILD = "".join(
    f'redox_data_package(name="{n}", sources=[], symlinks={{"/x/{n}": "y"}})\n'
    for n in ("bootloader", "kernel", "initfs", "tool", "other", "graphics-only")
)
# boot.* named explicitly: their defaults (//packages/system:...) do not exist in this build root
BOOT = '"boot": {"bootloader": "//pkgs:bootloader", "kernel": "//pkgs:kernel", "initfs": "//pkgs:initfs"}'
SYSTEMS_BUILD = f"""
redox_module(name="base", config={{{BOOT}, "environment": {{"system_packages": ["//pkgs:tool"]}}}})
redox_module(
    name="desktop",
    imports=[":base"],
    config={{
        "environment": {{"system_packages": (
            {{"_redox": "if", "condition": "graphics.enable", "value": ["//pkgs:graphics-only"]}}
        )}},
    }},
)
redox_system(name="sys", modules=[":desktop"], config={{"environment": {{"system_packages": [":local"]}}}})
redox_data_package(name="local", sources=[], symlinks={{"/x/local": "y"}})
redox_system(name="missing", modules=[":base"], config={{"environment": {{"system_packages": ["//pkgs:nope"]}}}})
redox_system(name="bad-driver", modules=[":base"], config={{"hardware": {{"drivers": ["virtio-blk"]}}}})
"""


@pytest.fixture(scope="module")
def rule_runner() -> RuleRunner:
    rr = redox_rule_runner(QueryRule(Addresses, [DependenciesRequest]))
    files = {k: v for k, v in build_root_files(requirements=False).items() if k.startswith(("pants-plugins/", "3rdparty/"))}
    files["pkgs/BUILD"] = PACKAGES_BUILD
    files["sys/BUILD"] = SYSTEMS_BUILD
    rr.write_files(files)
    configure(rr, search_path=["/usr/bin"])
    return rr


def dependencies(rr: RuleRunner, name: str) -> list:
    target = rr.request(WrappedTarget, [WrappedTargetRequest(Address("sys", target_name=name), "test")]).target
    return sorted(a.spec for a in rr.request(Addresses, [DependenciesRequest(target.get(Dependencies))]))


def test_a_system_depends_on_its_modules_and_the_packages_its_options_name(rule_runner: RuleRunner) -> None:
    # graphics-only is behind mk_if("graphics.enable"), which is false: not a dependency
    assert dependencies(rule_runner, "sys") == [
        "pkgs:bootloader", "pkgs:initfs", "pkgs:kernel", "pkgs:tool", "sys:desktop", "sys:local",
    ]
    assert dependencies(rule_runner, "desktop") == ["sys:base"]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("missing", "option `environment.system_packages` of sys:missing"),
        ("bad-driver", "option `hardware.drivers` (set in //sys:bad-driver): unknown driver `virtio-blk` (did you mean `virtio-blkd`?)"),
    ],
)
def test_bad_options_are_one_error_naming_the_option(rule_runner: RuleRunner, name: str, expected: str) -> None:
    with pytest.raises(ExecutionError) as e:
        dependencies(rule_runner, name)
    assert expected in str(e.value)
    assert "Traceback" not in str(e.value).split("\n", 1)[0]
