"""The command lines (`python -m redox_tools.sources ...`, `... .pins update`) end to end."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys

import pytest

from redox_tools.sources import __main__ as cli
from redox_tools.sources import pins
from redox_tools.sources.pins import Lock, SourcePin, Submodule, load_lock, write_lock
from redox_tools.sources.testutil import UNREACHABLE_BASE, make_upstream, reference_checkout, url, waited_for_network
from redox_tools.sources.treehash import tree_hash

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git needed")


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    root = tmp_path_factory.mktemp("upstream")
    u = make_upstream(root)
    u.expected_c1 = tree_hash(reference_checkout(u, root / "ref1", u.c1))  # type: ignore[attr-defined]
    u.expected_c2 = tree_hash(reference_checkout(u, root / "ref2", u.c2))  # type: ignore[attr-defined]
    return u


def _lock(tmp_path, up, *extra: SourcePin):
    pin = SourcePin(
        name="proj", git=url(up.proj), rev=up.c1, branch="main", git_tree=up.c1_tree,
        tree_hash=pins.UNVERIFIED_TREE_HASH, packages=("proj",),
        submodules=(Submodule("vendor/libsub", url(up.sub), up.sub_c1),),
    )
    path = tmp_path / "sources.lock.toml"
    write_lock(Lock(sources=(pin,) + extra, generated_from="test"), str(path))
    return path


def _run(*args: str):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True)


def test_fetch_prints_hash_to_record_then_update_writes_it(up, tmp_path, capsys):
    lock = _lock(tmp_path, up)
    assert cli.main(["fetch", "--lock", str(lock), "--name", "proj", "--dest", str(tmp_path / "a"), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"proj: {up.expected_c1} UNVERIFIED" in out and f'record tree_hash = "{up.expected_c1}"' in out

    assert pins.main(["update", "--lock", str(lock)]) == 0
    assert f"proj: tree_hash {pins.UNVERIFIED_TREE_HASH} -> {up.expected_c1}" in capsys.readouterr().out
    assert load_lock(str(lock)).get("proj").tree_hash == up.expected_c1

    assert cli.main(["fetch", "--lock", str(lock), "--name", "proj", "--dest", str(tmp_path / "b"), "-q"]) == 0
    assert f"proj: {up.expected_c1} verified; git tree ok" in capsys.readouterr().out


def test_update_bump_moves_rev_tree_and_submodules(up, tmp_path, capsys):
    lock = _lock(tmp_path, up)
    assert pins.main(["update", "--lock", str(lock), "--only", "proj", "--bump"]) == 0
    out = capsys.readouterr().out
    assert f"proj: rev {up.c1} -> {up.c2}" in out
    pin = load_lock(str(lock)).get("proj")
    assert (pin.rev, pin.git_tree, pin.tree_hash) == (up.c2, up.c2_tree, up.expected_c2)
    assert pin.submodules == (Submodule("vendor/libsub", url(up.sub), up.sub_c2),)
    assert pin.rev_date.startswith("2026-01-01")
    # idempotent
    assert pins.main(["update", "--lock", str(lock), "--bump"]) == 0
    assert "proj: unchanged" in capsys.readouterr().out


def test_update_saves_what_it_could_and_reports_the_rest(up, tmp_path):
    dead = SourcePin(name="dead", git=f"{UNREACHABLE_BASE}/dead.git", rev="a" * 40, tree_hash="unverified: x")
    lock = _lock(tmp_path, up, dead)
    p = _run("redox_tools.sources.pins", "update", "--lock", str(lock))
    assert p.returncode == 2, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "dead" in errors[0] and "unreachable" in errors[0] and "Traceback" not in p.stderr
    assert load_lock(str(lock)).get("proj").tree_hash == up.expected_c1


def test_fetch_all_offline_one_error_line_fast(tmp_path):
    lock = tmp_path / "l.toml"
    write_lock(Lock(sources=(
        SourcePin(name="kernel", git=f"{UNREACHABLE_BASE}/kernel.git", rev="a" * 40, tree_hash="unverified: x"),
        SourcePin(name="relibc", git="https://gitlab.example.invalid/relibc.git", rev="b" * 40,
                  tree_hash="unverified: x"),
    )), str(lock))
    p = _run("redox_tools.sources", "fetch-all", "--lock", str(lock), "--dest", str(tmp_path / "d"),
             "--mirror", str(tmp_path / "m"))
    # fast: refused at once, no network timeout waited for (a hang is the Pants timeout's to catch)
    assert not waited_for_network(p.stderr)
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 2 of 2 sources could not be fetched; unreachable: kernel (")
    assert "relibc (https://gitlab.example.invalid/relibc.git" in lines[0]
    # the command's own option (a Pants option would do nothing here)
    assert "<mirror>/<name>.git" in lines[0] and lines[0].endswith("then pass --mirror <dir> (update-pins: "
                                                                   "./pants run 3rdparty/redox:update-pins -- --mirror <dir>)")


def test_fetch_all_and_treehash_commands(up, tmp_path, capsys):
    lock = _lock(tmp_path, up)
    assert cli.main(["fetch-all", "--lock", str(lock), "--dest", str(tmp_path / "all"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "fetched 1 sources into" in out and "1 with unverified tree_hash" in out
    assert cli.main(["treehash", str(tmp_path / "all" / "proj")]) == 0
    assert capsys.readouterr().out.strip() == up.expected_c1
    p = _run("redox_tools.sources", "fetch", "--lock", str(lock), "--name", "nope", "--dest", str(tmp_path / "x"))
    assert p.returncode == 2 and p.stderr.startswith("error: no source named 'nope'")


def test_update_writes_a_missing_patch_from_its_origin(up, tmp_path, capsys):
    # The patch lives in a "build repo" (like recipes/core/uutils/redox.patch in redox.git).
    from redox_tools.sources.pins import PatchRef
    from redox_tools.sources.testutil import commit_all, git

    build = tmp_path / "build-repo"
    (build / "recipes" / "proj").mkdir(parents=True)
    git("init", "-q", cwd=build)
    patch_text = "--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n-hello 1\n+patched\n line 2\n line 3\n"
    (build / "recipes" / "proj" / "fix.patch").write_text(patch_text)
    build_rev = commit_all(build, "recipe patch")
    lock = _lock(tmp_path, up)
    lk = load_lock(str(lock))
    pin = lk.get("proj")
    origin = f"{url(build)}@{build_rev}:recipes/proj/fix.patch"
    pin = dataclasses.replace(pin, patches=(PatchRef(file="patches/proj/fix.patch", origin=origin),))
    write_lock(lk.replace(pin), str(lock))

    assert pins.main(["update", "--lock", str(lock)]) == 0
    out = capsys.readouterr().out
    assert f"proj: wrote patch patches/proj/fix.patch from {origin}" in out
    assert (tmp_path / "patches" / "proj" / "fix.patch").read_text() == patch_text
    # ...and the recorded tree hash is that of the patched tree.
    assert load_lock(str(lock)).get("proj").tree_hash not in (up.expected_c1, pins.UNVERIFIED_TREE_HASH)

    # An origin that is not `<url>@<rev>:<path>` -> one error naming the patch and what to do.
    bad = dataclasses.replace(pin, patches=(PatchRef(file="patches/proj/other.patch", origin="somewhere"),))
    write_lock(lk.replace(bad), str(lock))
    p = _run("redox_tools.sources.pins", "update", "--lock", str(lock))
    assert p.returncode != 0 and "other.patch is missing and its origin 'somewhere'" in p.stderr
    assert "Traceback" not in p.stderr
