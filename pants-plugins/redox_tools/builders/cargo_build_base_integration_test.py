"""base's two cargo passes over one workspace keep their features apart (against one prebuilt std)."""
from __future__ import annotations

from pathlib import Path

from redox_tools.builders.cargo_build_testutil import (
    HELLO_STD,
    base_pass_spec,
    finish,
    mount_std,
    needs_toolchain,
    sandbox,
    start,
    std_for,
    std_spec,
)

pytestmark = needs_toolchain


# --- base's two passes over one workspace ---------------------------------------------------


def test_base_two_passes_keep_features_apart(tmp_path: Path) -> None:
    passes = {
        "pass1": (["rootd"], {"rootd": "/usr/bin/rootd"}),
        "pass2": (["initd"], {"initd": "/bin/initd"}),
        # The control: both members in one invocation -> cargo unifies common's features.
        "together": (["rootd", "initd"], {"rootd": "/usr/bin/rootd", "initd": "/bin/initd"}),
    }
    # One std for all three (the same key: base's profile is redox-hello's), as in Pants.
    std = std_for(HELLO_STD, tmp_path / "std", std_spec())
    procs = {}
    for name, (members, install) in passes.items():
        sandbox(tmp_path / name, "base-shaped")
        spec = base_pass_spec(members, install)
        procs[name] = start(tmp_path / name, {**spec, "std_sysroot": mount_std(tmp_path / name, std)})
    for name, proc in procs.items():
        code, _out, err = finish(proc)
        assert code == 0, f"{name}: {err}"

    def banner(name: str, path: str) -> bytes:
        data = (tmp_path / name / "__staged" / path).read_bytes()
        return b"verbose" if b"COMMON: verbose logging" in data else b"quiet" if b"COMMON: quiet" in data else b"?"

    assert banner("pass1", "usr/bin/rootd") == b"verbose"
    assert banner("pass2", "bin/initd") == b"quiet"  # separate pass: initd keeps its own features
    assert banner("together", "bin/initd") == b"verbose"  # why base builds in two passes
