"""Run the pure tools (`redox_tools.*`) as processes.

The tools are ordinary Python in this repo (`pants-plugins/redox_tools`, resolve `redox-tools`).
Their venv is built from that target's transitive closure with Pants' own PEX machinery, so the
interpreter, the locked requirements and the tool sources are all part of every cache key, and
the same code runs by hand as `python -m redox_tools.<module>`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import Digest
from pants.engine.process import Process, ProcessCacheScope
from pants.engine.rules import Get, collect_rules, rule
from pants.option.option_types import StrOption
from pants.option.subsystem import Subsystem
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel


class RedoxToolsSubsystem(Subsystem):
    options_scope = "redox-tools"
    help = "The pure-Python tools (format writers, manifests, VM control) the redox rules run."

    source_root = StrOption(
        default="pants-plugins",
        help="Source root holding the `redox_tools` package.",
    )
    target = StrOption(
        default="pants-plugins/redox_tools:redox_tools",
        help="The `python_sources` target that owns the `redox_tools` files.",
    )


def module_file(module: str) -> str:
    """The source file of a runnable module: `a.b` -> `a/b.py`, packages -> `a/b/__main__.py`."""
    return module.replace(".", "/") + ("/__main__.py" if module in PACKAGE_MODULES else ".py")


# Tool modules that are packages run through their __main__.
PACKAGE_MODULES = frozenset({"redox_tools.redoxfs", "redox_tools.sources", "redox_tools.vm"})


@dataclass(frozen=True)
class RedoxToolsVenvRequest:
    module: str


@dataclass(frozen=True)
class RedoxToolsVenv:
    pex: VenvPex


@rule(desc="Build a redox_tools venv", level=LogLevel.DEBUG)
async def redox_tools_venv(request: RedoxToolsVenvRequest, subsystem: RedoxToolsSubsystem) -> RedoxToolsVenv:
    # The venv holds only the module's own transitive closure, so editing one tool does not
    # invalidate the cached outputs of the others.
    generator = await Get(
        Address, AddressInput, AddressInput.parse(subsystem.target, description_of_origin="[redox-tools].target")
    )
    path = f"{subsystem.source_root}/{module_file(request.module)}"
    address = Address(
        generator.spec_path,
        target_name=generator.target_name,
        relative_file_path=os.path.relpath(path, generator.spec_path),
    )
    pex_request = await Get(
        PexRequest,
        PexFromTargetsRequest(
            [address],
            output_filename=f"{request.module}.pex",
            internal_only=True,
            description=f"venv for {request.module}",
        ),
    )
    return RedoxToolsVenv(await Get(VenvPex, PexRequest, pex_request))


@dataclass(frozen=True)
class RedoxToolProcess:
    """Run `python -m <module> <args...>` with the tools' venv."""

    module: str
    args: Tuple[str, ...]
    description: str
    input_digest: Optional[Digest] = None
    output_files: Tuple[str, ...] = ()
    output_directories: Tuple[str, ...] = ()
    env: FrozenDict[str, str] = FrozenDict()
    timeout_seconds: Optional[int] = None
    cache_scope: ProcessCacheScope = ProcessCacheScope.SUCCESSFUL
    level: LogLevel = LogLevel.INFO


@rule
async def redox_tool_process(request: RedoxToolProcess) -> Process:
    venv = await Get(RedoxToolsVenv, RedoxToolsVenvRequest(request.module))
    return await Get(
        Process,
        VenvPexProcess(
            venv.pex,
            argv=("-m", request.module, *request.args),
            description=request.description,
            input_digest=request.input_digest,
            output_files=request.output_files or None,
            output_directories=request.output_directories or None,
            extra_env=request.env or None,
            timeout_seconds=request.timeout_seconds,
            cache_scope=request.cache_scope,
            level=request.level,
        ),
    )


def rules():
    return [*collect_rules(), *RedoxToolsSubsystem.rules()]
