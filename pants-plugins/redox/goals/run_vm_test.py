"""The `redox_vm` / `redox_vm_control` command lines (pure helpers of run_vm.py)."""
from __future__ import annotations

from typing import Dict, List

import pytest

from redox.goals.run_vm import (
    VmRunnerError,
    VmSettings,
    control_socket_path,
    parse_forward,
    serial_log_path,
    vm_control_args,
    vm_run_args,
)

ROOT = "/repo"


def args_for(vm: VmSettings, env: Dict[str, str] = {}) -> List[str]:  # noqa: B006 - never mutated
    return vm_run_args(
        vm, image_path="{chroot}/images/x.img", build_root=ROOT, ovmf_code="CODE.fd", ovmf_vars="VARS.fd", env=env
    )


def opt(args: List[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_defaults_boot_headless_in_the_chroot_with_a_kept_serial_log() -> None:
    args = args_for(VmSettings("runners", "qemu", hypervisor="qemu"))
    assert args[0] == "run"
    assert opt(args, "--image") == "{chroot}/images/x.img"
    assert opt(args, "--hypervisor") == "qemu"
    assert (opt(args, "--ovmf-code"), opt(args, "--ovmf-vars")) == ("CODE.fd", "VARS.fd")
    assert opt(args, "--cpus") == "4" and opt(args, "--memory") == "2048M" and opt(args, "--net") == "none"
    # Not dev mode: overlay and socket vanish with the chroot; the serial log is kept outside it.
    assert opt(args, "--work-dir") == "{chroot}/__vm"
    assert opt(args, "--serial-log") == "/repo/dist/vm/runners/qemu/serial.log"
    assert "--socket" not in args and "--balloon" not in args
    assert "--graphical" not in args and "--debug-exit" not in args


def test_dev_mode_socket_is_at_the_known_path() -> None:
    args = args_for(VmSettings("runners", "cloud-hypervisor-dev", dev_mode=True))
    sock = "/repo/.redox-vm/runners/cloud-hypervisor-dev/control.sock"
    assert control_socket_path(ROOT, "runners", "cloud-hypervisor-dev") == sock
    assert opt(args, "--socket") == sock
    assert opt(args, "--work-dir") == "/repo/.redox-vm/runners/cloud-hypervisor-dev"
    assert "--balloon" in args  # QEMU resize-memory goes through the balloon
    # A target in the build root's own BUILD file.
    assert control_socket_path(ROOT, "", "dev") == "/repo/.redox-vm/dev/control.sock"
    assert serial_log_path(ROOT, "", "dev") == "/repo/dist/vm/dev/serial.log"


def test_control_args_name_the_dev_socket() -> None:
    sock = control_socket_path(ROOT, "runners", "d")
    assert vm_control_args("resize-memory", sock, ["--size=1G"], "runners:d") == [
        "ctl", "resize-memory", "--socket", sock, "--start-with=./pants run runners:d", "--size=1G"
    ]


@pytest.mark.parametrize("knob,flag", [("CH_CPUS", "--cpus"), ("CH_MEMORY", "--memory")])
def test_env_knobs_override_the_fields(knob: str, flag: str) -> None:
    vm = VmSettings("runners", "qemu", cpus=2, memory="1G")
    assert flag in args_for(vm)
    # The tool reads the variable itself (it inherits the caller's environment); a command-line
    # value would beat the variable there, so it is left out.
    assert flag not in args_for(vm, {knob: "3"})
    assert flag in args_for(vm, {knob: "  "})  # empty = unset, like redox_tools.vm.config.apply_env
    # CH_HUGEPAGES / CH_DIRECT_IO have no field and no flag: nothing to leave out.
    assert args_for(vm, {"CH_HUGEPAGES": "1", "CH_DIRECT_IO": "1"}) == args_for(vm)


def test_forwards_are_loopback_only_and_imply_user_networking() -> None:
    args = args_for(VmSettings("r", "v", forwards=("2222:22", "8080:80")))
    assert opt(args, "--net") == "user"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--forward"] == ["2222:22", "8080:80"]
    for bad in ("0.0.0.0:2222:22", "127.0.0.1:2222:22", "[::]:2222:22"):
        with pytest.raises(VmRunnerError, match="bind 127.0.0.1"):
            args_for(VmSettings("r", "v", forwards=(bad,)))
    for bad in ("22", "a:b", "0:22", "2222:70000"):
        with pytest.raises(VmRunnerError, match="forwards"):
            parse_forward(bad, "redox_vm r:v: `forwards`")
    with pytest.raises(VmRunnerError, match='not "tap"'):
        args_for(VmSettings("r", "v", network="tap", tap="tap0", forwards=("2222:22",)))


def test_bad_settings_name_the_target_and_field() -> None:
    with pytest.raises(VmRunnerError, match=r"redox_vm r:v: `memory` '2 gigs'"):
        args_for(VmSettings("r", "v", memory="2 gigs"))
    with pytest.raises(VmRunnerError, match="`cpus` must be 1..255"):
        args_for(VmSettings("r", "v", cpus=0))
    with pytest.raises(VmRunnerError, match="needs `tap`"):
        args_for(VmSettings("r", "v", network="tap"))
    with pytest.raises(VmRunnerError, match="Cloud Hypervisor has no debug_exit, graphical"):
        args_for(VmSettings("r", "v", hypervisor="cloud-hypervisor", debug_exit=True, graphical=True))


def test_tap_graphical_debug_exit_and_extra_args() -> None:
    args = args_for(
        VmSettings("r", "v", network="tap", tap="tap0", graphical=True, debug_exit=True, extra_args=("-s", "-S"))
    )
    assert opt(args, "--net") == "tap" and opt(args, "--tap") == "tap0"
    assert "--graphical" in args and "--debug-exit" in args
    # `=` form, since the values start with `-`.
    assert args[-2:] == ["--extra-arg=-s", "--extra-arg=-S"]


def test_headless_display() -> None:
    args = args_for(VmSettings("r", "v", headless_display=True))
    assert "--headless-display" in args and "--graphical" not in args
    assert "--headless-display" not in args_for(VmSettings("r", "v"))
    with pytest.raises(VmRunnerError, match="Cloud Hypervisor has no headless_display"):
        args_for(VmSettings("r", "v", hypervisor="cloud-hypervisor", headless_display=True))


def test_serial_replies_are_passed_in_order() -> None:
    args = args_for(VmSettings("r", "v", headless_display=True,
                               serial_replies=("redox-bootloader-menu", r"-x=>\r")))
    assert [a for a in args if a.startswith("--serial-reply")] == [
        "--serial-reply=redox-bootloader-menu",
        r"--serial-reply=-x=>\r",
    ]
    assert not any(a.startswith("--serial-reply") for a in args_for(VmSettings("r", "v")))
    with pytest.raises(VmRunnerError, match="Cloud Hypervisor has no serial_replies"):
        args_for(VmSettings("r", "v", hypervisor="cloud-hypervisor", serial_replies=("a=>b",)))


def test_host_network_args() -> None:
    from redox.goals.run_vm import host_network_args

    assert host_network_args("setup", "tap0", "172.30.0.1/24", None) == [
        "setup", "--tap", "tap0", "--bridge-cidr", "172.30.0.1/24",
    ]
    assert host_network_args("teardown", "tap1", "10.9.0.1/24", "eth0")[-2:] == ["--uplink", "eth0"]


def test_nic_model_goes_with_a_network_and_comes_from_the_system() -> None:
    args = args_for(VmSettings("r", "v", network="tap", tap="tap0", nic_model="virtio-net-pci"))
    assert opt(args, "--nic-model") == "virtio-net-pci"
    assert "--nic-model" not in args_for(VmSettings("r", "v"))
