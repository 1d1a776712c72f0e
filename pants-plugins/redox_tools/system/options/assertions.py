"""`assertions` and `warnings`: checks a module states about the final configuration."""
from typing import Any

from redox_tools.system.types import STR, OptionType, Str, list_of, option, sub


class Condition(OptionType):
    """A bool or an option expression (see evaluator.py): `"networking.mode == static"`."""

    name = "condition"

    def check(self, value: Any, where: str) -> Any:
        return value


OPTIONS = {
    "assertions": option(
        list_of(sub("assertion", condition=option(Condition(), "Must hold."), message=option(Str(), "Said when it does not."))),
        """Conditions on the final configuration; a false one stops the build with its message
        and the module that stated it.""",
        default=[],
        example=[{"condition": "networking.mode != none", "message": "this system needs a network"}],
    ),
    "warnings": option(list_of(STR), "Messages printed when the system is evaluated.", default=[]),
}
