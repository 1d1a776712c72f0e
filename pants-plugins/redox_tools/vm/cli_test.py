"""CLI input handling: bad input is one `error:` line and exit status 2, before any VM starts."""
from __future__ import annotations

import shlex

import pytest

from redox_tools.errors import run_main
from redox_tools.vm import cli


def run(argv, monkeypatch, env=None):
    for k in ("CH_CPUS", "CH_MEMORY", "CH_HUGEPAGES", "CH_DIRECT_IO", "CH_BINARY", "CH_FIRMWARE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit) as e:
        run_main(cli.main, argv)
    return e.value.code


@pytest.fixture
def img(tmp_path):
    p = tmp_path / "disk.img"
    p.write_bytes(b"\0" * 4096)
    return str(p)


@pytest.mark.parametrize("args,env,words", [
    (["--milestone", "broken"], {}, ["expected name=regex"]),
    (["--milestone", "a=(x"], {}, ["bad regex"]),
    (["--milestone", "a=x"], {"CH_MEMORY": "2T"}, ["CH_MEMORY='2T'"]),
    (["--milestone", "a=x"], {"CH_HUGEPAGES": "sometimes"}, ["CH_HUGEPAGES='sometimes'"]),
    (["--milestone", "a=x", "--forward", "22"], {}, []),  # valid: only check it gets past parsing
    ([], {}, ["at least one --milestone"]),
    (["--milestone", "a=x", "--hypervisor", "cloud-hypervisor"], {"PATH": "/nonexistent"},
     ["--hypervisor cloud-hypervisor is not usable", "not found on PATH"]),
    (["--milestone", "a=x", "--fail", "nope"], {}, ["--fail 'nope'"]),
    (["--milestone", "a=x", "--screen-check", "a: sparkly"], {}, ["unknown check 'sparkly'"]),
    (["--milestone", "a=x", "--screen-check", "b: not-blank", "--hypervisor", "qemu"], {},
     ["no milestone named 'b'", "milestones: a"]),
    (["--milestone", "a=x", "--serial-reply", "Press e"], {}, ["expected PATTERN=>REPLY", "redox-bootloader-menu"]),
    (["--milestone", "a=x", "--serial-reply", r"x=>\q"], {}, ["unknown escape \\q"]),
])
def test_boottest_bad_input(args, env, words, img, monkeypatch, capsys, tmp_path):
    if args[-2:] == ["--forward", "22"]:
        # A valid forward: stop before a VM starts by pointing at a missing OVMF.
        args = args + ["--ovmf-code", str(tmp_path / "missing.fd")]
        words = ["firmware code", "missing.fd"]
    code = run(["boottest", "--image", img, "--work-dir", str(tmp_path / "w")] + args, monkeypatch, env)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ")
    for w in words:
        assert w in err[-1]


def test_missing_image(monkeypatch, capsys, tmp_path):
    code = run(["boottest", "--image", str(tmp_path / "nope.img"), "--milestone", "a=x",
                "--work-dir", str(tmp_path / "w"), "--hypervisor", "qemu"], monkeypatch)
    assert code == 2 and "nope.img does not exist" in capsys.readouterr().err


def test_argv_command_prints_command_line(img, monkeypatch, capsys):
    code = run(["argv", "--image", img, "--hypervisor", "qemu", "--forward", "2222:22"], monkeypatch,
               {"CH_CPUS": "3", "CH_MEMORY": "1G", "CH_DIRECT_IO": "yes"})
    out, err = capsys.readouterr()
    assert code == 0 and err.startswith("using QEMU+")
    argv = shlex.split(out)
    assert argv[argv.index("-smp") + 1] == "3" and argv[argv.index("-m") + 1] == "1024M"
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in out and "cache=none,aio=native" in out
    # CLI flags beat the environment
    code = run(["argv", "--image", img, "--hypervisor", "qemu", "--cpus", "1"], monkeypatch, {"CH_CPUS": "3"})
    argv = shlex.split(capsys.readouterr().out)
    assert argv[argv.index("-smp") + 1] == "1"


def test_run_debug_exit_status_maps_51_and_53():
    assert cli.debug_exit_status(51)[0] == 0
    assert cli.debug_exit_status(53)[0] == 1
    assert cli.debug_exit_status(130) == (130, "")


def test_run_debug_exit_status_0_is_a_dead_guest_not_success():
    # with -no-reboot QEMU exits 0 on a reset or triple fault: only 51 may mean success (issue 11 #2)
    code, message = cli.debug_exit_status(0)
    assert code != 0 and "did not report" in message
    for other in (1, 2, 52, 255):
        assert cli.debug_exit_status(other)[0] != 0


def test_qemu_only_reason(tmp_path):
    from redox_tools.vm.config import VmSpec

    spec = VmSpec(image="x", work_dir=str(tmp_path))
    assert cli.qemu_only_reason(spec) is None
    assert "isa-debug-exit" in cli.qemu_only_reason(VmSpec(image="x", work_dir="w", debug_exit=True))
    assert "user-mode" in cli.qemu_only_reason(VmSpec(image="x", work_dir="w", network="user"))
    assert "display device" in cli.qemu_only_reason(VmSpec(image="x", work_dir="w", headless_display=True))
    assert "--serial-reply" in cli.qemu_only_reason(VmSpec(image="x", work_dir="w", serial_pipe="w/serial"))


def test_argv_headless_display(img, monkeypatch, capsys):
    code = run(["argv", "--image", img, "--hypervisor", "qemu", "--headless-display"], monkeypatch)
    argv = shlex.split(capsys.readouterr().out)
    assert code == 0
    assert argv[argv.index("-vga") + 1] == "std" and argv[argv.index("-display") + 1] == "none"


def test_argv_nic_model(img, monkeypatch, capsys):
    """A `redox_system`'s `virtualisation.nic_model` reaches QEMU's network device (default e1000)."""
    code = run(["argv", "--image", img, "--hypervisor", "qemu", "--net", "user", "--nic-model", "virtio-net-pci"], monkeypatch)
    argv = shlex.split(capsys.readouterr().out)
    assert code == 0 and "virtio-net-pci,netdev=n0" in argv
    run(["argv", "--image", img, "--hypervisor", "qemu", "--net", "user"], monkeypatch)
    assert "e1000,netdev=n0" in shlex.split(capsys.readouterr().out)
