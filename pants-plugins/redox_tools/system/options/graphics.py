"""`graphics`: the Orbital desktop."""
import re
from typing import Any

from redox_tools.system.types import BOOL, OptionType, TypeMismatch, option


class Resolution(OptionType):
    name = "resolution WIDTHxHEIGHT"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, str) or not re.match(r"^\d{3,5}x\d{3,5}$", value):
            raise TypeMismatch(f"expected a resolution like '1024x768', got {value!r}")
        return value


OPTIONS = {
    "graphics": {
        "enable": option(
            BOOL,
            """Start Orbital on VT 3 (unit 20_orbital: `nowait VT=3 orbital orblogin launcher`) and let
            the console unit wait for it instead of switching to VT 2.""",
            default=False,
        ),
        "resolution": option(
            Resolution(),
            "Preferred display mode; the graphical runners and boot tests use it for the VM's display.",
            default="1024x768",
        ),
    }
}
