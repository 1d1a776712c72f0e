"""The std key: which package settings make a different std, and which packages share one."""
from __future__ import annotations

from typing import Any, Dict

import pytest

from redox.util_rules.package_build import PackageBuildError
from redox.util_rules.std_sysroot import manifest_profiles, std_codegen_flags, std_profile

HELLO_MANIFEST = """
[package]
name = "redox-hello"
version = "0.1.0"

[profile.dev]
panic = "abort"

[profile.release]
panic = "abort"
opt-level = "s"
debug = false
"""


def test_link_only_flags_leave_the_key() -> None:
    flags = [
        "-Crelocation-model=static", "-Ctarget-feature=+crt-static", "-Clink-arg=-zmax-page-size=4096",
        "-C", "link-arg=--no-pie", "--cfg", "aes_force_soft", "-Zpre-link-arg=/x/crt0.o", "-L", "/lib",
        "-lc", "-Clinker=/usr/bin/ld.lld", "--remap-path-prefix=/a=/b", "-Awarnings", "-C", "panic=abort",
        "-Ccode-model=kernel", "-Zbranch-protection=bti",
    ]
    assert std_codegen_flags(flags) == (
        "-Crelocation-model=static", "-Ctarget-feature=+crt-static", "-Cpanic=abort", "-Ccode-model=kernel",
        "-Zbranch-protection=bti",
    )


def test_packages_with_only_link_differences_share_a_key() -> None:
    hello = std_codegen_flags(["-Crelocation-model=static", "-Ctarget-feature=+crt-static"])
    bootstrap = std_codegen_flags([
        "-Crelocation-model=static", "-Ctarget-feature=+crt-static", "-Clink-arg=-zmax-page-size=4096",
        "-Clink-arg=--no-pie",
    ])
    assert hello == bootstrap
    assert std_codegen_flags([]) != hello  # position-independent std for relibc's parts


def test_manifest_profile_and_settings() -> None:
    manifest = manifest_profiles(HELLO_MANIFEST)
    # debug = false is release's default: not in the key; opt-level and panic are.
    assert std_profile("release", manifest, {}) == ("release", (("opt-level", "s"), ("panic", "abort")), False)
    # base's BUILD repeats its manifest's values as profile_settings: the same key.
    assert std_profile("release", manifest, {"opt-level": "s", "panic": "abort"})[1] == (
        ("opt-level", "s"), ("panic", "abort"),
    )
    # The target's settings override the manifest (cargo's CARGO_PROFILE_* config), debug normalized.
    assert std_profile("release", manifest, {"debug": "full"})[1] == (
        ("debug", "2"), ("opt-level", "s"), ("panic", "abort"),
    )
    assert std_profile("release", {}, {})[1] == ()
    assert std_profile("dev", manifest, {})[1] == (("panic", "abort"),)


def test_lto_asks_for_bitcode_only() -> None:
    assert std_profile("release", {}, {"lto": "thin"}) == ("release", (), True)
    assert std_profile("release", {"release": {"lto": False}}, {}) == ("release", (), False)
    assert std_profile("release", {"release": {"lto": "off"}}, {})[2] is False


def test_custom_profile_inherits() -> None:
    manifest: Dict[str, Dict[str, Any]] = {"kernel": {"inherits": "release", "opt-level": 2}, "release": {"panic": "abort"}}
    assert std_profile("kernel", manifest, {}) == ("release", (("opt-level", "2"), ("panic", "abort")), False)
    with pytest.raises(PackageBuildError, match="neither built in nor declared"):
        std_profile("nope", {}, {})


def test_unparseable_manifest_has_no_profiles() -> None:
    assert manifest_profiles("[package\nname=") == {}
