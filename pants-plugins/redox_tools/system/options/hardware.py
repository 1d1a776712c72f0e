"""`hardware`: which drivers the system carries.

The driver names are upstream base's Makefile lists (../shared/data/redox-packages.toml
`[packages.base.make_variables]`): DRIVERS_BINS (rootfs, /usr/lib/drivers, started by
pcid-spawner from /usr/lib/pcid.d or by xhcid from /usr/lib/xhcid.d) and INITFS_DRIVERS_BINS
(initfs, /lib/drivers, started from /lib/pcid.d/initfs.toml). base builds all of them once;
an image leaves out the ones its `hardware.drivers` does not name (`drop_drivers`, applied to
the installed trees by `redox_tools.image.driver_filter`).
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, List

from redox_tools.system.types import BOOL, STR, either, enum, list_of, option

ROOTFS_DRIVERS = (
    "e1000d", "ihdad", "ihdgd", "ixgbed", "rtl8139d", "rtl8168d", "usbctl", "usbhidd", "usbhubd", "usbscsid",
    "virtio-netd", "xhcid", "ac97d", "sb16d", "vboxd",
)
INITFS_DRIVERS = ("nvmed", "virtio-blkd", "virtio-gpud", "ahcid", "ided")
KNOWN_DRIVERS = tuple(sorted(ROOTFS_DRIVERS + INITFS_DRIVERS))
PRESETS: Dict[str, tuple] = {
    "all": KNOWN_DRIVERS,
    # A VM with virtio devices only (QEMU -device virtio-*-pci, Cloud Hypervisor): disk, NIC, GPU.
    "virtio-only": ("virtio-blkd", "virtio-gpud", "virtio-netd"),
}

OPTIONS = {
    "hardware": {
        "drivers": option(
            either(enum(*PRESETS), list_of(STR, unique=True)),
            f"""Which of base's drivers go into the image: `all` (upstream's set), `virtio-only`
            ({', '.join(PRESETS['virtio-only'])}: the cloud profile) or a list of driver names
            ({', '.join(KNOWN_DRIVERS)}). The others are left out of the rootfs and the initfs,
            programs and pcid/xhcid config entries alike; the driver builds stay shared.""",
            default="all",
            example=["virtio-blkd", "virtio-netd", "e1000d", "ahcid"],
        ),
        "audio": option(BOOL, "Start the audio daemon before the desktop (20_audiod.service).", default=False),
    }
}


def chosen_drivers(value: Any) -> List[str]:
    """The driver names `hardware.drivers` keeps (a preset expanded), sorted."""
    return sorted(PRESETS[value]) if isinstance(value, str) else sorted(set(value))


def drop_drivers(config: Dict[str, Any]) -> List[str]:
    """The known drivers an evaluated configuration leaves out, sorted."""
    return sorted(set(KNOWN_DRIVERS) - set(chosen_drivers(config["hardware"]["drivers"])))


def _check_drivers(ev: Any, config: Dict[str, Any]) -> None:
    value = config["hardware"]["drivers"]
    if isinstance(value, str):
        return
    for name in value:
        if name not in KNOWN_DRIVERS:
            hint = difflib.get_close_matches(name, KNOWN_DRIVERS + tuple(PRESETS), n=1, cutoff=0.6)
            suggestion = f" (did you mean `{hint[0]}`?)" if hint else ""
            raise ev.fail(
                "hardware.drivers",
                f"unknown driver `{name}`{suggestion}; known drivers: {', '.join(KNOWN_DRIVERS)}"
                + f" (or one of the presets {', '.join(map(repr, PRESETS))} instead of a list)",
            )


CHECKS = [_check_drivers]
