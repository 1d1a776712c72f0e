"""`python -m redox_tools.vm {boottest,run,ctl,argv} ...`

Exit status: boottest 0 pass / 1 fail; run: the hypervisor's status (with --debug-exit, QEMU's
51/53 become 0/1); ctl 0; bad input 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
from typing import List, Optional, Sequence, Tuple

from redox_tools.errors import run_main
from redox_tools.vm import control as ctl
from redox_tools.vm.boottest import run_boottest, validate_screen_checks
from redox_tools.vm.cloudhv import ch_argv
from redox_tools.vm.config import (
    VmConfigError,
    VmSpec,
    apply_env,
    parse_cpus,
    parse_forward,
    parse_memory_mib,
)
from redox_tools.vm.console import run_console
from redox_tools.vm.detect import Choice, choose_hypervisor, find_cloud_hypervisor, real_kvm
from redox_tools.vm.process import VmProcess
from redox_tools.vm.qemu import DEBUG_EXIT_FAILURE, DEBUG_EXIT_SUCCESS, prepare_qemu_files, qemu_argv
from redox_tools.vm.screen import parse_check
from redox_tools.vm.serial import (
    SerialPipe,
    compile_pattern,
    parse_milestone,
    parse_replies,
    redox_failures,
    redox_milestones,
)

DEFAULT_RUN_DIR = ".redox-vm"


def _add_vm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", required=True, help="disk image (never modified)")
    p.add_argument("--image-format", default="auto", choices=("auto", "raw", "qcow2"),
                   help="auto (default): qcow2 if the file starts with qcow2's magic, else raw")
    p.add_argument("--hypervisor", default="auto", choices=("auto", "qemu", "cloud-hypervisor"))
    p.add_argument("--ovmf-code", default=VmSpec.firmware_code)
    p.add_argument("--ovmf-vars", default=VmSpec.firmware_vars, help="template; copied per VM")
    p.add_argument("--ch-binary", default=None)
    p.add_argument("--ch-firmware", default=None, help="CLOUDHV.fd or hypervisor-fw")
    p.add_argument("--cpus", default=None, help="overrides CH_CPUS (default 4)")
    p.add_argument("--memory", default=None, help="overrides CH_MEMORY (2048, 2048M, 2G)")
    p.add_argument("--net", default="none", choices=("none", "user", "tap"))
    p.add_argument("--tap", default=None, help="tap device name for --net tap")
    p.add_argument("--nic-model", default=VmSpec.nic_model,
                   help="QEMU NIC device (e1000, rtl8139, virtio-net-pci); Cloud Hypervisor's is virtio-net")
    p.add_argument("--forward", action="append", default=[], metavar="HOST:GUEST",
                   help="TCP forward 127.0.0.1:HOST -> guest GUEST (implies --net user)")
    p.add_argument("--balloon", action="store_true", help="add a virtio-balloon device (QEMU)")
    p.add_argument("--serial-log", default=None)
    p.add_argument("--socket", default=None, help="control socket (QMP / CH API)")
    p.add_argument("--work-dir", default=None)
    p.add_argument("--extra-arg", action="append", default=[], help="passed to the hypervisor")
    p.add_argument("--headless-display", action="store_true",
                   help="a display device without a window (QEMU -vga std -display none): the guest "
                        "gets a GOP framebuffer, QMP screendump can read it")


def detect_image_format(path: str) -> str:
    """qcow2 when `path` starts with qcow2's magic (the images `./pants package` writes), else raw."""
    try:
        with open(path, "rb") as f:
            return "qcow2" if f.read(4) == b"QFI\xfb" else "raw"
    except OSError:
        return "raw"  # a missing image is reported where it is opened


def _spec_from_args(a: argparse.Namespace, work_dir: str, **kw: object) -> VmSpec:
    spec = VmSpec(
        image=a.image,
        work_dir=work_dir,
        firmware_code=a.ovmf_code,
        firmware_vars=a.ovmf_vars,
        image_format=detect_image_format(a.image) if a.image_format == "auto" else a.image_format,
        balloon=a.balloon,
        serial_log=a.serial_log,
        control_socket=a.socket,
        extra_args=tuple(a.extra_arg),
        **kw,  # type: ignore[arg-type]
    )
    spec = apply_env(spec)
    changes: dict = {}
    if a.cpus is not None:
        changes["cpus"] = parse_cpus("--cpus", a.cpus)
    if a.memory is not None:
        changes["memory_mib"] = parse_memory_mib("--memory", a.memory)
    forwards = tuple(parse_forward(f) for f in a.forward)
    net = a.net
    if forwards and net == "none":
        net = "user"
    changes.update(network=net, tap_name=a.tap, forwards=forwards, nic_model=a.nic_model)
    spec = dataclasses.replace(spec, **changes)
    spec.validate()
    return spec


def _choose(a: argparse.Namespace, why_not_ch: Optional[str] = None) -> Choice:
    kvm = real_kvm()
    if a.hypervisor == "qemu" or why_not_ch:
        return choose_hypervisor("qemu", kvm=kvm, why_not_ch=why_not_ch or "--hypervisor qemu")
    ch = find_cloud_hypervisor(a.ch_binary, a.ch_firmware)
    choice = choose_hypervisor("cloud-hypervisor", kvm=kvm, ch=ch)
    if a.hypervisor == "cloud-hypervisor" and choice.kind != "cloud-hypervisor":
        raise VmConfigError("--hypervisor cloud-hypervisor is not usable: " + choice.reason.split(": ", 1)[1])
    return choice


def _build(spec: VmSpec, choice: Choice) -> List[str]:
    if choice.kind == "cloud-hypervisor":
        spec = dataclasses.replace(spec, ch_firmware=choice.firmware)
        os.makedirs(spec.work_dir, exist_ok=True)
        if os.path.lexists(spec.control_socket_path):
            os.unlink(spec.control_socket_path)
        return ch_argv(spec, binary=choice.binary or "cloud-hypervisor")
    prepare_qemu_files(spec)
    return qemu_argv(spec, choice.accel)


def _sigterm_to_interrupt() -> None:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


# --- boottest -------------------------------------------------------------------------

def cmd_boottest(a: argparse.Namespace) -> int:
    _sigterm_to_interrupt()
    milestones = [parse_milestone(m) for m in a.milestone]
    if a.preset == "redox":
        milestones = redox_milestones() + milestones
    failures = [] if a.no_default_failures else redox_failures()
    for f in a.fail:
        name, sep, rx = f.partition("=")
        if not sep or not rx:
            raise VmConfigError(f"--fail {f!r}: expected name=regex")
        failures.append((name, compile_pattern(f, rx)))
    if not milestones and a.expect_exit is None:
        raise VmConfigError("give at least one --milestone (or --preset redox) or --expect-exit")
    if a.timeout <= 0:
        raise VmConfigError("--timeout must be positive")
    screen_checks = [parse_check(c) for c in a.screen_check]
    validate_screen_checks(screen_checks, milestones)
    replies = parse_replies(a.serial_reply)
    temp = a.work_dir is None
    work_dir = a.work_dir or tempfile.mkdtemp(prefix="redox-boottest-")
    spec = _spec_from_args(
        a, work_dir, debug_exit=a.expect_exit is not None,
        headless_display=bool(screen_checks) or a.headless_display,
        serial_pipe=os.path.join(work_dir, "serial") if replies else None,
    )
    why = qemu_only_reason(spec)
    if a.expect_exit is not None:
        why = "isa-debug-exit (--expect-exit) needs QEMU"
    elif screen_checks:
        why = "screen checks (QMP screendump of a display device) need QEMU"
    choice = _choose(a, why)
    print(choice.reason, file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(spec.serial_log_path)), exist_ok=True)
    argv = _build(spec, choice)
    res = run_boottest(
        argv,
        spec.serial_log_path,
        milestones,
        failures,
        expect_exit=a.expect_exit,
        timeout=a.timeout,
        qmp_socket=spec.control_socket_path if choice.kind == "qemu" else None,
        stderr_path=os.path.join(work_dir, "hypervisor.stderr"),
        screen_checks=screen_checks,
        screendump_dir=a.screendump_dir,
        display_dir=a.display_dir,
        serial_replies=replies,
        serial_pipe=spec.serial_pipe,
    )
    if res.passed:
        print(f"boot test {res.message} in {res.elapsed:.1f}s")
        if temp and not a.keep_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
        return 0
    print(f"boot test FAILED: {res.message}")
    print(f"(work dir kept: {work_dir})")
    return 1


# --- run ------------------------------------------------------------------------------

def cmd_run(a: argparse.Namespace) -> int:
    _sigterm_to_interrupt()
    work_dir = a.work_dir or DEFAULT_RUN_DIR
    replies = parse_replies(a.serial_reply)
    spec = _spec_from_args(
        a, work_dir, graphical=a.graphical, serial_stdio=not replies, debug_exit=a.debug_exit,
        headless_display=a.headless_display,
        serial_pipe=os.path.join(work_dir, "serial") if replies else None,
    )
    why = qemu_only_reason(spec)
    if why and a.hypervisor == "cloud-hypervisor":
        raise VmConfigError(f"--hypervisor cloud-hypervisor: {why}")
    choice = _choose(a, why if a.hypervisor == "auto" else None)
    print(choice.reason, file=sys.stderr)
    log_dir = os.path.dirname(os.path.abspath(spec.serial_log_path))
    os.makedirs(log_dir, exist_ok=True)
    argv = _build(spec, choice)
    sock = spec.control_socket_path
    print(
        f"serial log: {spec.serial_log_path}; control: python -m redox_tools.vm ctl info --socket {sock}",
        file=sys.stderr,
    )
    # With serial replies this process is the console (console.py): QEMU gets its own process
    # group, and Ctrl-C here stops it.
    pipe = SerialPipe(spec.serial_pipe) if spec.serial_pipe else None
    vm = VmProcess(argv, interactive=pipe is None)
    try:
        vm.start()
        ctl.write_state(sock, choice.kind, pid=vm.pid, serial_log=os.path.abspath(spec.serial_log_path))
        code = vm.wait() if pipe is None else run_console(vm, pipe, replies)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the VM", file=sys.stderr)
        code = 130
    finally:
        vm.kill()
        ctl.remove_state(sock)
        if pipe is not None:
            pipe.close()
    if spec.debug_exit:
        code, message = debug_exit_status(code)
        if message:
            print(message, file=sys.stderr)
    return code


def qemu_only_reason(spec: VmSpec) -> Optional[str]:
    """Why `spec` needs QEMU (a device Cloud Hypervisor lacks), or None."""
    for on, what in (
        (spec.debug_exit, "isa-debug-exit (--debug-exit)"),
        (spec.graphical, "a graphical display (--graphical)"),
        (spec.headless_display, "a display device (--headless-display)"),
        (spec.network == "user", "user-mode networking (--net user / --forward)"),
        (bool(spec.serial_pipe), "answering serial prompts (--serial-reply)"),
    ):
        if on:
            return f"{what} needs QEMU"
    return None


def debug_exit_status(code: int) -> Tuple[int, str]:
    """Map QEMU's isa-debug-exit statuses to 0 (guest wrote 0x19 -> 51) / 1 (0x1a -> 53)."""
    if code == DEBUG_EXIT_SUCCESS:
        return 0, f"guest reported success through isa-debug-exit (QEMU status {code}); exit 0"
    if code == DEBUG_EXIT_FAILURE:
        return 1, f"guest reported failure through isa-debug-exit (QEMU status {code}); exit 1"
    if code == 0:
        # -no-reboot turns a guest reset or triple fault into a plain QEMU exit 0
        return 1, "guest did not report through isa-debug-exit (QEMU status 0: reset, triple fault or power-off); exit 1"
    return code, ""


# --- ctl ------------------------------------------------------------------------------

def cmd_ctl(a: argparse.Namespace) -> int:
    sock = a.socket or os.path.join(DEFAULT_RUN_DIR, "control.sock")
    kind = {"ch": "cloud-hypervisor"}.get(a.kind, a.kind)
    ctl.check_socket(sock, start_with=a.start_with)
    with ctl.open_control(sock, kind, timeout=a.timeout) as c:
        if a.action == "pause":
            out = c.pause()
        elif a.action == "resume":
            out = c.resume()
        elif a.action == "info":
            out = c.info()
        elif a.action == "snapshot":
            if c.kind == "qemu":
                out = c.snapshot(a.tag or "snap")
            else:
                if not a.destination:
                    raise VmConfigError("snapshot on cloud-hypervisor needs --destination DIR")
                out = c.snapshot(a.destination)
        elif a.action == "resize-memory":
            if a.size is None:
                raise VmConfigError("resize-memory needs --size (e.g. 1024M, 2G)")
            out = c.resize_memory(parse_memory_mib("--size", a.size))
        else:  # pragma: no cover - argparse restricts choices
            raise VmConfigError(f"unknown action {a.action}")
    print(json.dumps(out, sort_keys=True))
    return 0


# --- argv (print the command line) ----------------------------------------------------

def cmd_argv(a: argparse.Namespace) -> int:
    spec = _spec_from_args(a, a.work_dir or DEFAULT_RUN_DIR, graphical=a.graphical,
                           headless_display=a.headless_display)
    choice = _choose(a)
    if choice.kind == "cloud-hypervisor":
        argv = ch_argv(dataclasses.replace(spec, ch_firmware=choice.firmware), choice.binary or "cloud-hypervisor")
    else:
        argv = qemu_argv(spec, choice.accel)
    print(choice.reason, file=sys.stderr)
    print(" ".join(_shquote(x) for x in argv))
    return 0


def _shquote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m redox_tools.vm", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("boottest", help="boot an image headless and match serial milestones")
    _add_vm_args(b)
    b.add_argument("--milestone", action="append", default=[], metavar="NAME=REGEX[@TIMEOUT_S]")
    b.add_argument("--preset", choices=("redox",), default=None,
                   help="redox: bootloader, kernel, login milestones first")
    b.add_argument("--fail", action="append", default=[], metavar="NAME=REGEX",
                   help="extra pattern that fails the test at once")
    b.add_argument("--no-default-failures", action="store_true",
                   help="do not fail on the Redox bootloader failure markers")
    b.add_argument("--expect-exit", type=int, default=None,
                   help="pass only if the VM exits with this status (51 = isa-debug-exit 0x19)")
    b.add_argument("--timeout", type=float, default=300.0, help="overall seconds (default 300)")
    b.add_argument("--screen-check", action="append", default=[],
                   metavar="MILESTONE: not-blank|region X,Y,W,H #RRGGBB [tol=N] [min=F]",
                   help="after MILESTONE, screendump over QMP and check it (implies --headless-display)")
    b.add_argument("--screendump-dir", default=None,
                   help="where screen-<milestone>.ppm/.png go (default: the serial log's directory)")
    b.add_argument("--display-dir", default=None,
                   help="name the screendumps under this directory in messages (where they get copied)")
    b.add_argument("--serial-reply", action="append", default=[],
                   metavar="PATTERN=>REPLY | PRESET",
                   help="type REPLY (escapes \\r \\n \\t \\e \\xHH) on the serial console once PATTERN "
                        "appears, in order, each once; presets: redox-bootloader-menu "
                        "(Enter at the bootloader's video-mode menu)")
    b.add_argument("--keep-work-dir", action="store_true")
    b.set_defaults(func=cmd_boottest)

    r = sub.add_parser("run", help="run interactively: serial on this terminal, log kept")
    _add_vm_args(r)
    r.add_argument("--graphical", action="store_true", help="-vga std -display gtk (QEMU)")
    r.add_argument("--debug-exit", action="store_true", help="add isa-debug-exit (QEMU)")
    r.add_argument("--serial-reply", action="append", default=[], metavar="PATTERN=>REPLY | PRESET",
                   help="as for boottest: type REPLY once PATTERN appears on the serial console (the "
                        "terminal stays the console; QEMU only)")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("ctl", help="control a running VM")
    c.add_argument("action", choices=("pause", "resume", "info", "snapshot", "resize-memory"))
    c.add_argument("--socket", default=None, help=f"default {DEFAULT_RUN_DIR}/control.sock")
    c.add_argument("--kind", choices=("qemu", "ch", "cloud-hypervisor"), default=None,
                   help="default: from the state file `run` wrote, else probed")
    c.add_argument("--tag", default=None, help="snapshot name (QEMU)")
    c.add_argument("--destination", default=None, help="snapshot directory (cloud-hypervisor)")
    c.add_argument("--size", default=None, help="resize-memory target (1024M, 2G)")
    c.add_argument("--timeout", type=float, default=30.0)
    c.add_argument("--start-with", default="run", metavar="COMMAND",
                   help="how to start the VM, for the error when none is running (default: run)")
    c.set_defaults(func=cmd_ctl)

    v = sub.add_parser("argv", help="print the hypervisor command line (nothing is started)")
    _add_vm_args(v)
    v.add_argument("--graphical", action="store_true")
    v.set_defaults(func=cmd_argv)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    run_main(main)
