from __future__ import annotations

import os
from pathlib import Path

import pytest

from redox_tools.sources.pins import (
    UNVERIFIED_TREE_HASH,
    LockError,
    dump_lock,
    load_catalog,
    load_lock,
    lock_from_catalog,
    main,
    parse_lock,
    split_submodule_url,
    write_lock,
)

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]  # pants: no-infer-dep

# Declared inputs (3rdparty/redox:lock and :catalog), at their repository paths both in a Pants
# sandbox and in a checkout. The catalog is the committed copy of ../shared/data/redox-packages.toml
# (3rdparty/tools/check-catalog says whether the two agree): Pants cannot declare a file outside
# the build root, and a test must not read one it does not track.
ROOT = Path(__file__).resolve().parents[3]
CATALOG = str(ROOT / "3rdparty" / "redox" / "redox-packages.toml")
COMMITTED_LOCK = str(ROOT / "3rdparty" / "redox" / "sources.lock.toml")


def test_declared_inputs_are_present():
    for path in (CATALOG, COMMITTED_LOCK):
        assert os.path.isfile(path), f"{path} is missing: it must be a declared input of this test"

MINI_CATALOG = """
[catalog]
schema_version = 1
build_repo = "https://example.org/redox.git"
build_repo_rev = "ffffffffffffffffffffffffffffffffffffffff"

[packages.one]
recipe = "recipes/core/one/recipe.toml"
upstream_git = "https://example.org/one.git"
pin_rev = "1111111111111111111111111111111111111111"
pin_rev_date = "2026-01-01T00:00:00+00:00"
pin_tree = "2222222222222222222222222222222222222222"
pin_basis = "recipe rev"
snapshot_stale = "yes"
stale_evidence = "newer upstream"
pin_rev_recommended = "3333333333333333333333333333333333333333"
pin_rev_recommended_note = "unverified: newer"
patches = ["redox.patch"]
submodules = [{ path = "m", url = "https://example.org/m.git (branch main)", commit = "4444444444444444444444444444444444444444" }]
unverified = ["unverified: \\"quoted\\" thing"]

[packages.two]
upstream_git = "https://example.org/one.git"
pin_rev = "1111111111111111111111111111111111111111"
pin_tree = "2222222222222222222222222222222222222222"
unverified = ["unverified: two-only"]

[packages.nopin]
upstream_git = "https://example.org/np.git"
pin_rev = ""
recipe_branch = "dev"
"""


def _mini(tmp_path):
    return lock_from_catalog(tomllib.loads(MINI_CATALOG), "mini.toml")


def test_from_catalog_groups_shared_repos_and_keeps_notes(tmp_path):
    lock = _mini(tmp_path)
    assert [p.name for p in lock.sources] == ["one"]
    one = lock.sources[0]
    assert one.packages == ("one", "two") and one.git_tree == "2" * 40 and one.tree_hash == UNVERIFIED_TREE_HASH
    assert one.submodules[0].url == "https://example.org/m.git" and one.submodules[0].branch == "main"
    assert one.patches[0].file == "patches/one/redox.patch"
    assert one.patches[0].origin == "https://example.org/redox.git@" + "f" * 40 + ":recipes/core/one/redox.patch"
    assert 'unverified: "quoted" thing' in one.notes and "two: unverified: two-only" in one.notes
    assert any(n.startswith("pin_rev_recommended 3333") for n in one.notes)
    assert lock.skipped == ("nopin: no pin_rev; recipe tracks branch dev of https://example.org/np.git",)


def test_write_and_load_round_trip(tmp_path):
    lock = _mini(tmp_path)
    path = tmp_path / "3rdparty" / "sources.lock.toml"
    write_lock(lock, str(path))
    back = load_lock(str(path))
    assert dump_lock(back) == path.read_text() == dump_lock(lock)
    assert back.sources[0].patches[0].path == str(tmp_path / "3rdparty" / "patches" / "one" / "redox.patch")
    assert back.get("one").rev == "1" * 40
    with pytest.raises(LockError, match="no source named 'zz'.*known: one"):
        back.get("zz")


def _lock_text(body: str) -> str:
    return '[lock]\nformat = 1\n\n[sources.x]\n' + body


@pytest.mark.parametrize(
    "body,match",
    [
        ('git = "u"\nrev = "main"\ntree_hash = "unverified"\n', r"\[sources.x\]: rev must be a full commit id"),
        ('git = "u"\nrev = "' + "a" * 40 + '"\ntree_hash = ""\n', r"\[sources.x\]: tree_hash must be"),
        ('git = "u"\nrev = "' + "a" * 40 + '"\n', r"\[sources.x\]: `tree_hash` is missing"),
        ('git = "u"\nrev = "' + "a" * 40 + '"\ntree_hash = "sha256:xyz"\n', "tree_hash must be"),
        ('archive = "u"\narchive_sha256 = "12"\ntree_hash = "unverified"\n', "archive_sha256 must be"),
        ('git = "u"\narchive = "v"\ntree_hash = "unverified"\n', "exactly one of"),
        ('git = "u"\nrev = "' + "a" * 40 + '"\ntree_hash = "unverified"\nrevision = 1\n', "unknown key\\(s\\) revision"),
        ('git = "u"\nrev = "' + "a" * 40 + '"\ntree_hash = "unverified"\nsubmodules = [{path = "../x", url = "u", commit = "'
         + "b" * 40 + '"}]\n', "submodule path '../x'"),
        ('git = "u"\nrev = "' + "a" * 40 + '"\ntree_hash = "unverified"\ngit_tree = "zz"\n', "git_tree must be"),
    ],
)
def test_validation_errors_name_the_entry(tmp_path, body, match):
    p = tmp_path / "l.toml"
    p.write_text(_lock_text(body))
    with pytest.raises(LockError, match=match) as e:
        load_lock(str(p))
    assert str(e.value).startswith(str(p) + ": ")


def test_missing_lock_and_bad_format(tmp_path):
    with pytest.raises(LockError, match="not found; generate it"):
        load_lock(str(tmp_path / "nope.toml"))
    with pytest.raises(LockError, match="format must be 1"):
        parse_lock({"lock": {"format": 2}})
    (tmp_path / "bad.toml").write_text("[lock\n")
    with pytest.raises(LockError, match="not valid TOML"):
        load_lock(str(tmp_path / "bad.toml"))


def test_split_submodule_url():
    assert split_submodule_url("https://a/b.git (branch master)") == ("https://a/b.git", "master")
    assert split_submodule_url("https://a/b") == ("https://a/b", "")


def test_real_catalog_generates_the_core_pins(tmp_path):
    cat = load_catalog(CATALOG)
    lock = lock_from_catalog(cat)
    for name in ("kernel", "relibc", "bootloader", "base"):
        pin = lock.get(name)
        assert pin.rev == cat["packages"][name]["pin_rev"]
        assert pin.git == cat["packages"][name]["upstream_git"]
        assert pin.git_tree == cat["packages"][name]["pin_tree"]
        assert not pin.tree_hash_verified
    assert lock.get("base").packages == ("base", "redox-initfs")
    assert [s.path for s in lock.get("relibc").submodules] == ["dlmalloc-rs", "openlibm"]
    assert len(lock.get("bat").submodules) == 93
    helix = lock.get("helix")  # no examined rev: pinned to the candidate, marked unverified
    assert helix.rev == cat["packages"]["helix"]["pin_rev_candidate"] and helix.basis.startswith("unverified:")
    assert helix.branch == "port-to-redoxos"
    out = tmp_path / "l.toml"
    assert main(["generate", "--catalog", CATALOG, "-o", str(out)]) == 0
    assert out.read_text() == dump_lock(lock)  # stable output


def test_committed_lock_parses_and_matches_the_catalog():
    lock = load_lock(COMMITTED_LOCK)
    names = {p.name for p in lock.sources}
    assert {"kernel", "relibc", "bootloader", "base"} <= names
    cat = load_catalog(CATALOG)
    for pin in lock.sources:
        for pkg in pin.packages:
            if pkg not in cat["packages"]:  # hand-added (gcc-prefix -> libgcc): a catalog `other_packages` entry
                assert pkg in cat["other_packages"] and pin.kind == "archive", pkg
                continue
            p = cat["packages"][pkg]
            assert pin.rev == (p["pin_rev"] or p["pin_rev_candidate"]), pkg


def test_show(tmp_path, capsys):
    path = tmp_path / "l.toml"
    write_lock(_mini(tmp_path), str(path))
    assert main(["show", "--lock", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("one ") and "UNVERIFIED" in out and "+1 submodules +1 patches" in out
