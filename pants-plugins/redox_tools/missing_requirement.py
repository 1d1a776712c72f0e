"""One clear line, not a traceback, when a tool runs under a python without its requirements.

`python3 -m redox_tools.vm` with the system python (no numpy, no qemu.qmp, ...) used to die in a
traceback ending in `ModuleNotFoundError: No module named 'numpy'`. `redox_tools/__init__.py`
installs `hook` as `sys.excepthook` only for `python -m redox_tools.<module>` command lines; it
handles only a `ModuleNotFoundError` for a requirement of the redox-tools resolve and defers
everything else to the hook it replaced. Pants runs the tools in a venv holding the whole
resolve, and pytest never lets an exception reach `sys.excepthook`, so neither sees a change.
"""
from __future__ import annotations

import sys
from types import TracebackType
from typing import Callable, Optional, Type

# Top-level import name -> requirement (3rdparty/python/redox-tools-requirements.txt; a test
# keeps the two in step).
REQUIREMENTS = {
    "argon2": "argon2-cffi",
    "hypothesis": "hypothesis",
    "numpy": "numpy",
    "pytest": "pytest",
    "qemu": "qemu.qmp",
    "requests": "requests",
    "requests_unixsocket": "requests-unixsocket",
    "seahash": "seahash",
}

FIX = (
    "run it in the tools venv (./pants export --resolve=redox-tools, then "
    "source dist/export/python/virtualenvs/redox-tools/*/bin/activate)"
)

ExceptHook = Callable[[Type[BaseException], BaseException, Optional[TracebackType]], object]


def missing(exc: BaseException) -> Optional[str]:
    """The requirement `exc` says is missing, or None when it is about something else."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    return REQUIREMENTS.get(exc.name.split(".")[0])


def running_module() -> str:
    """`redox_tools.vm` for `python -m redox_tools.vm`, even when the import of the package
    itself failed (before `__main__` took its name)."""
    argv = list(getattr(sys, "orig_argv", ()))  # Python 3.10+
    for i, arg in enumerate(argv[1:-1], 1):
        if arg == "-m":
            return argv[i + 1]
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None) or "redox_tools"
    return name[: -len(".__main__")] if name.endswith(".__main__") else name


def message(requirement: str) -> str:
    return (
        f"error: {running_module()} needs {requirement}, which this python ({sys.executable}) "
        f"does not have: {FIX}"
    )


def make_hook(previous: ExceptHook) -> ExceptHook:
    def hook(kind: Type[BaseException], exc: BaseException, tb: Optional[TracebackType]) -> object:
        requirement = missing(exc)
        if requirement is None:
            return previous(kind, exc, tb)
        print(message(requirement), file=sys.stderr)
        # The interpreter honours a SystemExit raised by the hook: exit status 2 (bad input).
        raise SystemExit(2)

    return hook


def install() -> None:
    sys.excepthook = make_hook(sys.excepthook)
