"""QEMU command lines for a `VmSpec`, and the per-VM files they need.

The built image is never modified. We boot a **qcow2 overlay** whose backing file is the
image (`qemu-img create -f qcow2 -b IMG -F raw overlay`), not `-drive ...,snapshot=on`:

* QEMU opens a backing file read-only, so the image may even be a read-only file (Pants
  outputs are);
* the overlay is a named block node (`disk0-node`) that the QMP `snapshot-save` job can put
  the VM state in. With the raw OVMF VARS pflash, `savevm` refuses ("Device 'pflash1' is
  writable but does not support snapshots"), while `snapshot-save` with
  `devices=[disk0-node]` works (environment.md "VMs", checked here with QEMU 7.2);
* the guest's writes stay in `<work_dir>/disk-overlay.qcow2` for a post-mortem.

`qemu_argv` is pure; `prepare_qemu_files` creates the overlay and the VARS copy.
"""
from __future__ import annotations

import os
import subprocess
from typing import List

from redox_tools.vm.config import VmConfigError, VmSpec
from redox_tools.safeio import copy_new

QEMU_BINARY = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
DISK_ID = "disk0"
DISK_NODE = "disk0-node"
DEBUG_EXIT_IOBASE = 0xF4
# isa-debug-exit: the guest writes V to 0xf4, QEMU exits with (V << 1) | 1.
DEBUG_EXIT_SUCCESS = (0x19 << 1) | 1  # 51, what Redox's redoxer treats as success
DEBUG_EXIT_FAILURE = (0x1A << 1) | 1  # 53


def _q(path: str) -> str:
    """A path inside a QEMU `key=value,...` option: commas are doubled."""
    return path.replace(",", ",,")


def qemu_argv(spec: VmSpec, accel: str = "tcg", binary: str = QEMU_BINARY) -> List[str]:
    """The full QEMU command line for `spec` (accel "tcg" or "kvm")."""
    spec.validate()
    if accel not in ("tcg", "kvm"):
        raise VmConfigError(f"accel must be tcg or kvm, got {accel!r}")
    mem = f"{spec.memory_mib}M"
    machine = "q35"
    argv = [binary, "-nodefaults", "-no-user-config", "-name", "redox"]
    if spec.hugepages:
        argv += ["-object", f"memory-backend-memfd,id=mem,size={mem},hugetlb=on"]
        machine += ",memory-backend=mem"
    argv += ["-machine", machine]
    argv += ["-accel", accel, "-cpu", "max" if accel == "tcg" else "host"]
    argv += ["-smp", str(spec.cpus), "-m", mem]
    # Firmware: CODE read-only, a per-VM copy of VARS.
    argv += [
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_q(spec.firmware_code)}",
        "-drive", f"if=pflash,format=raw,unit=1,file={_q(spec.vars_copy_path)}",
    ]
    # Disk: the qcow2 overlay (backed read-only by the image); bootindex=0 so OVMF boots it
    # before trying the NIC.
    drive = f"file={_q(spec.overlay_path)},format=qcow2,if=none,id={DISK_ID},node-name={DISK_NODE}"
    if spec.direct_io:
        drive += ",cache=none,aio=native"
    argv += ["-drive", drive, "-device", f"virtio-blk-pci,drive={DISK_ID},bootindex=0"]
    # Display: headless has no GOP, so the bootloader shows no mode menu (disk-image.md §10).
    # headless_display: a GOP framebuffer nobody watches but QMP `screendump` can read.
    if spec.graphical:
        argv += ["-vga", "std", "-display", "gtk"]
    elif spec.headless_display:
        argv += ["-vga", "std", "-display", "none"]
    else:
        argv += ["-vga", "none", "-display", "none"]
    # Serial: always logged to a file; on the terminal as well when interactive; or on the
    # harness's FIFOs `<serial_pipe>.in`/`.out` (created before QEMU starts) so the harness can
    # answer prompts (serial replies, disk-image.md §10).
    log = spec.serial_log_path
    if spec.serial_stdio:
        argv += ["-chardev", f"stdio,id=ser0,signal=on,logfile={_q(log)},logappend=off"]
    elif spec.serial_pipe:
        argv += ["-chardev", f"pipe,id=ser0,path={_q(spec.serial_pipe)},logfile={_q(log)},logappend=off"]
    else:
        argv += ["-chardev", f"file,id=ser0,path={_q(log)}"]
    argv += ["-serial", "chardev:ser0", "-monitor", "none"]
    argv += ["-qmp", f"unix:{_q(spec.control_socket_path)},server=on,wait=off"]
    # Network.
    if spec.network == "user":
        netdev = "user,id=n0"
        for host, guest in spec.forwards:
            netdev += f",hostfwd=tcp:127.0.0.1:{host}-:{guest}"
        argv += ["-netdev", netdev, "-device", f"{spec.nic_model},netdev=n0"]
    elif spec.network == "tap":
        argv += [
            "-netdev", f"tap,id=n0,ifname={spec.tap_name},script=no,downscript=no",
            "-device", f"{spec.nic_model},netdev=n0",
        ]
    if spec.balloon:
        argv += ["-device", "virtio-balloon-pci,id=balloon0"]
    if spec.debug_exit:
        argv += ["-device", f"isa-debug-exit,iobase={DEBUG_EXIT_IOBASE:#x},iosize=0x04"]
    argv += ["-no-reboot"]
    argv += list(spec.extra_args)
    return argv


def prepare_qemu_files(spec: VmSpec, qemu_img: str = QEMU_IMG) -> None:
    """Create `work_dir`, the per-VM VARS copy and the qcow2 overlay over the image.

    Only reads the image (and its firmware templates).
    """
    image = os.path.abspath(spec.image)
    if not os.path.isfile(image):
        raise VmConfigError(f"disk image {spec.image} does not exist")
    for what, path in (("firmware code", spec.firmware_code), ("firmware vars", spec.firmware_vars)):
        if not os.path.isfile(path):
            raise VmConfigError(f"{what} {path} does not exist (install the ovmf package)")
    os.makedirs(spec.work_dir, exist_ok=True)
    copy_new(spec.firmware_vars, spec.vars_copy_path)  # a link left in the work dir is replaced, not followed
    for stale in (spec.overlay_path, spec.control_socket_path):
        if os.path.lexists(stale):
            os.unlink(stale)
    cmd = [
        qemu_img, "create", "-q", "-f", "qcow2",
        "-b", image, "-F", spec.image_format, spec.overlay_path,
    ]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise VmConfigError(f"{qemu_img} not found (install qemu-utils)") from None
    if r.returncode != 0:
        raise VmConfigError(
            f"qemu-img could not create an overlay over {spec.image}: {r.stderr.strip()}"
        )


# Cloud Hypervisor's command line lives in cloudhv.py; re-exported here for callers that
# build either command line from one module.
from redox_tools.vm.cloudhv import ch_argv  # noqa: E402,F401
