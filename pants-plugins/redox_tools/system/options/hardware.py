"""`hardware`: which drivers the system is meant to carry."""
from redox_tools.system.types import BOOL, STR, either, enum, list_of, option

OPTIONS = {
    "hardware": {
        "drivers": option(
            either(enum("all", "virtio-only"), list_of(STR, unique=True)),
            """`all` (upstream's driver set), `virtio-only` (virtio-blkd, virtio-netd, virtio-gpud: the
            cloud profile) or a list of driver names. Recorded in the evaluated configuration; the
            base package build does not filter its driver list by it yet.""",
            default="all",
        ),
        "audio": option(BOOL, "Start the audio daemon before the desktop (20_audiod.service).", default=False),
    }
}
