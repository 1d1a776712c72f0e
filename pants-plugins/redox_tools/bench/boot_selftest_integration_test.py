"""The boot bench on the built self-test image under QEMU (as the README runs it): with a
display the app waits for Enter twice, and the bench types both (the harness's serial replies);
the marker's time includes the one typed before it."""
from __future__ import annotations

import re

import pytest

from redox_tools.bench.boot_selftest import main
from redox_tools.vm.testutil import HAVE_QEMU, PATIENT
from redox_tools.packaged_testutil import packaged

pytestmark = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64/qemu-img/OVMF not installed")

IMAGE = "images/selftest.qcow2"  # the test target's runtime_package_dependencies build it
RUN = re.compile(r"run 1: marker (\d+\.\d\d)s  total (\d+\.\d\d)s")


def test_graphical_boot_answers_both_prompts_and_checks_the_block(capsys):
    code = main([packaged(IMAGE), "-n", "1", "--expect-exit", "51", "--timeout", str(PATIENT), "--graphical",
                 "--marker", "SELFTEST: gop", "--screen-check", "region 400,300,200,150 #ff00ff"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    m = RUN.match(lines[0])
    assert m, out
    marker, total = float(m.group(1)), float(m.group(2))
    typed = [float(t) for t in re.findall(r"(\d+\.\d\d)s", lines[0].split("replies typed at", 1)[1])]
    # Enter at the menu before the marker (the block is drawn only then), Enter after it
    # (the block is held until the screendump was taken), then the app exits 51
    assert len(typed) == 2 and typed[0] <= marker <= typed[1] <= total, out
    assert lines[1].startswith("boot-to-marker (1 runs, tcg, graphical): min ")
    assert lines[1].endswith("(incl. waiting for 1 serial reply typed before it)"), out


def test_without_a_display_nothing_is_typed(capsys):
    code = main([packaged(IMAGE), "-n", "1", "--expect-exit", "51", "--timeout", str(PATIENT),
                 "--marker", "SELFTEST: no gop"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert RUN.fullmatch(lines[0]), out  # no replies on the line
    assert lines[1].startswith("boot-to-marker (1 runs, tcg): min ") and "repl" not in lines[1], out
