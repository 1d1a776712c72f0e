"""Running a package's build driver (`redox_tools.builders.cargo_build`, `redox_tools.builders.c_build`) with the
toolchain, and turning its `__staged/` output into the package's `StagedTree`.

Shared by every package kind so that caching (the toolchain fingerprint is part of the process
key, its digest mounted read-only) and error reporting (one message naming the target) are the
same everywhere.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, FileContent, MergeDigests, RemovePrefix
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from redox.util_rules.redox_tools import RedoxToolProcess
from redox.util_rules.staged_tree import StagedTree
from redox.util_rules.toolchain import RedoxToolchain

SPEC_FILE = "__build_spec.json"
OUT_DIR = "__staged"


class PackageBuildError(Exception):
    """A package failed to build; the message names the target and the cause."""


def failure_message(result: FallibleProcessResult) -> str:
    """The tool's stderr without its `error: ` prefixes (Pants adds its own framing)."""
    err = result.stderr.decode(errors="replace").strip()
    lines = [ln[len("error: ") :] if ln.startswith("error: ") else ln for ln in err.splitlines()]
    return "\n".join(lines) or f"build failed with exit code {result.exit_code}"


@dataclass(frozen=True)
class PackageBuildRequest:
    address: Address
    module: str  # the driver, run as `python -m <module> __build_spec.json`
    spec_json: str  # the driver's spec; its `out_dir` must be OUT_DIR
    input_digest: Digest
    toolchain: RedoxToolchain
    installed: Tuple[str, ...]  # image paths the package installs (from its `install` field)
    description: str
    # Read-only inputs mounted at these sandbox paths (e.g. the prebuilt std sysroot).
    immutable_inputs: FrozenDict[str, Digest] = FrozenDict()

    @classmethod
    def create(
        cls,
        address: Address,
        module: str,
        spec: Dict[str, Any],
        input_digest: Digest,
        toolchain: RedoxToolchain,
        install: Dict[str, str],
        description: str,
        immutable_inputs: Optional[Dict[str, Digest]] = None,
    ) -> "PackageBuildRequest":
        spec = {**spec, "out_dir": OUT_DIR}
        installed = tuple(sorted(v.lstrip("/") for v in install.values()))
        return cls(address, module, json.dumps(spec, sort_keys=True, indent=1), input_digest, toolchain, installed,
                   description, FrozenDict(immutable_inputs or {}))


@rule(desc="Build a Redox package", level=LogLevel.DEBUG)
async def build_package(request: PackageBuildRequest) -> StagedTree:
    spec_digest = await Get(Digest, CreateDigest([FileContent(SPEC_FILE, request.spec_json.encode())]))
    process = await Get(
        Process,
        RedoxToolProcess(
            module=request.module,
            args=(SPEC_FILE,),
            description=request.description,
            input_digest=await Get(Digest, MergeDigests([request.input_digest, spec_digest])),
            output_directories=(OUT_DIR,),
            # The toolchain's fingerprint is part of the process key even for host-path tools.
            env=FrozenDict({"REDOX_TOOLCHAIN_FINGERPRINT": request.toolchain.fingerprint}),
        ),
    )
    process = dataclasses.replace(
        process,
        immutable_input_digests=FrozenDict(
            {
                **process.immutable_input_digests,
                **request.toolchain.immutable_input_digests,
                **request.immutable_inputs,
            }
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise PackageBuildError(failure_message(result))
    staged = await Get(Digest, RemovePrefix(result.output_digest, OUT_DIR))
    return StagedTree(request.address, staged, request.installed)


def rules():
    return collect_rules()
