"""Control client tests: Cloud Hypervisor against the stand-in server, no-VM errors."""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile

import pytest

from redox_tools.vm import cli, control
from redox_tools.vm.ch_standin_server import ChStandinServer
from redox_tools.vm.control import ChControl, ControlError, NoVmError, detect_kind, open_control


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="vmctl-", dir="/tmp")  # short: unix socket path limit
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_ch_pause_resume_info(sockdir):
    sock = os.path.join(sockdir, "ch.sock")
    with ChStandinServer(sock, cpus=2, memory_mib=1024) as srv:
        with ChControl(sock) as c:
            assert c.info() == {"hypervisor": "cloud-hypervisor", "status": "Running",
                                "running": True, "cpus": 2, "memory_mib": 1024}
            assert c.pause() == {"status": "Paused"}
            with pytest.raises(ControlError, match="HTTP 405"):
                c.pause()
            assert c.resume() == {"status": "Running"}
        puts = [(m, p) for m, p, _ in srv.calls if m == "PUT"]
        assert puts == [("PUT", "/api/v1/vm.pause"), ("PUT", "/api/v1/vm.pause"),
                        ("PUT", "/api/v1/vm.resume")]


def test_ch_snapshot_pauses_around_it(sockdir):
    sock = os.path.join(sockdir, "ch.sock")
    dest = os.path.join(sockdir, "snap")
    with ChStandinServer(sock) as srv:
        with ChControl(sock) as c:
            out = c.snapshot(dest)
        assert out == {"snapshot": dest, "status": "Running"}
        assert srv.snapshots == ["file://" + dest]
        eps = [p.rsplit("/", 1)[1] for m, p, _ in srv.calls if m == "PUT"]
        assert eps == ["vm.pause", "vm.snapshot", "vm.resume"]
        assert ("PUT", "/api/v1/vm.snapshot", {"destination_url": "file://" + dest}) in srv.calls


def test_ch_resize_memory(sockdir):
    sock = os.path.join(sockdir, "ch.sock")
    with ChStandinServer(sock, memory_mib=1024, hotplug_mib=2048) as srv:
        with ChControl(sock) as c:
            assert c.resize_memory(2048)["requested_mib"] == 2048
            assert c.info()["memory_mib"] == 2048
        assert ("PUT", "/api/v1/vm.resize", {"desired_ram": 2048 << 20}) in srv.calls
    with ChStandinServer(sock, memory_mib=1024, hotplug_mib=0):
        with ChControl(sock) as c:
            with pytest.raises(ControlError, match="hotplug_size"):
                c.resize_memory(4096)


def test_cli_ctl_against_standin(sockdir, capsys):
    sock = os.path.join(sockdir, "ch.sock")
    with ChStandinServer(sock, cpus=3) as srv:
        assert cli.main(["ctl", "info", "--socket", sock, "--kind", "ch"]) == 0
        assert json.loads(capsys.readouterr().out)["cpus"] == 3
        # No state file: the kind is probed (CH sends no greeting).
        assert detect_kind(sock, timeout=0.3) == "cloud-hypervisor"
        control.write_state(sock, "cloud-hypervisor", pid=1)
        assert cli.main(["ctl", "pause", "--socket", sock]) == 0
        assert json.loads(capsys.readouterr().out) == {"status": "Paused"}
        assert cli.main(["ctl", "snapshot", "--socket", sock, "--destination",
                         os.path.join(sockdir, "s")]) == 0
        assert cli.main(["ctl", "resize-memory", "--socket", sock, "--size", "1G"]) == 0
        assert srv.state == "Paused"
        control.remove_state(sock)


def test_no_vm_missing_socket(sockdir):
    sock = os.path.join(sockdir, "absent.sock")
    for kind in ("qemu", "cloud-hypervisor", None):
        with pytest.raises(NoVmError) as e:
            open_control(sock, kind).info()
        assert sock in str(e.value) and "does not exist" in str(e.value)


def test_no_vm_refused(sockdir):
    sock = os.path.join(sockdir, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock)  # bound but never listening: connect() is refused, like a dead VM's socket
    try:
        with pytest.raises(NoVmError, match="stale.sock"):
            ChControl(sock).info()
        with pytest.raises(NoVmError, match="stale.sock"):
            open_control(sock, "qemu")
        with pytest.raises(NoVmError, match="stale.sock"):
            detect_kind(sock)
    finally:
        s.close()


def test_cli_ctl_no_vm_is_one_error_line(sockdir, capsys):
    import subprocess
    import sys

    sock = os.path.join(sockdir, "none.sock")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    r = subprocess.run([sys.executable, "-m", "redox_tools.vm", "ctl", "info", "--socket", sock],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: no VM is running on control socket {sock}: the socket does not exist (start one with `run`)"
    ]
    # through Pants (runners:info etc.) the message names the dev-mode runner to start
    r = subprocess.run([sys.executable, "-m", "redox_tools.vm", "ctl", "info", "--socket", sock,
                        "--start-with=./pants run runners:cloud-hypervisor-dev"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: no VM is running on control socket {sock}: the socket does not exist "
        "(start one with `./pants run runners:cloud-hypervisor-dev`)"
    ]
