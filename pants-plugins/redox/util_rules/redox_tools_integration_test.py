"""The tools' venv through Pants' engine, with a hostile repository around it (issue 11 #7):
a BUILD file with an unknown field and an absolute symlink elsewhere in the repo must not
break building and running a tool, because only the tools' own BUILD file is read. Also: a
bad disk-image `size` is an error naming the field (issue 11 #4)."""
from __future__ import annotations

import os

import pytest
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.testutil.rule_runner import QueryRule, RuleRunner

from redox.goals.package_integration_test import PEX, build_root_files, configure, redox_rule_runner
from redox.util_rules.redox_tools import RedoxToolProcess

pytestmark = pytest.mark.skipif(not os.path.isfile(PEX), reason="needs the bootstrapped pex (run via ./pants)")


@pytest.fixture(scope="module")
def rule_runner() -> RuleRunner:
    rr = redox_rule_runner(QueryRule(Process, [RedoxToolProcess]), QueryRule(FallibleProcessResult, [Process]))
    files = {k: v for k, v in build_root_files(requirements=False).items() if k.startswith(("pants-plugins/", "3rdparty/"))}
    # the hostile neighbours: an unknown field, a BUILD.off, an absolute symlink
    files["scratch/bad/BUILD"] = 'python_sources(no_such_field=1)\n'
    files["scratch/off/BUILD.off"] = "this is not python(\n"
    files["images/BUILD"] = 'redox_disk_image(name="neg", size="-5M", require_boot_files=False)\n'
    rr.write_files(files)
    os.symlink("/etc", os.path.join(rr.build_root, "scratch", "etc-link"))
    configure(rr, search_path=["/usr/bin"], extra=["--build-patterns=['BUILD', 'BUILD.*']"])
    return rr


def test_a_tool_runs_although_the_repo_has_a_bad_build_file_and_an_absolute_symlink(rule_runner: RuleRunner) -> None:
    process = rule_runner.request(
        Process, [RedoxToolProcess(module="redox_tools.formats.fat", args=("--help",), description="fat --help")]
    )
    result = rule_runner.request(FallibleProcessResult, [process])
    assert result.exit_code == 0, result.stderr.decode()
    assert b"FAT (ESP) writer and reader" in result.stdout


def test_a_bad_disk_image_size_names_the_field(rule_runner: RuleRunner) -> None:
    with pytest.raises(ExecutionError) as e:
        rule_runner.request(WrappedTarget, [WrappedTargetRequest(Address("images", target_name="neg"), "test")])
    assert "The `size` field of images:neg must be a positive size like 512M" in str(e.value)
    assert "usage:" not in str(e.value)
