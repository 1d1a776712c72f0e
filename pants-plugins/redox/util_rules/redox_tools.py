"""Run the pure tools (`redox_tools.*`) as processes.

The tools are ordinary Python in this repo (`pants-plugins/redox_tools`, resolve `redox-tools`).
Their venv is built with Pants' own PEX machinery from the module's first-party import closure
(read from that one `python_sources` target) and the resolve's lockfile, so the interpreter, the
locked requirements and the tool sources are all part of every cache key, and the same code runs
by hand as `python -m redox_tools.<module>`.

Not through `PexFromTargetsRequest`: its Python dependency inference maps every Python target of
the repository (AllTargets), so one bad BUILD file or an absolute symlink anywhere would break
every build that runs a tool. Here only the tools' own BUILD file is read.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import List, Mapping, Optional, Set, Tuple

from pants.backend.python.subsystems.setup import PythonSetup
from pants.backend.python.target_types import PythonResolveField
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_requirements import PexRequirements, Resolve
from pants.engine.addresses import Address, AddressInput
from pants.engine.fs import Digest, DigestContents, DigestSubset, PathGlobs, RemovePrefix
from pants.engine.process import Process, ProcessCacheScope
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import HydratedSources, HydrateSourcesRequest, SourcesField, WrappedTarget, WrappedTargetRequest
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
PACKAGE_MODULES = frozenset(
    {"redox_tools.qcow2", "redox_tools.redoxfs", "redox_tools.sources", "redox_tools.system", "redox_tools.vm"}
)


_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]+)|import[ \t]+([^\n#]+))", re.M)


def module_closure(texts: Mapping[str, str], start: str, package: str = "redox_tools") -> List[str]:
    """Files (relative to the source root) `start` needs: its first-party imports, followed
    transitively (lazy imports inside functions included), plus every package `__init__.py`."""

    def file_of(module: str) -> Optional[str]:
        path = module.replace(".", "/")
        for cand in (path + ".py", path + "/__init__.py"):
            if cand in texts:
                return cand
        return None

    todo = [start]
    seen: Set[str] = set()
    while todo:
        f = todo.pop()
        if f in seen or f not in texts:
            continue
        seen.add(f)
        parts = f.split("/")[:-1]
        todo += [p for p in ("/".join(parts[:i]) + "/__init__.py" for i in range(1, len(parts) + 1)) if p in texts]
        for m in _IMPORT.finditer(texts[f]):
            if m.group(1):
                names = [n.strip().split(" as ")[0].strip() for n in m.group(2).strip("()").split(",")]
                mods = [m.group(1)] + [f"{m.group(1)}.{n}" for n in names if n]
            else:
                mods = [n.strip().split(" as ")[0].strip() for n in m.group(3).split(",")]
            for mod in mods:
                if mod == package or mod.startswith(package + "."):
                    found = file_of(mod)
                    if found:
                        todo.append(found)
    return sorted(seen)


@dataclass(frozen=True)
class RedoxToolsVenvRequest:
    module: str


@dataclass(frozen=True)
class RedoxToolsVenv:
    pex: VenvPex


@rule(desc="Build a redox_tools venv", level=LogLevel.DEBUG)
async def redox_tools_venv(
    request: RedoxToolsVenvRequest, subsystem: RedoxToolsSubsystem, python_setup: PythonSetup
) -> RedoxToolsVenv:
    # The venv holds only the module's own import closure, so editing one tool does not
    # invalidate the cached outputs of the others.
    origin = "[redox-tools].target"
    generator = await Get(Address, AddressInput, AddressInput.parse(subsystem.target, description_of_origin=origin))
    target = (await Get(WrappedTarget, WrappedTargetRequest(generator, description_of_origin=origin))).target
    sources = await Get(HydratedSources, HydrateSourcesRequest(target[SourcesField]))
    root = subsystem.source_root.strip("/")
    contents = await Get(DigestContents, Digest, sources.snapshot.digest)
    texts = {c.path[len(root) + 1 :]: c.content.decode("utf-8", "replace") for c in contents if c.path.startswith(root + "/")}
    files = module_closure(texts, module_file(request.module))
    subset = await Get(Digest, DigestSubset(sources.snapshot.digest, PathGlobs([f"{root}/{f}" for f in files])))
    # the resolve is a field of the generated per-file targets (the generator moves it there)
    module_address = Address(
        generator.spec_path,
        target_name=generator.target_name,
        relative_file_path=os.path.relpath(f"{root}/{module_file(request.module)}", generator.spec_path),
    )
    module_target = (await Get(WrappedTarget, WrappedTargetRequest(module_address, description_of_origin=origin))).target
    resolve = module_target[PythonResolveField].normalized_value(python_setup)
    constraints = python_setup.resolves_to_interpreter_constraints.get(resolve, python_setup.interpreter_constraints)
    pex = await Get(
        VenvPex,
        PexRequest(
            output_filename=f"{request.module}.pex",
            internal_only=True,
            requirements=PexRequirements(from_superset=Resolve(resolve, use_entire_lockfile=True)),
            interpreter_constraints=InterpreterConstraints(constraints),
            sources=await Get(Digest, RemovePrefix(subset, root)),
            description=f"venv for {request.module}",
        ),
    )
    return RedoxToolsVenv(pex)


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
