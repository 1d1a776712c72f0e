"""`environment`: installed packages, shell aliases, environment variables."""
from redox_tools.system.types import PACKAGE, STR, attrs_of, list_of, option

OPTIONS = {
    "environment": {
        "system_packages": option(
            list_of(PACKAGE, unique=True),
            """Package targets installed into the root filesystem (with their run-time `dependencies`);
            `:name` is relative to the module's directory.""",
            default=[],
            example=["//packages/userspace:ripgrep"],
        ),
        "shell_aliases": option(
            attrs_of(STR),
            """ion aliases (`alias NAME = "VALUE"`), written to /etc/ion/initrc and each home's
            ~/.config/ion/initrc (the file ion reads).""",
            default={},
            example={"ll": "ls -la"},
        ),
        "variables": option(
            attrs_of(STR),
            "Environment of every init unit (/etc/environment.d/50_system) and of ion (`export`).",
            default={},
            example={"EDITOR": "hx"},
        ),
    }
}
