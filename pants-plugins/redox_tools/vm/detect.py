"""Which hypervisor to use, and why (one human line).

Rule (DESIGN.md "Runners and tests"): Cloud Hypervisor when its binary, its firmware and
real KVM are present; else QEMU+KVM; else QEMU+TCG.

"Real KVM" = `/dev/kvm` opens read-write AND the CPU flags show `vmx` or `svm`. A `/dev/kvm`
without those flags is a software nested-virtualisation module that OVMF cannot run on
(environment.md "VMs").

Every probe takes its paths/environment as arguments so tests inject facts.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Tuple

CH_BINARY = "cloud-hypervisor"
CH_FIRMWARE_NAMES = ("CLOUDHV.fd", "hypervisor-fw")
CH_FIRMWARE_DIRS = (
    "/usr/share/cloud-hypervisor",
    "/usr/lib/cloud-hypervisor",
    "/usr/local/share/cloud-hypervisor",
    "/usr/share/cloud-hypervisor/firmware",
    "/usr/share/edk2/cloudhv",
)


@dataclass(frozen=True)
class Choice:
    kind: str  # "cloud-hypervisor" | "qemu"
    accel: str  # "kvm" | "tcg"
    reason: str  # one line, e.g. "using QEMU+TCG: cloud-hypervisor not found on PATH; ..."
    binary: Optional[str] = None  # cloud-hypervisor binary when kind == "cloud-hypervisor"
    firmware: Optional[str] = None  # its firmware


def _cpu_flags(cpuinfo_text: str) -> set:
    flags: set = set()
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def real_kvm(
    kvm_path: str = "/dev/kvm",
    cpuinfo_path: str = "/proc/cpuinfo",
    opener: Optional[Callable[[str], None]] = None,
) -> Tuple[bool, str]:
    """(usable, reason). `reason` is a short phrase such as "/dev/kvm has no vmx/svm"."""
    if not os.path.exists(kvm_path):
        return False, f"{kvm_path} does not exist"
    try:
        if opener is not None:
            opener(kvm_path)
        else:
            fd = os.open(kvm_path, os.O_RDWR | os.O_CLOEXEC)
            os.close(fd)
    except OSError as e:
        return False, f"{kvm_path} cannot be opened read-write ({e.strerror or e})"
    try:
        with open(cpuinfo_path, "r", encoding="utf-8", errors="replace") as f:
            flags = _cpu_flags(f.read())
    except OSError as e:
        return False, f"cannot read {cpuinfo_path} ({e.strerror or e})"
    if "vmx" in flags or "svm" in flags:
        return True, f"{kvm_path} is usable and the CPU has {'vmx' if 'vmx' in flags else 'svm'}"
    return False, f"{kvm_path} has no vmx/svm (CPU flags lack hardware virtualisation)"


def find_cloud_hypervisor(
    binary: Optional[str] = None,
    firmware: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    firmware_dirs: Sequence[str] = CH_FIRMWARE_DIRS,
) -> Tuple[Optional[str], Optional[str], str]:
    """(binary path or None, firmware path or None, reason phrase when something is missing).

    `binary`/`firmware` are explicit options; otherwise `CH_BINARY`/`CH_FIRMWARE` from the
    environment, then `cloud-hypervisor` on PATH and `CLOUDHV.fd`/`hypervisor-fw` in the
    usual install directories.
    """
    env = os.environ if environ is None else environ
    missing = []
    bin_path: Optional[str] = None
    explicit_bin = binary or env.get("CH_BINARY") or None
    if explicit_bin:
        if os.path.isfile(explicit_bin) and os.access(explicit_bin, os.X_OK):
            bin_path = explicit_bin
        else:
            missing.append(f"cloud-hypervisor binary {explicit_bin} is not an executable file")
    else:
        bin_path = shutil.which(CH_BINARY, path=env.get("PATH", os.defpath))
        if bin_path is None:
            missing.append("cloud-hypervisor not found on PATH")
    fw_path: Optional[str] = None
    explicit_fw = firmware or env.get("CH_FIRMWARE") or None
    if explicit_fw:
        if os.path.isfile(explicit_fw):
            fw_path = explicit_fw
        else:
            missing.append(f"cloud-hypervisor firmware {explicit_fw} does not exist")
    else:
        for d in firmware_dirs:
            for name in CH_FIRMWARE_NAMES:
                p = os.path.join(d, name)
                if os.path.isfile(p):
                    fw_path = p
                    break
            if fw_path:
                break
        if fw_path is None:
            missing.append(f"no {'/'.join(CH_FIRMWARE_NAMES)} firmware found")
    return bin_path, fw_path, "; ".join(missing)


def choose_hypervisor(
    prefer: str = "cloud-hypervisor",
    kvm: Optional[Tuple[bool, str]] = None,
    ch: Optional[Tuple[Optional[str], Optional[str], str]] = None,
    why_not_ch: Optional[str] = None,
) -> Choice:
    """Pick the hypervisor. `kvm`/`ch` are the results of `real_kvm()` and
    `find_cloud_hypervisor()` (probed when omitted).

    prefer="cloud-hypervisor": CH if binary+firmware+real KVM, else QEMU+KVM, else QEMU+TCG.
    prefer="qemu": QEMU (+KVM when real, else TCG); CH is not considered. `why_not_ch` says
    why (e.g. "isa-debug-exit needs QEMU") and is put in the reason line.
    """
    if prefer not in ("cloud-hypervisor", "qemu"):
        raise ValueError(f"prefer must be 'cloud-hypervisor' or 'qemu', got {prefer!r}")
    kvm_ok, kvm_reason = kvm if kvm is not None else real_kvm()
    reasons = []
    if prefer == "cloud-hypervisor":
        bin_path, fw_path, ch_missing = ch if ch is not None else find_cloud_hypervisor()
        if bin_path and fw_path and kvm_ok:
            return Choice(
                "cloud-hypervisor",
                "kvm",
                f"using Cloud Hypervisor: {bin_path} with firmware {fw_path}; {kvm_reason}",
                bin_path,
                fw_path,
            )
        if ch_missing:
            reasons.append(ch_missing)
        elif not kvm_ok:
            reasons.append("cloud-hypervisor needs real KVM")
    else:
        reasons.append(why_not_ch or "QEMU requested")
    if kvm_ok:
        reasons.append(kvm_reason)
        return Choice("qemu", "kvm", "using QEMU+KVM: " + "; ".join(reasons))
    reasons.append(kvm_reason)
    return Choice("qemu", "tcg", "using QEMU+TCG: " + "; ".join(reasons))
