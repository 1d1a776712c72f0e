"""Real QEMU (TCG) boot tests of the harness itself: OVMF with an empty disk."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from redox_tools.vm.boottest import run_boottest
from redox_tools.vm.config import VmSpec
from redox_tools.vm.detect import real_kvm
from redox_tools.vm.qemu import prepare_qemu_files, qemu_argv
from redox_tools.vm.serial import Milestone, parse_replies, redox_failures
from redox_tools.vm.testutil import HAVE_QEMU, PATIENT, pids_mentioning

pytestmark = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64/qemu-img/OVMF not installed")
PLUGINS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="vmbt-", dir="/tmp")  # short: QMP socket path limit
    img = os.path.join(d, "empty.img")
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    os.chmod(img, 0o444)
    yield d, img
    assert pids_mentioning(d) == [], "a VM outlived its test"
    shutil.rmtree(d, ignore_errors=True)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_cli_boottest_passes_on_ovmf_marker(work):
    d, img = work
    before = sha(img)
    r = subprocess.run(
        [sys.executable, "-m", "redox_tools.vm", "boottest", "--image", img, "--hypervisor", "qemu",
         "--cpus", "1", "--memory", "256M", "--work-dir", os.path.join(d, "w"),
         "--milestone", f"bds=BdsDxe@{PATIENT}", "--timeout", str(PATIENT)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=PLUGINS),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr.splitlines()[0].startswith("using QEMU+")
    assert re.search(r"\[\s*\d+\.\ds\] reached: bds", r.stderr)
    assert "passed" in r.stdout
    assert os.path.exists(os.path.join(d, "w", "serial.log"))  # the log is kept
    assert sha(img) == before and os.stat(img).st_mode & 0o777 == 0o444


def test_missed_milestone_fails_with_serial_tail_and_kills_vm(work):
    d, img = work
    spec = VmSpec(image=img, work_dir=os.path.join(d, "w"), cpus=1, memory_mib=256)
    prepare_qemu_files(spec)
    lines = []
    res = run_boottest(
        qemu_argv(spec, "tcg"), spec.serial_log_path,
        [Milestone("bds", re.compile("BdsDxe"), PATIENT), Milestone("kernel", re.compile("Redox OS starting"), 2)],
        redox_failures(), timeout=PATIENT, qmp_socket=spec.control_socket_path, progress=lines.append,
    )
    # the message names the milestone whose 2 s ran out: it failed there, not at the overall timeout
    assert not res.passed
    assert "milestone 'kernel' (/Redox OS starting/) not reached within 2s" in res.message
    assert "reached: bds" in res.message and "elapsed" in res.message
    assert "--- serial log tail" in res.message and "BdsDxe" in res.message
    assert "\x1b" not in res.message
    assert [n for n, _ in res.reached] == ["bds"] and lines[0].endswith("reached: bds")
    assert pids_mentioning(spec.work_dir) == []


BROKEN_KVM = os.path.exists("/dev/kvm") and not real_kvm()[0]


@pytest.mark.skipif(not BROKEN_KVM, reason="needs this host's /dev/kvm without vmx/svm")
def test_qmp_internal_error_fails_early(work):
    # environment.md: OVMF under the software KVM module stops in `internal-error` while
    # qemu keeps running; the harness must notice through QMP rather than time out.
    d, img = work
    spec = VmSpec(image=img, work_dir=os.path.join(d, "w"), cpus=1, memory_mib=256,
                  extra_args=("-cpu", "qemu64"))
    prepare_qemu_files(spec)
    res = run_boottest(qemu_argv(spec, "kvm"), spec.serial_log_path,
                       [Milestone("bds", re.compile("BdsDxe"), PATIENT)], timeout=PATIENT,
                       qmp_socket=spec.control_socket_path, progress=None,
                       stderr_path=os.path.join(d, "qemu.err"))
    assert not res.passed  # (the QMP status, not a timeout, ended it)
    assert "QMP status 'internal-error'" in res.message
    assert "KVM internal error" in res.message  # hypervisor stderr is included


def test_serial_replies_type_on_the_console_in_order(work):
    # OVMF with an empty disk ends in its built-in UEFI shell. Two ordered replies, each after
    # a `Shell> ` prompt that follows the previous one: the variable's value only appears when
    # both were typed, in order, through the FIFO serial console (the log file stays complete).
    d, img = work
    spec = VmSpec(image=img, work_dir=os.path.join(d, "w"), cpus=1, memory_mib=256,
                  serial_pipe=os.path.join(d, "w", "serial"))
    prepare_qemu_files(spec)
    lines = []
    res = run_boottest(
        qemu_argv(spec, "tcg"), spec.serial_log_path,
        [Milestone("shell", re.compile("Shell> "), PATIENT), Milestone("typed", re.compile("FOO=PANTS42"), PATIENT)],
        timeout=PATIENT, qmp_socket=spec.control_socket_path, progress=lines.append,
        serial_replies=parse_replies([r"Shell> =>set FOO PANTS42\r", r"Shell> =>echo FOO=%FOO%\r"]),
        serial_pipe=spec.serial_pipe,
    )
    assert res.passed, res.message
    replied = [ln for ln in lines if "replied" in ln]
    assert len(replied) == 2 and "replied 'set FOO PANTS42\\r'" in replied[0], lines
    # the result has them too, in order, when typed: after the first prompt, before `typed`
    assert [label for label, _t in res.replied] == [r"Shell> =>set FOO PANTS42\r", r"Shell> =>echo FOO=%FOO%\r"]
    shell_t, typed_t = (t for _n, t in res.reached)
    assert shell_t <= res.replied[0][1] <= res.replied[1][1] <= typed_t
    with open(spec.serial_log_path, "rb") as f:
        log = f.read()
    assert b"UEFI Interactive Shell" in log and b"FOO=PANTS42" in log
    assert not os.path.exists(spec.serial_pipe + ".in")  # the harness removed its FIFOs
