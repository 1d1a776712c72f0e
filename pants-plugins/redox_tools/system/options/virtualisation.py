"""`virtualisation`: defaults for the VM runners (`redox_vm`) and boot tests of this system."""
from redox_tools.system.types import STR, Int, enum, option

OPTIONS = {
    "virtualisation": {
        "hypervisor": option(enum("auto", "cloud-hypervisor", "qemu"), "Hypervisor for runners.", default="auto"),
        "cpus": option(Int(1, 255), "vCPU count.", default=4),
        "memory": option(STR, "Guest RAM (`2048M`, `2G`).", default="2048M"),
        "network": option(enum("none", "user", "tap"), "VM network: none, QEMU user-mode NAT, or a host TAP.", default="none"),
        "tap": option(STR, "Host TAP device for network = tap.", default="tap0"),
    }
}
