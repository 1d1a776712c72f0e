"""The run console with serial replies, against a stand-in VM (a shell on the FIFOs)."""
from __future__ import annotations

import io
import os

from redox_tools.vm.console import run_console
from redox_tools.vm.process import VmProcess
from redox_tools.vm.serial import SerialPipe, parse_replies


def test_console_copies_output_and_answers_the_prompt(tmp_path):
    base = str(tmp_path / "serial")
    pipe = SerialPipe(base)
    # Like QEMU's pipe chardev: write <base>.out, read <base>.in. Prints the menu prompt (with
    # an escape sequence in the middle), reads one byte, reports it in hex, exits 51.
    script = (
        f"printf 'Output 0\\r\\nPress e to edit \\033[1mboot environment\\r\\n' > {base}.out; "
        f"b=$(head -c1 < {base}.in | od -An -tx1 | tr -d ' '); "
        f"printf 'got %s\\r\\n' \"$b\" > {base}.out; exit 51"
    )
    vm = VmProcess(["sh", "-c", script])
    out = io.BytesIO()
    notes = []
    try:
        vm.start()
        code = run_console(vm, pipe, parse_replies(["redox-bootloader-menu"]), stdin_fd=-1, stdout=out,
                           note=notes.append)
    finally:
        vm.kill()
        pipe.close()
    assert code == 51
    assert out.getvalue().startswith(b"Output 0\r\nPress e to edit \x1b[1mboot environment\r\n")
    assert b"got 0d\r\n" in out.getvalue()  # Enter = CR reached the "guest", once
    assert len(notes) == 1 and "replied '\\r'" in notes[0]
    assert not os.path.exists(base + ".in")
