"""`security`: who may use sudo."""
from redox_tools.system.types import BOOL, STR, Int, option

OPTIONS = {
    "security": {
        "sudo": {
            "enable": option(BOOL, "Create the sudo group (members may run sudo).", default=True),
            "group": option(STR, "Name of the group sudo checks.", default="sudo"),
            "gid": option(Int(0, 65535), "Its gid.", default=1),
        }
    }
}
