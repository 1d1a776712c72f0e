"""`system`: identity of the built system (/usr/lib/os-release)."""
from redox_tools.system.types import STR, option

OPTIONS = {
    "system": {
        "name": option(STR, "Pretty name in /usr/lib/os-release.", default="Redox OS"),
        "version": option(STR, "VERSION_ID in /usr/lib/os-release.", default="0.9.0"),
        "variant": option(STR, "VARIANT in /usr/lib/os-release (the profile).", default="custom", example="development"),
    }
}
