"""`time`: the time zone."""
from redox_tools.system.types import STR, option

OPTIONS = {
    "time": {
        "timezone": option(STR, "Time zone name, exported to every unit as TZ (/etc/environment.d).", default="UTC"),
    }
}
