"""`redox_boot_test`: boot a disk image headless and check serial milestones, under `./pants test`.

The VM work (hypervisor choice, overlay so the built image is never written, milestone
tracking, isa-debug-exit, killing the VM) is `redox_tools.vm boottest`; this rule builds the
image and runs that as a test process. Its serial log and screendumps (`screen_checks`) are
the test's extra output: `dist/test/<address>/serial.log`, `screen-<milestone>.ppm`/`.png`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, List, Tuple

from pants.core.goals.test import (
    TestExtraEnv,
    TestFieldSet,
    TestRequest,
    TestResult,
    TestSubsystem,
    TestTimeoutField,
)
from pants.core.util_rules.distdir import DistDir
from pants.engine.addresses import Address
from pants.engine.fs import RemovePrefix, Snapshot
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from redox.goals.disk_image import DiskImage, DiskImageRequest, DiskImageSpec
from redox.goals.source import FallibleSourcesPreflight, SourcesPreflightRequest
from redox.goals.system import SystemFieldSet, SystemImageSpecRequest
from redox.subsystems.boot import RedoxBootTestSubsystem, UnavailableSources
from redox.subsystems.image import RedoxImageSubsystem
from redox.target_types import (
    BootTestExpectExitField,
    BootTestFailPatternsField,
    BootTestImageField,
    BootTestMemoryField,
    BootTestMilestonesField,
    BootTestScreenChecksField,
    BootTestSerialRepliesField,
)
from redox.util_rules.redox_tools import RedoxToolProcess
from redox.util_rules.references import parse_reference

logger = logging.getLogger(__name__)

# Everything the user may want to look at afterwards; copied to dist/test/<address>/.
OUTPUT_DIR = "boot"
SERIAL_LOG = f"{OUTPUT_DIR}/serial.log"


@dataclass(frozen=True)
class BootTestFieldSet(TestFieldSet):
    required_fields = (BootTestImageField, BootTestMilestonesField)

    image: BootTestImageField
    milestones: BootTestMilestonesField
    fail_patterns: BootTestFailPatternsField
    expect_exit: BootTestExpectExitField
    memory_mib: BootTestMemoryField
    screen_checks: BootTestScreenChecksField
    serial_replies: BootTestSerialRepliesField
    timeout: TestTimeoutField


class BootTestRequest(TestRequest):
    tool_subsystem = RedoxBootTestSubsystem
    field_set_type = BootTestFieldSet


def boottest_args(
    field_set: BootTestFieldSet,
    image_path: str,
    image: RedoxImageSubsystem,
    timeout: int,
    output_dir_shown: str = "",
    image_format: str = "qcow2",
) -> List[str]:
    args = [
        "boottest",
        "--image",
        image_path,
        "--image-format",
        image_format,
        "--ovmf-code",
        image.ovmf_code,
        "--ovmf-vars",
        image.ovmf_vars,
        "--memory",
        f"{field_set.memory_mib.value}M",
        "--cpus",
        "1",
        "--serial-log",
        SERIAL_LOG,
        "--work-dir",
        "__vm",
        "--timeout",
        str(timeout),
    ]
    for m in field_set.milestones.value or ():
        args += ["--milestone", m]
    for f in field_set.fail_patterns.value or ():
        args += ["--fail", f]
    if field_set.expect_exit.value is not None:
        args += ["--expect-exit", str(field_set.expect_exit.value)]
    for c in field_set.screen_checks.value or ():
        args += ["--screen-check", c]
    for r in field_set.serial_replies.value or ():
        args += ["--serial-reply", r]
    if output_dir_shown:
        args += ["--display-dir", output_dir_shown]
    return args


@rule(desc="Boot-test a Redox disk image", level=LogLevel.DEBUG)
async def run_boot_test(
    batch: BootTestRequest.Batch[BootTestFieldSet, Any],
    test_subsystem: TestSubsystem,
    test_extra_env: TestExtraEnv,
    image_subsystem: RedoxImageSubsystem,
    subsystem: RedoxBootTestSubsystem,
    distdir: DistDir,
) -> TestResult:
    field_set = batch.single_element
    address = field_set.address
    image_address = await Get(
        Address,
        parse_reference(
            field_set.image.value or "", relative_to=address.spec_path, origin=f"the `image` field of {address}"
        ),
    )
    if subsystem.unavailable_sources == UnavailableSources.skip:
        # A redox_system's packages come from its evaluated options, not from the target graph.
        image_target = await Get(
            WrappedTarget, WrappedTargetRequest(image_address, description_of_origin=f"the `image` field of {address}")
        )
        roots: Tuple[Address, ...] = ()
        if SystemFieldSet.is_applicable(image_target.target):
            spec = await Get(DiskImageSpec, SystemImageSpecRequest(image_address))
            roots = spec.preflight_roots
        preflight = await Get(FallibleSourcesPreflight, SourcesPreflightRequest(image_address, roots))
        if preflight.error:
            # Not run is not passed: Pants lists it as "no tests found", and this says why.
            logger.warning(
                f"{address}: not run, its image cannot be built here. {preflight.error}\n"
                "([redox-boot-tests].unavailable_sources = \"fail\" makes this an error.)"
            )
            return TestResult.no_tests_found(address, test_subsystem.output)
    disk = await Get(DiskImage, DiskImageRequest(image_address, f"the `image` field of {address}"))
    timeout = field_set.timeout.calculate_from_global_options(test_subsystem) or 300
    # Where `./pants test` writes the extra output (see TestResult.extra_output).
    shown = str(distdir.relpath / "test" / address.path_safe_spec)
    process = await Get(
        Process,
        RedoxToolProcess(
            module="redox_tools.vm",
            args=tuple(boottest_args(field_set, disk.path, image_subsystem, timeout, shown, disk.format)),
            description=f"Boot {image_address} for {address}",
            input_digest=disk.digest,
            output_directories=(OUTPUT_DIR,),
            env=FrozenDict({**test_extra_env.env, "PATH": ":".join(subsystem.path)}),
            # The harness enforces per-milestone timeouts itself; this is the last resort.
            timeout_seconds=timeout + 60,
            cache_scope=ProcessCacheScope.PER_SESSION if test_subsystem.force else ProcessCacheScope.SUCCESSFUL,
            level=LogLevel.DEBUG,
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    extra = await Get(Snapshot, RemovePrefix(result.output_digest, OUTPUT_DIR))
    return TestResult.from_fallible_process_result(
        process_result=result,
        address=address,
        output_setting=test_subsystem.output,
        extra_output=extra,
        log_extra_output=True,
    )


def rules():
    return [*collect_rules(), *BootTestRequest.rules()]
