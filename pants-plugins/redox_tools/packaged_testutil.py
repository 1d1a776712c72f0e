"""Where a test finds what Pants packaged for it (`runtime_package_dependencies`)."""
from __future__ import annotations

from pathlib import Path

BUILDROOT = Path(__file__).resolve().parents[2]


def packaged(rel: str) -> str:
    """The absolute path of `rel` (a package output's path under dist/, e.g.
    `images/selftest.qcow2`): in the test's sandbox, where the target's
    runtime_package_dependencies put it, or in the checkout's dist/ when run by hand."""
    for cand in (Path(rel), BUILDROOT / "dist" / rel):
        if cand.is_file():
            return str(cand.resolve())
    raise AssertionError(f"{rel} is missing: the test target's runtime_package_dependencies build it "
                         f"(by hand: ./pants package the target, it lands in dist/{rel})")
