"""cargo_vendor with the real cargo (offline here: the registry is pointed at a closed port)."""
from __future__ import annotations

import os
import shutil

import pytest

from redox_tools.errors import ToolError
from redox_tools.sources.vendor import VendorUnreachable, cargo_vendor

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
CFG_IF_SUM = "9330f8b2ff13f34540b44e946ef35111825727b38d33286ef986142615121801"


def _crate(tmp_path, deps: bool):
    c = tmp_path / "crate"
    (c / "src").mkdir(parents=True)
    (c / "Cargo.toml").write_text(
        '[package]\nname = "c"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\n' + ('cfg-if = "1"\n' if deps else "")
    )
    (c / "src" / "main.rs").write_text("fn main() {}\n")
    pkgs = [{"name": "c", "version": "0.1.0"}]
    if deps:
        pkgs.append({"name": "cfg-if", "version": "1.0.4", "source": CRATES_IO, "checksum": CFG_IF_SUM})
    text = "version = 4\n" + "".join(
        "\n[[package]]\n" + "".join(f'{k} = "{v}"\n' for k, v in p.items()) for p in pkgs
    )
    (c / "Cargo.lock").write_text(text)
    return c


CARGO = shutil.which("cargo", path="/usr/bin") or shutil.which("cargo")
needs_cargo = pytest.mark.skipif(CARGO is None, reason="cargo not installed")


@needs_cargo
def test_cargo_vendor_offline_fails_fast_naming_the_crate(tmp_path):
    c = _crate(tmp_path, deps=True)
    home = tmp_path / "cargo-home"
    home.mkdir()
    # An unreachable registry index, whether or not this machine is online (crates.io is
    # reachable on some machines): source replacement is only read from config files, not env.
    (home / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "dead"\n[source.dead]\nregistry = "sparse+https://127.0.0.1:9/index/"\n'
    )
    env = dict(os.environ, CARGO_HOME=str(home))
    with pytest.raises(VendorUnreachable) as e:
        cargo_vendor(str(c), str(tmp_path / "vendor"), cargo=CARGO, env=env, name="demo")
    msg = str(e.value)
    assert msg.startswith("demo: crates.io unreachable (") and "connected machine" in msg and "\n" not in msg


@needs_cargo
def test_cargo_vendor_without_dependencies_and_missing_lock(tmp_path):
    c = _crate(tmp_path, deps=False)
    env = dict(os.environ, CARGO_HOME=str(tmp_path / "cargo-home"))
    cargo_vendor(str(c), str(tmp_path / "vendor"), cargo=CARGO, env=env)
    os.unlink(c / "Cargo.lock")
    with pytest.raises(ToolError, match="Cargo.lock not found; --locked"):
        cargo_vendor(str(c), str(tmp_path / "vendor"), cargo=CARGO, env=env)
