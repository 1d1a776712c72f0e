"""Real QEMU (TCG): QMP dev-mode control against a VM running OVMF."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import pytest

from redox_tools.vm import cli
from redox_tools.vm.config import VmSpec
from redox_tools.vm.control import ControlError, NoVmError, QmpControl, detect_kind, open_control
from redox_tools.vm.process import VmProcess
from redox_tools.vm.qemu import prepare_qemu_files, qemu_argv
from redox_tools.vm.serial import LogFollower
from redox_tools.vm.testutil import HAVE_QEMU, PATIENT, pids_mentioning

pytestmark = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64/qemu-img/OVMF not installed")


def start_vm(root, name, **kw):
    img = os.path.join(root, "empty.img")
    if not os.path.exists(img):
        with open(img, "wb") as f:
            f.truncate(1 << 20)
    spec = VmSpec(image=img, work_dir=os.path.join(root, name), cpus=2, memory_mib=256, **kw)
    prepare_qemu_files(spec)
    vm = VmProcess(qemu_argv(spec, "tcg"), stderr_path=os.path.join(root, name + ".err")).start()
    deadline = time.monotonic() + PATIENT
    while not os.path.exists(spec.control_socket_path):
        assert vm.poll() is None, vm.stderr_tail()
        assert time.monotonic() < deadline, "QMP socket never appeared"
        time.sleep(0.02)
    return spec, vm


def wait_serial(path, needle):
    """Wait for `needle` on the serial log (no wall-clock limit: Pants' test timeout guards)."""
    f = LogFollower(path)
    try:
        while needle not in f.text:
            f.read_new()
            time.sleep(0.05)
    finally:
        f.close()


def test_qmp_control_real_qemu(capsys):
    root = tempfile.mkdtemp(prefix="vmqc-", dir="/tmp")
    vms = []
    try:
        spec, vm = start_vm(root, "a", balloon=True)
        vms.append(vm)
        spec_b, vm_b = start_vm(root, "b")  # no balloon device
        vms.append(vm_b)
        sock = spec.control_socket_path
        assert detect_kind(sock) == "qemu"  # probed from the QMP greeting (no state file)
        wait_serial(spec.serial_log_path, "BdsDxe")
        with open_control(sock) as c:
            assert isinstance(c, QmpControl)
            info = c.info()
            assert info["status"] == "running" and info["cpus"] == 2 and info["memory_mib"] == 256
            assert c.pause() == {"status": "paused"}
            assert c.info()["running"] is False
            snap = c.snapshot("t1")
            assert snap["snapshot"] == "t1" and snap["status"] == "paused"
            assert c.resume() == {"status": "running"}
            out = c.resize_memory(128)
            assert out["requested_mib"] == 128  # OVMF has no balloon driver: size stays
        # The snapshot landed in the overlay, never in the image.
        import subprocess

        listing = subprocess.run(["qemu-img", "snapshot", "-U", "-l", spec.overlay_path],
                                 stdout=subprocess.PIPE, text=True, check=True).stdout
        assert "t1" in listing
        # CLI, kind probed.
        assert cli.main(["ctl", "info", "--socket", sock]) == 0
        assert json.loads(capsys.readouterr().out)["hypervisor"] == "qemu"
        with QmpControl(spec_b.control_socket_path) as c:
            with pytest.raises(ControlError, match="needs a virtio-balloon device"):
                c.resize_memory(128)
    finally:
        for v in vms:
            v.kill()
    try:
        assert pids_mentioning(root) == []
        with pytest.raises(NoVmError, match="control.sock"):
            QmpControl(spec.control_socket_path).connect()  # socket file left, nobody listening
    finally:
        shutil.rmtree(root, ignore_errors=True)
