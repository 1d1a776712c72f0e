"""redox_tools.missing_requirement: a tool run by a python without the tools' requirements says
so in one line (exit 2), and nothing else changes."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from redox_tools.missing_requirement import FIX, REQUIREMENTS, make_hook, missing

PLUGINS = Path(__file__).resolve().parents[1]
REQUIREMENTS_TXT = Path(__file__).resolve().parents[2] / "3rdparty" / "python" / "redox-tools-requirements.txt"


def bare_python(*args: str) -> "subprocess.CompletedProcess[str]":
    """`python -S -m ...`: this interpreter without its site-packages (so without numpy & co.),
    seeing only the tools' sources, like the system python run from pants-plugins/."""
    return subprocess.run(
        [sys.executable, "-S", *args],
        cwd=PLUGINS,
        env={"PYTHONPATH": str(PLUGINS), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


def test_every_requirement_is_known() -> None:
    names = set()
    for line in REQUIREMENTS_TXT.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            m = re.match(r"[A-Za-z0-9_.\-]+", line)
            assert m, line
            names.add(m.group(0))
    assert names == set(REQUIREMENTS.values())


@pytest.mark.parametrize(
    "module,requirement",
    [
        ("redox_tools.vm", "numpy"),  # through a submodule (vm.screen)
        ("redox_tools.redoxfs", "numpy"),  # in the package's own __init__, before __main__
        ("redox_tools.bench.boot_selftest", "numpy"),
    ],
)
def test_missing_requirement_is_one_line(module: str, requirement: str) -> None:
    proc = bare_python("-m", module, "--help")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == (
        f"error: {module} needs {requirement}, which this python ({sys.executable}) does not have: {FIX}\n"
    )


def test_stdlib_only_tool_still_runs() -> None:
    proc = bare_python("-m", "redox_tools.qcow2", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


def test_other_errors_go_to_the_previous_hook() -> None:
    seen: List[Tuple[type, BaseException]] = []
    hook = make_hook(lambda kind, exc, tb: seen.append((kind, exc)))
    for exc in (ModuleNotFoundError("No module named 'nope'", name="nope"), ImportError("x"), ValueError("y")):
        hook(type(exc), exc, None)
    assert [kind for kind, _ in seen] == [ModuleNotFoundError, ImportError, ValueError]
    with pytest.raises(SystemExit) as exit_info:
        hook(ModuleNotFoundError, ModuleNotFoundError("No module named 'qemu'", name="qemu"), None)
    assert exit_info.value.code == 2


def test_missing_names_the_requirement_not_the_submodule() -> None:
    assert missing(ModuleNotFoundError("x", name="qemu.qmp")) == "qemu.qmp"
    assert missing(ModuleNotFoundError("x", name="argon2")) == "argon2-cffi"
    assert missing(ModuleNotFoundError("x", name="redox_tools.nope")) is None
