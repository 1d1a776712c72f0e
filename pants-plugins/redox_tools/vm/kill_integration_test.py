"""The VM never outlives the harness: Ctrl-C, SIGTERM and SIGKILL of `boottest`."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from redox_tools.vm.testutil import HAVE_QEMU, PATIENT, pids_mentioning

pytestmark = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64/qemu-img/OVMF not installed")
PLUGINS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_for(pred, proc=None):
    """Poll until `pred()` holds or `proc` exits (no wall-clock limit: Pants' test timeout guards)."""
    while proc is None or proc.poll() is None:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 130), (signal.SIGKILL, -9)])
def test_signal_kills_vm(sig, code):
    root = tempfile.mkdtemp(prefix="vmkill-", dir="/tmp")
    img = os.path.join(root, "e.img")
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    work = os.path.join(root, "w")
    p = subprocess.Popen(
        [sys.executable, "-m", "redox_tools.vm", "boottest", "--image", img, "--hypervisor", "qemu",
         "--cpus", "1", "--memory", "128", "--work-dir", work, "--milestone", f"never=NEVER@{PATIENT}",
         "--timeout", str(PATIENT)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=PLUGINS),
    )
    try:
        # qemu creates the serial log as it starts
        assert wait_for(lambda: os.path.exists(os.path.join(work, "serial.log")), p), "VM never started"
        p.send_signal(sig)
        assert p.wait() == code
        assert wait_for(lambda: pids_mentioning(work) == []), "VM survived"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
        for pid in pids_mentioning(work):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
