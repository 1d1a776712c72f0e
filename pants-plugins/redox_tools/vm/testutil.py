"""Helpers shared by the vm tests (not used by the tools)."""
from __future__ import annotations

import os
import shutil
from typing import List

QEMU = shutil.which("qemu-system-x86_64")
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
HAVE_QEMU = bool(QEMU and shutil.which("qemu-img") and os.path.isfile(OVMF_CODE)
                 and os.path.isfile(OVMF_VARS))

# The deadline (seconds) of anything a test needs to happen: a milestone it must reach, a whole
# boot, a socket appearing. OVMF under TCG reaches its boot manager in a few seconds on an idle
# machine, but several VMs on a loaded 2-core machine can take minutes, so a test never depends
# on being fast; it stays below the targets' Pants timeout (300 s), the real guard, so a hang
# still fails with the harness's own message. Short deadlines remain only where a test wants
# one to expire (e.g. a milestone that never comes).
PATIENT = 200


def pids_mentioning(marker: str) -> List[int]:
    """Live processes whose command line contains `marker` (e.g. a test's work dir)."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != b"Z":
            found.append(int(entry))
    return found
