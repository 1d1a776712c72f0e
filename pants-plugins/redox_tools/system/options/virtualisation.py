"""`virtualisation`: defaults for the VM runners (`redox_vm`) and boot tests of this system."""
from __future__ import annotations

from typing import Any, Dict

from redox_tools.system.options.hardware import chosen_drivers
from redox_tools.system.types import STR, Int, enum, option

# QEMU NIC model -> the Redox driver that runs it
NIC_DRIVERS = {"e1000": "e1000d", "rtl8139": "rtl8139d", "virtio-net-pci": "virtio-netd"}

OPTIONS = {
    "virtualisation": {
        "hypervisor": option(enum("auto", "cloud-hypervisor", "qemu"), "Hypervisor for runners.", default="auto"),
        "cpus": option(Int(1, 255), "vCPU count.", default=4),
        "memory": option(STR, "Guest RAM (`2048M`, `2G`).", default="2048M"),
        "network": option(enum("none", "user", "tap"), "VM network: none, QEMU user-mode NAT, or a host TAP.", default="none"),
        "tap": option(STR, "Host TAP device for network = tap.", default="tap0"),
        "nic_model": option(
            enum(*NIC_DRIVERS),
            """QEMU's network device (Cloud Hypervisor's is always virtio-net): `e1000` (e1000d),
            `rtl8139` (rtl8139d) or `virtio-net-pci` (virtio-netd). Its driver must be among
            `hardware.drivers` when the VM has a network.""",
            default="e1000",
        ),
    }
}


def _check_nic_driver(ev: Any, config: Dict[str, Any]) -> None:
    virt = config["virtualisation"]
    if virt["network"] == "none":
        return
    driver = NIC_DRIVERS[virt["nic_model"]]
    if driver in chosen_drivers(config["hardware"]["drivers"]):
        return
    by = ev.modules_setting("hardware.drivers")
    raise ev.fail(
        "virtualisation.nic_model",
        f"the VM's NIC `{virt['nic_model']}` (network `{virt['network']}`) needs the driver {driver}, which "
        f"`hardware.drivers`{' (set in ' + ', '.join(by) + ')' if by else ''} leaves out; set "
        f"virtualisation.nic_model to one whose driver is there "
        f"({', '.join(m for m, d in NIC_DRIVERS.items() if d in chosen_drivers(config['hardware']['drivers'])) or 'none is'})"
        f" or add {driver}",
    )


CHECKS = [_check_nic_driver]
