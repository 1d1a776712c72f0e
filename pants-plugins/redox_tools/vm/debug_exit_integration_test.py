"""Real QEMU: pass/fail from isa-debug-exit, and early failure when the VM exits.

The guest is OVMF's built-in UEFI shell running `startup.nsh` from a FAT disk; `mm 0xf4
<v> -w 1 -IO -n` writes <v> to the isa-debug-exit port (0x19 -> QEMU exits 51, 0x1a -> 53).
The shell waits 5 s before running startup.nsh, so the three VMs run concurrently.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from redox_tools.vm.boottest import run_boottest
from redox_tools.vm.config import VmSpec
from redox_tools.vm.qemu import prepare_qemu_files, qemu_argv
from redox_tools.vm.serial import Milestone
from redox_tools.vm.testutil import HAVE_QEMU, PATIENT, pids_mentioning

HAVE_FAT = bool(shutil.which("mkfs.vfat") and shutil.which("mcopy"))
pytestmark = pytest.mark.skipif(not (HAVE_QEMU and HAVE_FAT), reason="needs qemu, OVMF, mkfs.vfat, mcopy")


def fat_image(path, value):
    subprocess.run(["mkfs.vfat", "-C", path, "2048"], check=True, stdout=subprocess.DEVNULL)
    nsh = os.path.join(os.path.dirname(path), "startup.nsh")
    with open(nsh, "w", newline="") as f:
        f.write(f"echo HARNESS-STARTUP\r\nmm 0xf4 {value:#x} -w 1 -IO -n\r\necho AFTER-EXIT\r\n")
    subprocess.run(["mcopy", "-i", path, nsh, "::/startup.nsh"], check=True)
    os.chmod(path, 0o444)


def boot(root, name, value, milestones, expect_exit):
    d = os.path.join(root, name)
    os.makedirs(d)
    img = os.path.join(d, "esp.img")
    fat_image(img, value)
    spec = VmSpec(image=img, work_dir=os.path.join(d, "w"), cpus=1, memory_mib=256, debug_exit=True)
    prepare_qemu_files(spec)
    return run_boottest(qemu_argv(spec, "tcg"), spec.serial_log_path,
                        [Milestone(n, re.compile(p), t) for n, p, t in milestones],
                        expect_exit=expect_exit, timeout=PATIENT, qmp_socket=spec.control_socket_path,
                        progress=None)


def test_debug_exit_results():
    root = tempfile.mkdtemp(prefix="vmdx-", dir="/tmp")
    try:
        with ThreadPoolExecutor(3) as pool:
            ok = pool.submit(boot, root, "ok", 0x19, [("bds", "BdsDxe", PATIENT), ("nsh", "HARNESS-STARTUP", PATIENT)], 51)
            bad = pool.submit(boot, root, "bad", 0x1A, [("bds", "BdsDxe", PATIENT)], 51)
            early = pool.submit(boot, root, "early", 0x19, [("nsh", "HARNESS-STARTUP", PATIENT),
                                                             ("never", "NEVER-PRINTED", PATIENT)], None)
            ok, bad, early = ok.result(), bad.result(), early.result()
        assert ok.passed and ok.exit_code == 51, ok.message
        assert [n for n, _ in ok.reached] == ["bds", "nsh"]
        assert "AFTER-EXIT" not in ok.serial_tail  # QEMU exited at the port write
        assert not bad.passed and bad.exit_code == 53
        assert "VM exited with status 53 (guest wrote 0x1a to isa-debug-exit: failure), expected status 51" in bad.message
        assert not early.passed
        # failed when the VM died (the message says so), not at the milestone's deadline
        assert "VM exited with status 51 (guest wrote 0x19" in early.message and "before milestone 'never'" in early.message
        assert pids_mentioning(root) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
