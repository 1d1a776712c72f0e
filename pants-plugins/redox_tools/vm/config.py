"""What a VM looks like (`VmSpec`) and the environment knobs that tune it.

Knobs (read by `apply_env` before anything starts; a bad value is a `VmConfigError` that
names the variable and the value):

* `CH_CPUS`       — vCPU count, default 4;
* `CH_MEMORY`     — RAM, default 2048 MiB; `2048`, `2048M`, `2048MiB`, `2G`, `2GiB`;
* `CH_HUGEPAGES`  — back RAM with hugetlbfs pages (1/0/true/false/yes/no/on/off);
* `CH_DIRECT_IO`  — open the disk with O_DIRECT (QEMU `cache=none,aio=native`, CH `direct=on`).

The names come from the Cloud Hypervisor runner; they apply to QEMU as well.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from redox_tools.errors import ToolError

DEFAULT_CPUS = 4
DEFAULT_MEMORY_MIB = 2048
# Below this OVMF and Redox's bootloader cannot start: the guest dies (and with -no-reboot QEMU
# reports a plain exit), so it is refused before anything runs.
MIN_MEMORY_MIB = 128
NETWORK_KINDS = ("none", "user", "tap")

# Longest path a unix socket accepts (sun_path is 108 bytes including the NUL).
UNIX_PATH_MAX = 107


class VmConfigError(ToolError):
    """A VM setting that cannot work (bad knob value, impossible combination)."""


@dataclass(frozen=True)
class VmSpec:
    """Everything needed to start one VM. Paths are host paths.

    `image` is never opened writable: QEMU boots a qcow2 overlay in `work_dir`, Cloud
    Hypervisor gets the image read-only (`readonly=on`).
    """

    image: str
    work_dir: str
    firmware_code: str = "/usr/share/OVMF/OVMF_CODE_4M.fd"
    firmware_vars: str = "/usr/share/OVMF/OVMF_VARS_4M.fd"  # template, copied per VM
    ch_firmware: Optional[str] = None  # CLOUDHV.fd / hypervisor-fw for Cloud Hypervisor
    image_format: str = "raw"
    cpus: int = DEFAULT_CPUS
    memory_mib: int = DEFAULT_MEMORY_MIB
    hugepages: bool = False
    direct_io: bool = False
    graphical: bool = False
    # A display device without a window (QEMU `-vga std -display none`): the firmware gets a
    # GOP framebuffer (Redox's graphical drivers run) and QMP `screendump` can read it.
    headless_display: bool = False
    serial_stdio: bool = False  # interactive: serial on the terminal (log still kept)
    # FIFOs `<serial_pipe>.in`/`.out` the harness created: QEMU's serial console uses them
    # (logging to `serial_log_path` all the same) so the harness can type (serial replies).
    serial_pipe: Optional[str] = None
    network: str = "none"
    tap_name: Optional[str] = None
    nic_model: str = "e1000"  # QEMU NIC; Redox drives e1000, rtl8139/8168 and virtio-net
    forwards: Tuple[Tuple[int, int], ...] = ()  # (host_port, guest_port), TCP, 127.0.0.1 only
    serial_log: Optional[str] = None  # default: <work_dir>/serial.log
    control_socket: Optional[str] = None  # QMP or CH API socket; default <work_dir>/control.sock
    debug_exit: bool = False  # isa-debug-exit at 0xf4 (QEMU only)
    balloon: bool = False  # virtio-balloon device (QEMU), needed for resize-memory
    extra_args: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def serial_log_path(self) -> str:
        return self.serial_log or os.path.join(self.work_dir, "serial.log")

    @property
    def control_socket_path(self) -> str:
        return self.control_socket or os.path.join(self.work_dir, "control.sock")

    @property
    def overlay_path(self) -> str:
        return os.path.join(self.work_dir, "disk-overlay.qcow2")

    @property
    def vars_copy_path(self) -> str:
        return os.path.join(self.work_dir, "OVMF_VARS.fd")

    def validate(self) -> None:
        """Raise `VmConfigError` for settings no hypervisor can honour."""
        if self.cpus < 1 or self.cpus > 255:
            raise VmConfigError(f"cpus must be 1..255, got {self.cpus}")
        if self.memory_mib < MIN_MEMORY_MIB:
            raise VmConfigError(f"memory must be at least {MIN_MEMORY_MIB} MiB (firmware and bootloader), got {self.memory_mib} MiB")
        if self.network not in NETWORK_KINDS:
            raise VmConfigError(
                f"network must be one of {', '.join(NETWORK_KINDS)}, got {self.network!r}"
            )
        if self.network == "tap" and not self.tap_name:
            raise VmConfigError("network 'tap' needs a tap device name")
        if self.forwards and self.network != "user":
            raise VmConfigError(
                "port forwards need user-mode networking (network 'user'), "
                f"network is {self.network!r}"
            )
        for host, guest in self.forwards:
            for what, port in (("host", host), ("guest", guest)):
                if not isinstance(port, int) or not 1 <= port <= 65535:
                    raise VmConfigError(f"forward {host}:{guest}: {what} port must be 1..65535")
        if self.image_format not in ("raw", "qcow2"):
            raise VmConfigError(f"image format must be raw or qcow2, got {self.image_format!r}")
        if self.serial_pipe and self.serial_stdio:
            raise VmConfigError("the serial console is either on the terminal or on a pipe, not both")
        sock = self.control_socket_path
        if len(os.fsencode(sock)) > UNIX_PATH_MAX:
            raise VmConfigError(
                f"control socket path is {len(os.fsencode(sock))} bytes, a unix socket allows "
                f"{UNIX_PATH_MAX}: {sock} (use a shorter --socket/work dir)"
            )


def parse_forward(text: str) -> Tuple[int, int]:
    """`HOST:GUEST` (or a single `PORT` for both) → (host, guest)."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            host = guest = int(parts[0])
        elif len(parts) == 2:
            host, guest = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise VmConfigError(f"forward {text!r}: expected HOST_PORT:GUEST_PORT") from None
    for port in (host, guest):
        if not 1 <= port <= 65535:
            raise VmConfigError(f"forward {text!r}: ports must be 1..65535")
    return host, guest


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_MEMORY_RE = re.compile(r"^\s*([0-9]+)\s*(|m|mb|mib|g|gb|gib)\s*$", re.IGNORECASE)


def parse_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise VmConfigError(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no)")


def parse_memory_mib(name: str, value: str) -> int:
    m = _MEMORY_RE.match(value)
    if not m:
        raise VmConfigError(
            f"{name}={value!r} is not a memory size (use MiB like 2048 or 2048M, or 2G)"
        )
    n = int(m.group(1))
    unit = m.group(2).lower()
    mib = n * 1024 if unit.startswith("g") else n
    if mib < MIN_MEMORY_MIB:
        raise VmConfigError(f"{name}={value!r}: guest memory must be at least {MIN_MEMORY_MIB} MiB (firmware and bootloader)")
    return mib


def parse_cpus(name: str, value: str) -> int:
    v = value.strip()
    if not re.fullmatch(r"[0-9]+", v) or not 1 <= int(v) <= 255:  # isdigit() takes "²"; int() not
        raise VmConfigError(f"{name}={value!r} is not a vCPU count (1..255)")
    return int(v)


def apply_env(spec: VmSpec, environ: Optional[Mapping[str, str]] = None) -> VmSpec:
    """Return `spec` with the CH_* knobs from `environ` (default `os.environ`) applied.

    An unset or empty variable leaves the spec's value alone.
    """
    env = os.environ if environ is None else environ
    changes: Dict[str, Any] = {}
    v = env.get("CH_CPUS", "")
    if v.strip():
        changes["cpus"] = parse_cpus("CH_CPUS", v)
    v = env.get("CH_MEMORY", "")
    if v.strip():
        changes["memory_mib"] = parse_memory_mib("CH_MEMORY", v)
    v = env.get("CH_HUGEPAGES", "")
    if v.strip():
        changes["hugepages"] = parse_bool("CH_HUGEPAGES", v)
    v = env.get("CH_DIRECT_IO", "")
    if v.strip():
        changes["direct_io"] = parse_bool("CH_DIRECT_IO", v)
    return dataclasses.replace(spec, **changes) if changes else spec

