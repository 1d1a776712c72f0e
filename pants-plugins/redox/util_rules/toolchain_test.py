from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Dict, List

import pytest
from pants.core.util_rules import archive, system_binaries
from pants.engine.fs import DigestContents
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import QueryRule, RuleRunner

from redox.util_rules import toolchain
from redox.util_rules.toolchain import RedoxToolchain, RedoxToolchainRequest

HOST = "x86_64-unknown-linux-gnu"
SYSTEM_PATH = {"PATH": "/usr/bin:/bin"}


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(
        rules=[
            *toolchain.rules(),
            *archive.rules(),
            *system_binaries.rules(),
            QueryRule(RedoxToolchain, [RedoxToolchainRequest]),
            QueryRule(DigestContents, [toolchain.Digest]),
        ],
    )


def toolchain_for(rule_runner: RuleRunner, triple: str, *args: str, needs_rust_src: bool = True) -> RedoxToolchain:
    rule_runner.set_options(list(args), env_inherit={"PATH"})
    return rule_runner.request(RedoxToolchain, [RedoxToolchainRequest(triple, needs_rust_src)])


def error_of(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


# --- system provider (the real Debian toolchain on this machine) ---------------------------------


def test_system_provider_finds_debian_toolchain(rule_runner: RuleRunner) -> None:
    tc = toolchain_for(rule_runner, "x86_64-unknown-redox", "--redox-toolchain-provider=system")
    assert tc.provider == "system"
    assert tc.tools["rustc"] == "/usr/bin/rustc"
    assert tc.tools["cargo"] == "/usr/bin/cargo"
    assert tc.tools["lld"].startswith("/usr/bin/ld.lld")
    assert os.path.isfile(os.path.join(tc.rust_src, "library/core/Cargo.toml"))
    assert os.path.isdir(tc.std_vendor)
    assert len(tc.fingerprint) == 64
    # Host tools: nothing to mount into sandboxes.
    assert tc.immutable_input_digests == {}


def test_system_provider_missing_linker_names_tool_and_package(rule_runner: RuleRunner, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    for name in ("rustc", "cargo"):
        os.symlink(f"/usr/bin/{name}", empty / name)
    with pytest.raises(ExecutionError) as excinfo:
        toolchain_for(
            rule_runner, "x86_64-unknown-redox", "--redox-toolchain-provider=system",
            f"--redox-toolchain-search-path=['{empty}']",
        )
    msg = error_of(excinfo)
    assert "no lld (ld.lld-22 or ld.lld)" in msg
    assert "install lld-22" in msg


def test_system_provider_without_rust_src(rule_runner: RuleRunner, tmp_path: Path) -> None:
    # A rustc whose sysroot has no rust-src: a wrapper script reporting an empty sysroot.
    fake = tmp_path / "bin"
    fake.mkdir()
    sysroot = tmp_path / "sysroot"
    sysroot.mkdir()
    (fake / "rustc").write_text(
        f'#!/bin/sh\nif [ "$1" = "--print" ]; then echo {sysroot}; else exec /usr/bin/rustc "$@"; fi\n'
    )
    (fake / "rustc").chmod(0o755)
    for name in ("cargo", "ld.lld-22"):
        os.symlink(f"/usr/bin/{name}", fake / name)
    args = ["--redox-toolchain-provider=system", f"--redox-toolchain-search-path=['{fake}']"]
    with pytest.raises(ExecutionError) as excinfo:
        toolchain_for(rule_runner, "x86_64-unknown-redox", *args)
    assert "has no rust-src" in error_of(excinfo)
    assert "rust-web-src" in error_of(excinfo)
    # Host builds without build-std do not need it.
    tc = toolchain_for(rule_runner, "host", *args, needs_rust_src=False)
    assert tc.rust_src == ""


def test_unknown_triple(rule_runner: RuleRunner) -> None:
    with pytest.raises(ExecutionError) as excinfo:
        toolchain_for(rule_runner, "sparc-sun-solaris", "--redox-toolchain-provider=system")
    assert "unknown target triple 'sparc-sun-solaris'" in error_of(excinfo)


# --- download provider, against file:// archives shaped like the Rust dist ones ---------------------


def dist_archive(top: str, component: str, files: Dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{top}/{component}/{rel}")
            info.size = len(data)
            info.mode = 0o755 if rel.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))
        components = f"{component}\n".encode()
        info = tarfile.TarInfo(f"{top}/components")
        info.size = len(components)
        tar.addfile(info, io.BytesIO(components))
    return buf.getvalue()


def write_mirror(tmp_path: Path, date: str = "2026-05-24") -> List[str]:
    archives = {
        ("rustc", HOST): dist_archive(f"rustc-nightly-{HOST}", "rustc", {"bin/rustc": b"#!/bin/sh\necho rustc\n"}),
        ("cargo", HOST): dist_archive(f"cargo-nightly-{HOST}", "cargo", {"bin/cargo": b"#!/bin/sh\necho cargo\n"}),
        ("rust-std", HOST): dist_archive(
            f"rust-std-nightly-{HOST}", f"rust-std-{HOST}", {f"lib/rustlib/{HOST}/lib/libcore.rlib": b"rlib"}
        ),
        ("rust-src", ""): dist_archive(
            "rust-src-nightly", "rust-src", {"lib/rustlib/src/rust/library/core/Cargo.toml": b"[package]\n"}
        ),
    }
    pins = []
    for (component, triple), data in archives.items():
        name = f"{component}-nightly" + (f"-{triple}" if triple else "") + ".tar.xz"
        (tmp_path / name).write_bytes(data)
        pins.append(f"{date}|{component}|{triple}|{hashlib.sha256(data).hexdigest()}|{len(data)}")
    return pins


def download_args(tmp_path: Path, pins: List[str]) -> List[str]:
    return [
        "--redox-toolchain-provider=download",
        f"--redox-toolchain-url-template=file://{tmp_path}/{{component}}-nightly-{{archive_triple}}.tar.xz",
        f"--redox-toolchain-known-versions={pins!r}",
    ]


def test_download_provider_assembles_a_sysroot(rule_runner: RuleRunner, tmp_path: Path) -> None:
    pins = write_mirror(tmp_path)
    tc = toolchain_for(rule_runner, "x86_64-unknown-redox", *download_args(tmp_path, pins))
    assert tc.provider == "download"
    assert tc.tools["rustc"] == "__redox_toolchain/bin/rustc"
    assert tc.rust_src == "__redox_toolchain/lib/rustlib/src/rust"
    contents = {fc.path: fc for fc in rule_runner.request(DigestContents, [tc.digest])}
    assert contents["bin/rustc"].is_executable
    assert contents["bin/cargo"].content == b"#!/bin/sh\necho cargo\n"
    assert f"lib/rustlib/{HOST}/lib/libcore.rlib" in contents
    assert "lib/rustlib/src/rust/library/core/Cargo.toml" in contents
    assert tc.immutable_input_digests == {"__redox_toolchain": tc.digest}


def test_download_provider_refuses_a_tampered_archive(rule_runner: RuleRunner, tmp_path: Path) -> None:
    pins = write_mirror(tmp_path)
    (tmp_path / "rust-src-nightly.tar.xz").write_bytes(b"not the pinned archive")
    with pytest.raises(ExecutionError) as excinfo:
        toolchain_for(rule_runner, "x86_64-unknown-redox", *download_args(tmp_path, pins))
    assert "provider=download: cannot fetch the Rust nightly 2026-05-24" in error_of(excinfo)


def test_download_provider_offline_fails_with_one_clear_line(rule_runner: RuleRunner, tmp_path: Path) -> None:
    pins = write_mirror(tmp_path)
    args = download_args(tmp_path, pins)
    # Port 9 on loopback is closed: the same failure as an unreachable server, but immediate.
    args[1] = "--redox-toolchain-url-template=http://127.0.0.1:9/dist/{date}/{component}-nightly-{archive_triple}.tar.xz"
    with pytest.raises(ExecutionError) as excinfo:
        toolchain_for(rule_runner, "x86_64-unknown-redox", *args)
    msg = error_of(excinfo)
    assert "cannot fetch the Rust nightly" in msg
    assert "use provider=system" in msg


def test_download_provider_without_pins(rule_runner: RuleRunner) -> None:
    with pytest.raises(ExecutionError) as excinfo:
        toolchain_for(rule_runner, "x86_64-unknown-redox", "--redox-toolchain-provider=download")
    msg = error_of(excinfo)
    assert "no pinned sha256 for nightly 2026-05-24" in msg
    assert "rust-src" in msg
