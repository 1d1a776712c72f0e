"""The pure parts of git dependency vendoring: lock parsing, manifest normalization, layout,
the cargo config, and the crate mirror's fingerprint."""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from redox_tools.builders.cargo_build import cargo_config
from redox_tools.errors import ToolError
from redox_tools.sources.cargo_git import (
    GitDependencyError,
    GitSource,
    copy_crate,
    dump_manifest,
    find_crates,
    lock_git_sources,
    normalize_manifest,
    parse_git_source,
    read_index,
    vendor_git_sources,
)
from redox_tools.sources.vendor import crate_mirror_fingerprint, crates_io_mirror

C = "a" * 40


@pytest.mark.parametrize(
    "source, kind, ref",
    [
        (f"git+https://github.com/repnop/fdt.git?rev=2fb1409#{C}", "rev", "2fb1409"),
        (f"git+https://gitlab.redox-os.org/redox-os/syscall.git?branch=master#{C}", "branch", "master"),
        (f"git+https://example.org/x?tag=v1.0#{C}", "tag", "v1.0"),
        (f"git+https://example.org/x.git#{C}", "", ""),
    ],
)
def test_parse_git_source(source, kind, ref):
    gs = parse_git_source(source)
    assert (gs.ref_kind, gs.ref, gs.commit) == (kind, ref, C)
    assert gs.source == source.split("#")[0] and gs.url.startswith("https://") and "?" not in gs.url
    assert gs.config_table() == ({"git": gs.url, kind: ref} if kind else {"git": gs.url})


def test_repo_name_and_dir_name():
    gs = parse_git_source(f"git+https://github.com/repnop/fdt.git?rev=x#{C}")
    assert gs.repo_name == "fdt" and gs.dir_name.startswith("fdt-") and len(gs.dir_name) == 16
    other = parse_git_source(f"git+https://github.com/repnop/fdt.git?rev=y#{C}")
    assert other.dir_name != gs.dir_name  # one directory per source (url + reference)


@pytest.mark.parametrize("bad", [f"registry+https://x#{C}", "git+https://x?rev=1", "git+https://x#abc", f"git+https://x?rev=1&tag=2#{C}"])
def test_malformed_git_source(bad):
    with pytest.raises(GitDependencyError):
        parse_git_source(bad)


def test_lock_git_sources_groups_crates(tmp_path):
    lock = tmp_path / "Cargo.lock"
    lock.write_text(
        'version = 4\n[[package]]\nname = "app"\nversion = "0.1.0"\n'
        f'[[package]]\nname = "a"\nversion = "1.0.0"\nsource = "git+https://e.org/r?branch=main#{C}"\n'
        f'[[package]]\nname = "b"\nversion = "2.0.0"\nsource = "git+https://e.org/r?branch=main#{C}"\n'
        '[[package]]\nname = "c"\nversion = "1.0.0"\nsource = "registry+https://github.com/rust-lang/crates.io-index"\n'
    )
    got = lock_git_sources(str(lock))
    assert [(gs.url, [c.dir_name for c in crates]) for gs, crates in got.items()] == [
        ("https://e.org/r", ["a-1.0.0", "b-2.0.0"])
    ]


def _write(root: Path, files: dict) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


WORKSPACE = {
    "Cargo.toml": (
        '[workspace]\nmembers = ["crates/core", "crates/util"]\n'
        '[workspace.package]\nversion = "0.9.1"\nedition = "2021"\nreadme = "README.md"\n'
        '[workspace.dependencies]\nutil = { path = "crates/util", version = "0.9", features = ["a"] }\n'
        'bitflags = "2"\n'
    ),
    "README.md": "readme\n",
    "crates/core/Cargo.toml": (
        '[package]\nname = "core-x"\nversion.workspace = true\nedition.workspace = true\nreadme.workspace = true\n'
        '[dependencies]\nutil = { workspace = true, features = ["b"], optional = true }\nbitflags.workspace = true\n'
        '[target.\'cfg(unix)\'.dev-dependencies]\nbitflags = { workspace = true }\n'
        '[lints]\nworkspace = true\n'
    ),
    "crates/core/src/lib.rs": "",
    "crates/core/tests/data/Cargo.toml": '[package]\nname = "nested-test-data"\nversion = "0.0.1"\n',
    "crates/core/tests/data/x.txt": "x",
    "crates/util/Cargo.toml": '[package]\nname = "util"\nversion = "0.9.1"\n',
}


def test_normalize_resolves_workspace_inheritance(tmp_path):
    root = _write(tmp_path / "repo", WORKSPACE)
    norm = normalize_manifest(str(root / "crates/core/Cargo.toml"), str(root))
    assert norm is not None
    assert norm["package"] == {"name": "core-x", "version": "0.9.1", "edition": "2021", "readme": "../../README.md"}
    assert norm["dependencies"] == {
        "util": {"path": "../util", "version": "0.9", "features": ["a", "b"], "optional": True},
        "bitflags": {"version": "2"},
    }
    assert norm["target"]["cfg(unix)"]["dev-dependencies"] == {"bitflags": {"version": "2"}}
    assert "lints" not in norm and "workspace" not in norm
    text = dump_manifest(norm)
    assert tomllib.loads(text) == norm  # the written TOML reads back the same
    assert dump_manifest(norm) == text
    assert normalize_manifest(str(root / "crates/util/Cargo.toml"), str(root)) is None  # nothing to do


def test_normalize_names_what_it_cannot_resolve(tmp_path):
    root = _write(tmp_path / "repo", {
        "Cargo.toml": '[workspace]\nmembers = ["a"]\n',
        "a/Cargo.toml": '[package]\nname = "a"\nversion = "1.0.0"\n[dependencies]\nx.workspace = true\n',
    })
    with pytest.raises(GitDependencyError, match="dependency `x` has `workspace = true` but the workspace root has no"):
        normalize_manifest(str(root / "a/Cargo.toml"), str(root))


def test_find_crates_with_inherited_versions(tmp_path):
    root = _write(tmp_path / "repo", WORKSPACE)
    found = find_crates(str(root))
    assert found[("core-x", "0.9.1")] == str(root / "crates/core")
    assert ("util", "0.9.1") in found and ("nested-test-data", "0.0.1") in found


def test_copy_crate_leaves_out_nested_packages_and_refuses_escaping_links(tmp_path):
    root = _write(tmp_path / "repo", WORKSPACE)
    os.symlink("../../README.md", root / "crates/core/README.md")
    dest = tmp_path / "out" / "core-x-0.9.1"
    copy_crate(str(root / "crates/core"), str(root), str(dest), "[package]\nname = \"core-x\"\n")
    sums = json.loads((dest / ".cargo-checksum.json").read_text())
    assert sums["package"] is None and sorted(sums["files"]) == ["Cargo.toml", "README.md", "src/lib.rs"]
    assert (dest / "README.md").read_text() == "readme\n" and not (dest / "README.md").is_symlink()
    os.symlink("/etc/passwd", root / "crates/core/passwd")
    with pytest.raises(GitDependencyError, match="links outside the repository"):
        copy_crate(str(root / "crates/core"), str(root), str(tmp_path / "out2"), None)


def test_vendor_git_sources_reports_every_problem_at_once(tmp_path):
    repo = _write(tmp_path / "repo", WORKSPACE)
    lock = tmp_path / "Cargo.lock"
    lock.write_text(
        'version = 4\n'
        f'[[package]]\nname = "core-x"\nversion = "0.9.1"\nsource = "git+https://e.org/ws?branch=main#{C}"\n'
        f'[[package]]\nname = "util"\nversion = "0.8.0"\nsource = "git+https://e.org/ws?branch=main#{C}"\n'
        f'[[package]]\nname = "gone"\nversion = "1.0.0"\nsource = "git+https://e.org/gone?rev=1#{"b" * 40}"\n'
    )

    def fetch(gs: GitSource, dest: str) -> None:
        if "gone" in gs.url:
            raise ToolError(f"{gs.url} unreachable (offline)")
        import shutil

        shutil.copytree(repo, dest)

    out = tmp_path / "out"
    with pytest.raises(GitDependencyError) as e:
        vendor_git_sources(str(lock), str(out), fetch, "pkg:x")
    lines = str(e.value).splitlines()
    assert lines == [
        f"pkg:x: crate util-0.8.0 is not in https://e.org/ws at {'a' * 12} (it has util 0.9.1)",
        f"pkg:x: git dependency gone (git+https://e.org/gone?rev=1#{'b' * 12}): https://e.org/gone unreachable (offline)",
    ]
    assert os.listdir(out) == []  # nothing half-written
    lock.write_text(lock.read_text().replace('"0.8.0"', '"0.9.1"').split("[[package]]\nname = \"gone\"")[0])
    vendor_git_sources(str(lock), str(out), fetch, "pkg:x")
    (src,) = read_index(str(out))
    assert sorted(os.listdir(src.directory)) == ["core-x-0.9.1", "util-0.9.1"]
    config = cargo_config("/v", [src])
    parsed = tomllib.loads(config)
    assert parsed["source"]["crates-io"] == {"replace-with": "redox-pants-vendor"}
    assert parsed["source"]["git+https://e.org/ws?branch=main"] == {
        "git": "https://e.org/ws", "branch": "main", "replace-with": "redox-pants-git-0"
    }
    assert parsed["source"]["redox-pants-git-0"] == {"directory": src.directory}
    assert parsed["net"] == {"offline": True}


def test_crates_io_mirror_and_fingerprint(tmp_path):
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "a-1.0.0.crate").write_bytes(b"1")
    config = f'[source.crates-io]\nreplace-with = "m"\n[source.m]\nlocal-registry = "{reg}"\n'
    assert crates_io_mirror(tomllib.loads(config)) == ("local-registry", str(reg))
    assert crates_io_mirror({}) is None
    first = crate_mirror_fingerprint(config)
    assert crate_mirror_fingerprint(config) == first
    (reg / "b-1.0.0.crate").write_bytes(b"2")
    second = crate_mirror_fingerprint(config)
    assert second != first  # changing the mirror changes the vendor step's cache key
    assert crate_mirror_fingerprint("") != second
