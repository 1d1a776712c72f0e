"""The kernel's shape through the cargo driver: a target JSON, linker script, nasm, its std
prebuilt for the JSON target, and the objcopy step (split_debug) with profile settings."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from redox_tools.builders.cargo_build_testutil import (
    KERNEL_STD,
    assert_one_error,
    bad_build,
    header_field,
    hello_spec,
    kernel_spec,
    mount_std,
    needs_toolchain,
    readelf,
    run,
    sandbox,
    section_names,
    std_for,
    std_spec,
    symbol_values,
)

pytestmark = needs_toolchain


# --- the kernel's objcopy step (split_debug) and profile settings --------------------------------


def test_kernel_split_debug(tmp_path: Path) -> None:
    crate = sandbox(tmp_path, "kernel-shaped")
    # The kernel's std for its target JSON (the name rustc looks up under the sysroot is the
    # file stem): alloc + core with compiler-builtins-mem, the manifest's profile and `debug`.
    std_root = tmp_path / "std"
    std_root.mkdir()
    shutil.copyfile(crate / "x86_64-kernel.json", std_root / "x86_64-kernel.json")
    std = std_for(KERNEL_STD, std_root, std_spec(
        target="custom", target_spec="x86_64-kernel.json", crates=["alloc", "compiler_builtins", "core"],
        profile_settings={"opt-level": "s", "panic": "abort", "debug": "2"}, rustflags=[],
    ))
    assert sorted(p.name.split("-")[0] for p in (std / "lib" / "rustlib" / "x86_64-kernel" / "lib").iterdir()) == [
        "liballoc", "libcompiler_builtins", "libcore",
    ]
    code, out, err = run(tmp_path, kernel_spec(std_sysroot=mount_std(tmp_path, std)))
    assert code == 0, err
    assert sorted(out.split()) == ["usr/lib/boot/kernel", "usr/lib/boot/kernel.all", "usr/lib/boot/kernel.sym"]
    boot = tmp_path / "__staged" / "usr" / "lib" / "boot"
    kernel, sym, full = boot / "kernel", boot / "kernel.sym", boot / "kernel.all"
    # profile_settings reached cargo: debug = full although Cargo.toml says debug = false.
    assert ".debug_info" in section_names(full)
    assert ".debug_info" in section_names(sym)
    assert ".debug_info" not in section_names(kernel)
    assert kernel.stat().st_size < full.stat().st_size
    # The stripped kernel is still the same program: same entry, still `kstart`.
    entry = header_field(readelf("-h", str(kernel)), "Entry point address")
    assert entry == header_field(readelf("-h", str(full)), "Entry point address")
    assert int(entry, 16) == symbol_values(kernel)["kstart"]
    assert os.access(kernel, os.X_OK) and not os.access(sym, os.X_OK)


def test_bad_profile_setting(tmp_path: Path) -> None:
    code, err = bad_build(tmp_path, hello_spec(profile_settings={"opt_level": "s"}))
    assert_one_error(code, err, "`profile_settings` key 'opt_level'", "opt-level")
