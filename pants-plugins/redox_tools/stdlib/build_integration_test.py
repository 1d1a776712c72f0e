"""The std sysroot builder with the real toolchain (`python -m redox_tools.stdlib.build`), run as
the rule runs it, and a package linked against its output with the cargo driver."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, List

from redox_tools.builders.cargo_build_testutil import (
    finish,
    hello_spec,
    mount_std,
    needs_toolchain,
    run,
    sandbox,
    UEFI_STD,
    start_std,
    std_for,
    std_spec,
    toolchain,
)

pytestmark = needs_toolchain

UEFI = "x86_64-unknown-uefi"


def uefi_std_spec() -> Dict[str, object]:
    """uefi-selftest's std (`UEFI_STD`): its manifest's release profile, no rustflags, the
    default `build_std_features`."""
    return std_spec(target=UEFI, rustflags=[])


def sums(sysroot: Path) -> Dict[str, str]:
    return {
        str(p.relative_to(sysroot)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(sysroot.rglob("*"))
        if p.is_file()
    }


def test_uefi_std_is_reproducible_and_links_the_app(tmp_path: Path) -> None:
    # Built here from the spec this module writes, and compared with the rule's own build of
    # uefi-selftest's std (packaged by Pants in another sandbox; by hand, a second build here):
    # byte-identical means reproducible across sandboxes and the same spec as the rule's.
    here = tmp_path / "a"
    code, _out, err = finish(start_std(here, uefi_std_spec()))
    assert code == 0, err
    assert err.strip() == ""
    sysroot = here / "__std_sysroot"
    other = std_for(UEFI_STD, tmp_path / "b-with-a-longer-path", uefi_std_spec())
    a = sums(sysroot)
    assert a == sums(other)
    names = sorted(n.split("/")[-1].split("-")[0] for n in a)
    assert names == ["libcompiler_builtins", "libcore"]  # the std crates only, not the dummy crate
    assert all(n.startswith(f"lib/rustlib/{UEFI}/lib/") for n in a)
    for f in sysroot.rglob("*.rlib"):
        assert str(here).encode() not in f.read_bytes()

    # The UEFI app against it: no -Z build-std, `--sysroot`, rust-lld still found (PE32+ out).
    pkg = tmp_path / "pkg"
    sandbox(pkg, "uefi-selftest")
    spec = hello_spec(
        package="packages/fixtures/uefi-selftest:uefi-selftest",
        crate_dir="packages/fixtures/uefi-selftest",
        target=UEFI,
        entry=None,
        rustflags=[],
        install={"uefi-selftest": "/EFI/BOOT/BOOTX64.EFI"},
        std_sysroot=mount_std(pkg, sysroot),
    )
    code, out, err = run(pkg, spec)
    assert code == 0, err
    efi = (pkg / "__staged" / "EFI" / "BOOT" / "BOOTX64.EFI").read_bytes()
    assert efi[:2] == b"MZ"
    assert not list((pkg / "__cargo" / "target" / UEFI / "release" / "deps").glob("libcore-*"))  # std not rebuilt


def one_error(tmp_path: Path, spec: Dict[str, object]) -> str:
    code, out, err = finish(start_std(tmp_path, spec))
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert out == "" and not (tmp_path / "__std_sysroot").exists()
    return errors[0]


def test_custom_target_needs_its_json(tmp_path: Path) -> None:
    line = one_error(tmp_path, std_spec(target="custom", target_spec="nope.json"))
    assert "target JSON nope.json not found" in line


def test_host_is_not_a_std_target(tmp_path: Path) -> None:
    assert "cross target, not 'host'" in one_error(tmp_path, std_spec(target="host"))


def test_missing_rust_src(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "library" / "vendor").mkdir(parents=True)
    line = one_error(tmp_path, std_spec(toolchain=toolchain(rust_src=str(empty), std_vendor=str(empty / "library" / "vendor"))))
    assert "has no rust-src" in line and str(empty) in line


def test_profile_key_that_does_not_shape_std(tmp_path: Path) -> None:
    assert "profile setting 'strip' does not shape the std build" in one_error(
        tmp_path, std_spec(profile_settings={"strip": "true"})
    )


def test_unknown_crate_is_cargos_error_quoted(tmp_path: Path) -> None:
    lines: List[str] = one_error(tmp_path, std_spec(crates=["no_such_std_crate"])).splitlines()
    assert lines[0].startswith("error: std test: cargo -Z build-std failed")
