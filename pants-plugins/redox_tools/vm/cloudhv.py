"""Cloud Hypervisor command lines for a `VmSpec` (its documented CLI).

    cloud-hypervisor --firmware CLOUDHV.fd --disk path=IMG,readonly=on[,direct=on]
        --cpus boot=N --memory size=NM[,hugepages=on] --serial tty|file=LOG
        --console off --api-socket path=SOCK [--net tap=NAME]

The image is attached `readonly=on`, so the built image is never modified; a qcow2 image (what
`./pants package` writes) is attached as it is: Cloud Hypervisor detects qcow2 itself. Cloud
Hypervisor has no user-mode networking (so no port forwards), no isa-debug-exit and no
graphical console: asking for those is a `VmConfigError` (use QEMU).
"""
from __future__ import annotations

from typing import List

from redox_tools.vm.config import VmConfigError, VmSpec


def ch_argv(spec: VmSpec, binary: str = "cloud-hypervisor") -> List[str]:
    spec.validate()
    firmware = spec.ch_firmware
    if not firmware:
        raise VmConfigError("cloud-hypervisor needs its firmware (CLOUDHV.fd or hypervisor-fw)")
    if spec.network == "user" or spec.forwards:
        raise VmConfigError(
            "cloud-hypervisor has no user-mode networking or port forwards; use a tap device or QEMU"
        )
    if spec.debug_exit:
        raise VmConfigError("cloud-hypervisor has no isa-debug-exit device; use QEMU")
    if spec.graphical:
        raise VmConfigError("cloud-hypervisor has no graphical console; use QEMU")
    if spec.headless_display:
        raise VmConfigError("cloud-hypervisor has no display device (framebuffer); use QEMU")
    disk = f"path={spec.image},readonly=on"
    if spec.direct_io:
        disk += ",direct=on"
    memory = f"size={spec.memory_mib}M"
    if spec.hugepages:
        memory += ",hugepages=on"
    serial = "tty" if spec.serial_stdio else f"file={spec.serial_log_path}"
    argv = [
        binary,
        "--firmware", firmware,
        "--disk", disk,
        "--cpus", f"boot={spec.cpus}",
        "--memory", memory,
        "--serial", serial,
        "--console", "off",
        "--api-socket", f"path={spec.control_socket_path}",
    ]
    if spec.network == "tap":
        argv += ["--net", f"tap={spec.tap_name}"]
    argv += list(spec.extra_args)
    return argv
