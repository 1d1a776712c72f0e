"""The declared options, one file per group. Each group module has `OPTIONS` (a nested dict whose
leaves are `Option`s) and may have `CHECKS` (functions run on the evaluated configuration that
raise `EvalError` naming the option and the modules that set it)."""
from __future__ import annotations

import os
from typing import Any, Dict, List

from redox_tools.system.evaluator import Check, OptionTree, all_options
from redox_tools.system.options import (
    assertions,
    boot,
    environment,
    files,
    filesystem,
    graphics,
    hardware,
    networking,
    security,
    services,
    system,
    time,
    users,
    virtualisation,
)
from redox_tools.system.types import Option

GROUPS = (
    assertions, boot, environment, files, filesystem, graphics, hardware, networking, security, services,
    system, time, users, virtualisation,
)
_REPO_PREFIX = "pants-plugins/redox_tools/system/options"


def _declare(tree: Dict[str, Any], declared_in: str) -> None:
    for node in tree.values():
        if isinstance(node, Option):
            node.declared_in = declared_in
            _declare_type(node.type, declared_in)
        else:
            _declare(node, declared_in)


def _declare_type(t: Any, declared_in: str) -> None:
    inner = getattr(t, "element", None) or getattr(t, "inner", None)
    if inner is not None:
        _declare_type(inner, declared_in)
    opts = getattr(t, "options", None)
    if isinstance(opts, dict):
        _declare(opts, declared_in)


def option_tree() -> OptionTree:
    tree: OptionTree = {}
    for group in GROUPS:
        declared_in = f"{_REPO_PREFIX}/{os.path.basename(group.__file__ or group.__name__)}"
        _declare(group.OPTIONS, declared_in)
        for key, node in group.OPTIONS.items():
            if key in tree:
                raise RuntimeError(f"option group {key} declared twice ({declared_in})")
            tree[key] = node
    for path, opt in all_options(tree):
        opt.path = path
    return tree


def checks() -> List[Check]:
    out: List[Check] = []
    for group in GROUPS:
        out += list(getattr(group, "CHECKS", ()))
    return out
