"""The module system: NixOS-style modules -> one evaluated system configuration -> the files it
puts into the image (/etc/passwd, /etc/net/*, init units, ...).

Pure (no Pants imports); `python -m redox_tools.system --help`. The pieces:
`types.py` (option types and merging), `evaluator.py` (modules, markers, merge, errors),
`options/` (the declared options, one file per group), `generate.py` (the files).
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

from redox_tools.errors import ToolError


def load_system(data: Dict[str, Any]) -> Tuple[Any, Dict[str, Any]]:
    """Evaluate a system description `{"system", "roots", "modules"}`: (evaluator, config)."""
    from redox_tools.system.evaluator import Evaluator, EvalError, Module, collect_modules
    from redox_tools.system.options import checks, option_tree

    if not isinstance(data, dict) or not isinstance(data.get("modules"), list) or not isinstance(data.get("roots"), list):
        raise ToolError("a system description is {\"system\": NAME, \"roots\": [MODULE, ...], \"modules\": [...]}")
    modules: Dict[str, Module] = {}
    for m in data["modules"]:
        module = Module.from_json(m)
        if module.name in modules:
            raise EvalError(f"module {module.name} is given twice")
        modules[module.name] = module
    ordered = collect_modules(data["roots"], modules)
    ev = Evaluator(option_tree(), ordered, checks())
    return ev, ev.evaluate()
