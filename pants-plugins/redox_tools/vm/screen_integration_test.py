"""Real QEMU: screen checks over QMP screendump, with OVMF's UEFI shell on `-vga std`.

The guest is the shell running `startup.nsh` from a FAT disk (as in
debug_exit_integration_test): it prints text on the GOP console, then `pause`s until a key
arrives on the serial console and exits through isa-debug-exit. The harness types that key
(a serial reply) only after the screendump at the first line, so the picture shows text on
black however slow the host is: no guest-side wait races the harness.
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
from redox_tools.vm.screen import parse_check, read_ppm
from redox_tools.vm.serial import Milestone, parse_replies
from redox_tools.vm.testutil import HAVE_QEMU, PATIENT, pids_mentioning

HAVE_FAT = bool(shutil.which("mkfs.vfat") and shutil.which("mcopy"))
pytestmark = pytest.mark.skipif(not (HAVE_QEMU and HAVE_FAT), reason="needs qemu, OVMF, mkfs.vfat, mcopy")


def shell_image(path):
    subprocess.run(["mkfs.vfat", "-C", path, "2048"], check=True, stdout=subprocess.DEVNULL)
    nsh = os.path.join(os.path.dirname(path), "startup.nsh")
    with open(nsh, "w", newline="") as f:
        f.write("echo HARNESS-STARTUP\r\npause\r\nmm 0xf4 0x19 -w 1 -IO -n\r\n")
    subprocess.run(["mcopy", "-i", path, nsh, "::/startup.nsh"], check=True)
    os.chmod(path, 0o444)


def boot(root, name, checks, display_dir=None):
    d = os.path.join(root, name)
    os.makedirs(d)
    img = os.path.join(d, "esp.img")
    shell_image(img)
    spec = VmSpec(image=img, work_dir=os.path.join(d, "w"), cpus=1, memory_mib=256,
                  debug_exit=True, headless_display=True, serial_pipe=os.path.join(d, "serial"))
    prepare_qemu_files(spec)
    lines = []
    res = run_boottest(qemu_argv(spec, "tcg"), spec.serial_log_path,
                       [Milestone("nsh", re.compile("HARNESS-STARTUP"), PATIENT)],
                       expect_exit=51, timeout=PATIENT, qmp_socket=spec.control_socket_path,
                       progress=lines.append, screen_checks=[parse_check(c) for c in checks],
                       display_dir=display_dir, serial_pipe=spec.serial_pipe,
                       # the shell's `pause` prompt, answered after the screendump at `nsh`
                       serial_replies=parse_replies([r"Enter 'q' to quit, any other key to continue=>\r"]))
    return res, lines, spec


def test_screendump_checks_pass_and_fail():
    root = tempfile.mkdtemp(prefix="vmsc-", dir="/tmp")
    try:
        with ThreadPoolExecutor(2) as pool:
            ok = pool.submit(boot, root, "ok", ["nsh: not-blank", "nsh: region 0,790,1280,10 #000000 min=0.9"])
            bad = pool.submit(boot, root, "bad", ["nsh: region 600,380,80,40 #ff00ff"], "dist/test/x")
            (ok, ok_lines, ok_spec), (bad, _, _) = ok.result(), bad.result()
        assert ok.passed, ok.message
        assert "2 screen check(s) passed" in ok.message
        ppm = os.path.join(ok_spec.work_dir, "screen-nsh.ppm")
        assert ok.screens == [ppm] and read_ppm(ppm).shape[2] == 3
        assert os.path.exists(os.path.join(ok_spec.work_dir, "screen-nsh.png"))
        assert any("screendump after nsh" in ln for ln in ok_lines)
        assert any("screen check ok: nsh: not-blank" in ln for ln in ok_lines)
        # the key that ends the shell's `pause` was typed only after the picture was taken
        dumped = next(i for i, ln in enumerate(ok_lines) if "screendump after nsh" in ln)
        replied = [i for i, ln in enumerate(ok_lines) if "replied '\\r'" in ln]
        assert len(replied) == 1 and replied[0] > dumped, ok_lines

        assert not bad.passed
        assert "screen check failed after milestone 'nsh':" in bad.message
        assert "nsh: region 600,380,80,40 #ff00ff" in bad.message
        assert re.search(r"-> region 80x40 at 600,380: \d+\.\d% of its pixels within ±16 of #ff00ff "
                         r"\(need 95\.0%\); dominant colour #[0-9a-f]{6}", bad.message)
        assert "screendump: dist/test/x/screen-nsh.ppm (PNG copy: dist/test/x/screen-nsh.png)" in bad.message
        assert "--- serial log tail (dist/test/x/serial.log) ---" in bad.message
        assert "\n[elapsed " in bad.message  # after the multi-line check report, on its own line
        assert pids_mentioning(root) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
