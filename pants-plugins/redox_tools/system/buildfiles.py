"""Read `redox_module` / `redox_system` targets straight from BUILD files, without Pants.

For the tests and for looking at a system's generated files by hand (offline, no package is
built): BUILD files are Python; they are run with `redox_module`, `redox_system` and the
`mk_*` functions recording what they are given and every other name a no-op.

    python -m redox_tools.system.buildfiles images/examples:custom-system [--root REPO] > system.json
"""
from __future__ import annotations

import argparse
import builtins
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from redox_tools.errors import ToolError, run_main
from redox_tools.system.evaluator import mk_default, mk_force, mk_if, mk_merge, mk_override


class _Namespace(dict):
    def __missing__(self, key: str) -> Any:
        if hasattr(builtins, key):
            raise KeyError(key)
        return lambda *a, **k: None


def _address(spec: str, here: str) -> str:
    """`//dir:name` or `:name` (relative to `here`) -> `//dir:name`."""
    if spec.startswith(":"):
        return f"//{here}{spec}"
    if spec.startswith("//"):
        return spec
    return f"//{spec}"


def read_build_file(root: str, spec_path: str) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, Dict[str, Any]]]:
    """(modules, systems) declared in `<root>/<spec_path>/BUILD`, keyed by address."""
    path = os.path.join(root, spec_path, "BUILD")
    try:
        with open(path) as f:
            code = f.read()
    except OSError as e:
        raise ToolError(f"cannot read {path}: {e.strerror}") from None
    modules: Dict[str, Dict[str, Any]] = {}
    systems: Dict[str, Dict[str, Any]] = {}

    def redox_module(name: str, imports: Sequence[str] = (), config: Optional[Dict[str, Any]] = None, **_: Any) -> None:
        addr = f"//{spec_path}:{name}"
        modules[addr] = {
            "name": addr, "file": f"{spec_path}/BUILD", "dir": spec_path,
            "imports": [_address(i, spec_path) for i in imports], "config": json.loads(json.dumps(config or {})),
        }

    def redox_system(name: str, modules: Sequence[str] = (), config: Optional[Dict[str, Any]] = None, **_: Any) -> None:
        addr = f"//{spec_path}:{name}"
        systems[addr] = {"name": addr, "dir": spec_path, "modules": [_address(m, spec_path) for m in modules],
                         "config": json.loads(json.dumps(config or {}))}

    ns = _Namespace(
        redox_module=redox_module, redox_system=redox_system, mk_default=mk_default, mk_force=mk_force,
        mk_if=mk_if, mk_merge=mk_merge, mk_override=mk_override,
    )
    exec(compile(code, path, "exec"), {"__builtins__": __builtins__}, ns)
    return modules, systems


def system_description(root: str, address: str) -> Dict[str, Any]:
    """The `{"system", "roots", "modules"}` description of the `redox_system` at `address`,
    with every imported module read from its BUILD file."""
    address = _address(address, "")
    spec, _, _name = address[2:].partition(":")
    _, systems = read_build_file(root, spec)
    if address not in systems:
        raise ToolError(f"{address}: no redox_system of that name in {spec}/BUILD")
    sysdef = systems[address]
    modules: Dict[str, Dict[str, Any]] = {}
    read: Dict[str, Dict[str, Dict[str, Any]]] = {}
    pending: List[str] = list(sysdef["modules"])
    while pending:
        m = pending.pop()
        if m in modules:
            continue
        d = m[2:].partition(":")[0]
        if d not in read:
            read[d] = read_build_file(root, d)[0]
        if m not in read[d]:
            raise ToolError(f"{m} is not a redox_module (imported by the modules of {address})")
        modules[m] = read[d][m]
        pending += modules[m]["imports"]
    inline = {"name": address, "file": f"{spec}/BUILD", "dir": spec, "imports": sysdef["modules"], "config": sysdef["config"]}
    return {"system": address, "roots": [address], "modules": [inline, *[modules[k] for k in sorted(modules)]]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redox_tools.system.buildfiles", description=__doc__.splitlines()[0])
    parser.add_argument("system", help="address of a redox_system, e.g. images/examples:custom-system")
    parser.add_argument("--root", default=".", help="repository root")
    args = parser.parse_args(argv)
    json.dump(system_description(args.root, args.system), sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    run_main(main)
