"""Command-line construction (QEMU and Cloud Hypervisor) and the per-VM files."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from redox_tools.vm.config import VmConfigError, VmSpec
from redox_tools.vm.qemu import ch_argv, prepare_qemu_files, qemu_argv

IMG = "/images/redox.img"


def spec(**kw):
    return VmSpec(image=IMG, work_dir="/tmp/vm1", **kw)


def opt_values(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_headless_tcg_defaults():
    argv = qemu_argv(spec(), "tcg")
    assert argv[0] == "qemu-system-x86_64"
    assert "q35" in opt_values(argv, "-machine")[0]
    assert opt_values(argv, "-accel") == ["tcg"] and opt_values(argv, "-cpu") == ["max"]
    assert opt_values(argv, "-smp") == ["4"] and opt_values(argv, "-m") == ["2048M"]
    assert opt_values(argv, "-vga") == ["none"] and opt_values(argv, "-display") == ["none"]
    assert "-no-reboot" in argv
    drives = opt_values(argv, "-drive")
    code, vars_, disk = drives
    assert "readonly=on" in code and "OVMF_CODE_4M.fd" in code
    assert vars_.endswith("file=/tmp/vm1/OVMF_VARS.fd") and "readonly" not in vars_
    assert disk.startswith("file=/tmp/vm1/disk-overlay.qcow2,format=qcow2")
    assert "virtio-blk-pci,drive=disk0,bootindex=0" in opt_values(argv, "-device")
    assert opt_values(argv, "-chardev") == ["file,id=ser0,path=/tmp/vm1/serial.log"]
    assert opt_values(argv, "-qmp") == ["unix:/tmp/vm1/control.sock,server=on,wait=off"]
    assert "-netdev" not in argv and "isa-debug-exit" not in " ".join(argv)


def test_built_image_never_on_the_command_line():
    # The image is only reached as the overlay's read-only backing file.
    for s in (spec(), spec(direct_io=True, hugepages=True, network="user", forwards=((2, 3),))):
        assert not any(IMG in a for a in qemu_argv(s, "tcg"))


def test_kvm_uses_host_cpu():
    argv = qemu_argv(spec(), "kvm")
    assert opt_values(argv, "-accel") == ["kvm"] and opt_values(argv, "-cpu") == ["host"]
    with pytest.raises(VmConfigError):
        qemu_argv(spec(), "hvf")


def test_knobs_hugepages_direct_io_cpus_memory():
    argv = qemu_argv(spec(cpus=2, memory_mib=1024, hugepages=True, direct_io=True), "tcg")
    assert opt_values(argv, "-object") == ["memory-backend-memfd,id=mem,size=1024M,hugetlb=on"]
    assert opt_values(argv, "-machine") == ["q35,memory-backend=mem"]
    assert opt_values(argv, "-drive")[2].endswith(",cache=none,aio=native")
    assert opt_values(argv, "-smp") == ["2"] and opt_values(argv, "-m") == ["1024M"]


def test_user_net_forwards_bind_loopback_only():
    argv = qemu_argv(spec(network="user", forwards=((2222, 22), (8080, 80))), "tcg")
    (netdev,) = opt_values(argv, "-netdev")
    assert netdev == "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8080-:80"
    for part in netdev.split(",")[2:]:
        assert part.startswith("hostfwd=tcp:127.0.0.1:")
    assert "e1000,netdev=n0" in opt_values(argv, "-device")


def test_tap_net():
    argv = qemu_argv(spec(network="tap", tap_name="tap0", nic_model="virtio-net-pci"), "tcg")
    assert opt_values(argv, "-netdev") == ["tap,id=n0,ifname=tap0,script=no,downscript=no"]
    assert "virtio-net-pci,netdev=n0" in opt_values(argv, "-device")


def test_graphical_interactive_debug_exit_balloon_extra():
    argv = qemu_argv(spec(graphical=True, serial_stdio=True, debug_exit=True, balloon=True,
                          extra_args=("-d", "guest_errors")), "tcg")
    assert opt_values(argv, "-vga") == ["std"] and opt_values(argv, "-display") == ["gtk"]
    (chardev,) = opt_values(argv, "-chardev")
    assert chardev.startswith("stdio,id=ser0,") and "logfile=/tmp/vm1/serial.log" in chardev
    devices = opt_values(argv, "-device")
    assert "isa-debug-exit,iobase=0xf4,iosize=0x04" in devices
    assert "virtio-balloon-pci,id=balloon0" in devices
    assert argv[-2:] == ["-d", "guest_errors"]


def test_headless_display_has_a_gop_but_no_window():
    argv = qemu_argv(spec(headless_display=True), "tcg")
    assert opt_values(argv, "-vga") == ["std"] and opt_values(argv, "-display") == ["none"]
    assert opt_values(qemu_argv(spec(), "tcg"), "-vga") == ["none"]
    # graphical (a window) wins when both are set
    argv = qemu_argv(spec(headless_display=True, graphical=True), "tcg")
    assert opt_values(argv, "-display") == ["gtk"]


def test_commas_in_paths_are_escaped():
    argv = qemu_argv(VmSpec(image=IMG, work_dir="/tmp/a,b"), "tcg")
    assert "file=/tmp/a,,b/disk-overlay.qcow2" in opt_values(argv, "-drive")[2]


def test_ch_argv_documented_cli():
    s = spec(ch_firmware="/fw/CLOUDHV.fd", cpus=2, memory_mib=1024)
    assert ch_argv(s) == [
        "cloud-hypervisor", "--firmware", "/fw/CLOUDHV.fd",
        "--disk", f"path={IMG},readonly=on",
        "--cpus", "boot=2", "--memory", "size=1024M",
        "--serial", "file=/tmp/vm1/serial.log", "--console", "off",
        "--api-socket", "path=/tmp/vm1/control.sock",
    ]
    argv = ch_argv(spec(ch_firmware="/fw/f", direct_io=True, hugepages=True, serial_stdio=True,
                        network="tap", tap_name="tap3"))
    assert opt_values(argv, "--disk") == [f"path={IMG},readonly=on,direct=on"]
    assert opt_values(argv, "--memory") == ["size=2048M,hugepages=on"]
    assert opt_values(argv, "--serial") == ["tty"]
    assert opt_values(argv, "--net") == ["tap=tap3"]


@pytest.mark.parametrize("kw,msg", [
    (dict(), "firmware"),
    (dict(ch_firmware="/f", network="user"), "user-mode"),
    (dict(ch_firmware="/f", debug_exit=True), "isa-debug-exit"),
    (dict(ch_firmware="/f", graphical=True), "graphical"),
    (dict(ch_firmware="/f", headless_display=True), "display device"),
])
def test_ch_argv_refuses_what_ch_lacks(kw, msg):
    with pytest.raises(VmConfigError, match=msg):
        ch_argv(spec(**kw))


needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed")


@needs_qemu_img
def test_prepare_makes_overlay_over_read_only_image(tmp_path):
    img = tmp_path / "built.img"
    img.write_bytes(b"\x55" * 65536)
    img.chmod(0o444)
    digest = hashlib.sha256(img.read_bytes()).hexdigest()
    s = VmSpec(image=str(img), work_dir=str(tmp_path / "w"),
               firmware_vars="/usr/share/OVMF/OVMF_VARS_4M.fd")
    prepare_qemu_files(s)
    info = subprocess.run(["qemu-img", "info", "--output=json", s.overlay_path],
                          check=True, stdout=subprocess.PIPE, text=True).stdout
    assert '"backing-filename-format": "raw"' in info and str(img) in info
    assert os.path.getsize(s.vars_copy_path) == os.path.getsize(s.firmware_vars)
    assert os.stat(img).st_mode & 0o777 == 0o444
    assert hashlib.sha256(img.read_bytes()).hexdigest() == digest


def test_prepare_reports_missing_image(tmp_path):
    with pytest.raises(VmConfigError, match="does not exist"):
        prepare_qemu_files(VmSpec(image=str(tmp_path / "none.img"), work_dir=str(tmp_path)))


def test_serial_pipe_keeps_the_log():
    argv = qemu_argv(spec(serial_pipe="/tmp/vm1/serial"), "tcg")
    assert opt_values(argv, "-chardev") == [
        "pipe,id=ser0,path=/tmp/vm1/serial,logfile=/tmp/vm1/serial.log,logappend=off"
    ]
    assert opt_values(argv, "-serial") == ["chardev:ser0"]
    with pytest.raises(VmConfigError, match="terminal or on a pipe"):
        qemu_argv(spec(serial_pipe="/tmp/vm1/serial", serial_stdio=True), "tcg")
