"""`mk_default`, `mk_force`, `mk_override`, `mk_if`, `mk_merge` for BUILD files.

They return plain JSON-able markers that the module evaluator (`redox_tools.system.evaluator`,
run as a process) reads; the format is defined there and must stay identical (tested in
system_markers_test.py).
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

MARK = "_redox"
PRIORITY_FORCE = 50
PRIORITY_DEFAULT = 1000


def mk_override(priority: int, value: Any) -> Dict[str, Any]:
    """`value` at `priority` (lower wins; plain definitions are 100)."""
    return {MARK: "override", "priority": priority, "value": value}


def mk_default(value: Any) -> Dict[str, Any]:
    """A value any plain definition replaces (priority 1000)."""
    return mk_override(PRIORITY_DEFAULT, value)


def mk_force(value: Any) -> Dict[str, Any]:
    """A value that replaces plain definitions (priority 50)."""
    return mk_override(PRIORITY_FORCE, value)


def mk_if(condition: Any, value: Any) -> Dict[str, Any]:
    """`value` only when `condition` holds: a bool, or `"opt"`, `"!opt"`, `"opt == v"`, `"opt != v"`."""
    return {MARK: "if", "condition": condition, "value": value}


def mk_merge(values: Sequence[Any]) -> Dict[str, Any]:
    """Several definitions (e.g. mk_if-guarded ones) at one place."""
    return {MARK: "merge", "values": list(values)}


BUILD_FILE_OBJECTS = {
    "mk_default": mk_default,
    "mk_force": mk_force,
    "mk_override": mk_override,
    "mk_if": mk_if,
    "mk_merge": mk_merge,
}
