"""`./pants redox-options`: the module system's options, a system's evaluated values, its /etc.

    ./pants redox-options                                   # every option: type, default, description, file
    ./pants redox-options --option=networking               # one option or group
    ./pants redox-options --system=images:selftest --option=users.users   # evaluated value + modules
    ./pants redox-options --system=images:selftest --etc    # generated files -> dist/system/<address>/

Nothing is built: only the modules are read and evaluated (works offline).
"""
from __future__ import annotations

from pants.engine.addresses import Address, AddressInput
from pants.engine.console import Console
from pants.engine.fs import Digest, DigestSubset, PathGlobs, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.option.option_types import BoolOption, StrOption

from redox.goals.system import (
    DESCRIPTION_FILE,
    OUT_DIR,
    SYSTEM_TOOL,
    EvaluatedSystem,
    EvaluatedSystemRequest,
    SystemDescription,
    SystemDescriptionRequest,
    tool_failure,
)
from redox.subsystems.image import RedoxImageSubsystem
from redox.util_rules.redox_tools import RedoxToolProcess


class RedoxOptionsSubsystem(GoalSubsystem):
    name = "redox-options"
    help = "List the module system's options, or show a redox_system's evaluated options and generated files."

    system = StrOption(default=None, help="A `redox_system` address: show its evaluated values instead of the declarations.")
    option = StrOption(default=None, help="Only this option or option group (e.g. `networking` or `users.users`).")
    etc = BoolOption(
        default=False,
        help="With --system: write the files the configuration generates (no package is built) to dist/system/<address>/.",
    )
    json = BoolOption(default=False, help="Print JSON.")


class RedoxOptions(Goal):
    subsystem_cls = RedoxOptionsSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def redox_options(
    console: Console, options: RedoxOptionsSubsystem, workspace: Workspace, image: RedoxImageSubsystem
) -> RedoxOptions:
    if not options.system:
        args = ["options", *(["--option", options.option] if options.option else []), *(["--json"] if options.json else [])]
        result = await Get(
            FallibleProcessResult, Process,
            await Get(Process, RedoxToolProcess(module=SYSTEM_TOOL, args=tuple(args), description="List the system options")),
        )
        if result.exit_code != 0:
            console.print_stderr(f"redox-options: {tool_failure(result)}")
            return RedoxOptions(exit_code=1)
        console.print_stdout(result.stdout.decode().rstrip("\n"))
        return RedoxOptions(exit_code=0)

    address = await Get(Address, AddressInput, AddressInput.parse(options.system, description_of_origin="--redox-options-system"))
    if options.etc:
        system = await Get(EvaluatedSystem, EvaluatedSystemRequest(address, image.source_date_epoch))
        dest = f"dist/system/{address.path_safe_spec}"
        tree = await Get(Digest, DigestSubset(system.digest, PathGlobs([f"{OUT_DIR}/**"])))
        workspace.write_digest(tree, path_prefix=dest)
        console.print_stdout(f"Wrote the generated files of {address} to {dest}/{OUT_DIR}/ (files/, overlay.json, config.json)")
        return RedoxOptions(exit_code=0)
    description = await Get(SystemDescription, SystemDescriptionRequest(address))
    args = ["eval", DESCRIPTION_FILE, *(["--option", options.option] if options.option else []), *(["--json"] if options.json else [])]
    result = await Get(
        FallibleProcessResult, Process,
        await Get(Process, RedoxToolProcess(module=SYSTEM_TOOL, args=tuple(args), description=f"Evaluate {address}",
                                            input_digest=description.digest)),
    )
    if result.exit_code != 0:
        console.print_stderr(f"redox-options: {address}: {tool_failure(result)}")
        return RedoxOptions(exit_code=1)
    for line in result.stderr.decode().splitlines():
        if line.startswith("warning: "):
            console.print_stderr(line)
    console.print_stdout(result.stdout.decode().rstrip("\n"))
    return RedoxOptions(exit_code=0)


def rules():
    return collect_rules()
