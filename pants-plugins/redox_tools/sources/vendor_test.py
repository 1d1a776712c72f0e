from __future__ import annotations

import json
import os

import pytest

from redox_tools.sources.vendor import VendorIncomplete, check_vendor, read_lock_packages

STD_VENDOR = "/usr/src/rustc-1.96.0/library/vendor"
needs_std = pytest.mark.skipif(not os.path.isdir(STD_VENDOR), reason="rust-src vendor dir not installed")
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
CFG_IF_SUM = "9330f8b2ff13f34540b44e946ef35111825727b38d33286ef986142615121801"


def _lock(tmp_path, packages, header="version = 4\n"):
    text = header
    for p in packages:
        text += "\n[[package]]\n" + "".join(f'{k} = "{v}"\n' for k, v in p.items())
    path = tmp_path / "Cargo.lock"
    path.write_text(text)
    return str(path)


@needs_std
def test_std_vendor_dir_reports_every_missing_crate(tmp_path):
    lock = _lock(tmp_path, [
        {"name": "app", "version": "0.1.0"},
        {"name": "cfg-if", "version": "1.0.4", "source": CRATES_IO, "checksum": CFG_IF_SUM},
        {"name": "libc", "version": "0.2.183", "source": CRATES_IO},
        {"name": "serde", "version": "1.0.200", "source": CRATES_IO},
        {"name": "zzz", "version": "0.0.1", "source": CRATES_IO},
        {"name": "foo", "version": "0.1.0", "source": "git+https://example.org/foo?branch=x#abc"},
    ])
    res = check_vendor(lock, [STD_VENDOR], raise_on_error=False)
    assert sorted(p.dir_name for p in res.found) == ["cfg-if-1.0.4", "libc-0.2.183"]
    assert [p.dir_name for p in res.missing] == ["serde-1.0.200", "zzz-0.0.1", "foo-0.1.0"]
    with pytest.raises(VendorIncomplete) as e:
        check_vendor(lock, [STD_VENDOR])
    msg = str(e.value)
    assert "3 locked crate(s) missing from " + STD_VENDOR in msg
    assert "foo-0.1.0 (git), serde-1.0.200, zzz-0.0.1" in msg and "cargo vendor --locked --versioned-dirs" in msg
    assert "\n" not in msg
    only_registry = check_vendor(lock, [STD_VENDOR], include_git=False, raise_on_error=False)
    assert [p.name for p in only_registry.missing] == ["serde", "zzz"]


@needs_std
def test_checksum_mismatch_is_reported(tmp_path):
    lock = _lock(tmp_path, [{"name": "cfg-if", "version": "1.0.4", "source": CRATES_IO, "checksum": "0" * 64}])
    with pytest.raises(VendorIncomplete, match=r"1 vendored crate\(s\) differ from the lock: cfg-if-1.0.4"):
        check_vendor(lock, [STD_VENDOR])


@needs_std
def test_std_lock_against_its_own_vendor_dir():
    # The Debian rust-src vendor holds what std needs, not the test/windows-only crates.
    res = check_vendor("/usr/src/rustc-1.96.0/library/Cargo.lock", [STD_VENDOR], raise_on_error=False)
    assert len(res.found) == len(os.listdir(STD_VENDOR)) and not res.mismatched
    assert any(p.name == "rand" for p in res.missing)


def test_several_dirs_default_layout_and_v1_metadata_checksums(tmp_path):
    v1 = tmp_path / "v1"
    v2 = tmp_path / "v2"
    (v1 / "mycrate").mkdir(parents=True)  # cargo's default layout: no version in the name
    (v1 / "mycrate" / "Cargo.toml").write_text('[package]\nname = "mycrate"\nversion = "0.3.0"\n')
    (v1 / "mycrate" / ".cargo-checksum.json").write_text(json.dumps({"files": {}, "package": "ab" * 32}))
    (v2 / "other-1.2.3").mkdir(parents=True)
    (v2 / "other-1.2.3" / "Cargo.toml").write_text('[package]\nname = "other"\nversion = "1.2.3"\n')
    (v2 / "other-1.2.3" / ".cargo-checksum.json").write_text(json.dumps({"files": {}, "package": None}))
    lock = _lock(tmp_path, [
        {"name": "mycrate", "version": "0.3.0", "source": CRATES_IO},
        {"name": "other", "version": "1.2.3", "source": CRATES_IO},
    ], header=(
        f'[metadata]\n"checksum mycrate 0.3.0 ({CRATES_IO})" = "{"ab" * 32}"\n'
        f'"checksum other 1.2.3 ({CRATES_IO})" = "<none>"\n'
    ))
    assert [p.checksum for p in read_lock_packages(lock)] == ["ab" * 32, ""]
    assert len(check_vendor(lock, [str(v1), str(v2)]).found) == 2
    with pytest.raises(VendorIncomplete, match="missing from .*v1: other-1.2.3"):
        check_vendor(lock, [str(v1)])
    with pytest.raises(VendorIncomplete, match="does not exist"):
        check_vendor(lock, [str(tmp_path / "nope")])
