"""`services`: init units (/etc/init.d, which overrides /usr/lib/init.d entries of the same name)."""
from __future__ import annotations

import re
from typing import Any, Dict

from redox_tools.system.evaluator import Evaluator
from redox_tools.system.types import BOOL, STR, Int, attrs_of, enum, list_of, null_or, option, sub

UNIT = sub(
    "unit",
    enable=option(BOOL, "Write the unit.", default=True),
    order=option(Int(0, 99), "Start order: the file is /etc/init.d/<order>_<name>[.service] (init sorts by name).", default=50),
    description=option(null_or(STR), "[unit] description.", default=None),
    requires=option(list_of(STR, unique=True), "Units started first (`requires_weak`, file names).", default=[]),
    command=option(null_or(STR), "[service] cmd (looked up in PATH).", default=None),
    args=option(list_of(STR), "[service] args.", default=[]),
    type=option(enum("notify", "oneshot", "oneshot_async"), "[service] type.", default="oneshot_async"),
    envs=option(attrs_of(STR), "[service] envs.", default={}),
    script=option(
        null_or(list_of(STR)),
        "A legacy init script instead of a service (one command per line; `nowait CMD` does not wait).",
        default=None,
    ),
)

OPTIONS = {
    "services": {
        "units": option(
            attrs_of(UNIT),
            "Init units by name; a unit with `command` becomes a .service file, one with `script` a legacy script.",
            default={},
            example={"hello": {"order": 90, "command": "echo", "args": ["hi"], "type": "oneshot"}},
        ),
    }
}

_NAME = re.compile(r"^[A-Za-z0-9_.@-]+$")


def check(ev: Evaluator, config: Dict[str, Any]) -> None:
    for name, u in config["services"]["units"].items():
        if not _NAME.match(name):
            raise ev.fail(f"services.units.{name}", "unit names may only hold letters, digits and _ . @ -")
        if u["enable"] and (u["command"] is None) == (u["script"] is None):
            raise ev.fail(f"services.units.{name}", "give exactly one of `command` (a service) or `script` (a legacy script)")


CHECKS = [check]
