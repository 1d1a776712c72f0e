"""The error types every tool raises for bad input.

A format's reader or writer raises only its own subclass of `FormatError` for bad input;
command-line mains turn it into one `error: ...` line and exit status 2.
"""
from __future__ import annotations

import sys
from typing import Callable, NoReturn, Optional, Sequence


class ToolError(Exception):
    """Bad input to a tool: the message names the thing at fault and, where possible, the fix."""


class FormatError(ToolError):
    """Malformed or impossible on-disk data (base of every format's own error)."""


class ManifestError(ToolError):
    """An image tree that cannot be built (conflict, escaping path, bad entry)."""


def run_main(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Run a command-line `main`, turning `ToolError` into one clean line and exit status 2."""
    try:
        code = main(argv)
    except ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)
