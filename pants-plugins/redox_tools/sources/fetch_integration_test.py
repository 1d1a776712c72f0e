"""The fetch phase against real git/patch with upstreams made here (file:// URLs)."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from redox_tools.errors import ToolError
from redox_tools.sources.fetch import (
    PatchFailed,
    RevNotFound,
    SourcesUnavailable,
    SourceUnreachable,
    TreeHashMismatch,
    fetch_all,
    fetch_source,
    safe_extract,
    update_pins,
)
from redox_tools.sources.pins import Lock, PatchRef, SourcePin, Submodule
from redox_tools.sources.testutil import (
    UNREACHABLE_BASE,
    bare_mirror,
    git,
    make_tar_gz,
    make_upstream,
    reference_checkout,
    url,
    waited_for_network,
)
from redox_tools.sources.treehash import tree_hash

pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("patch") is None,
                                reason="git and patch needed")


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    root = tmp_path_factory.mktemp("upstream")
    u = make_upstream(root)
    ref = reference_checkout(u, root / "ref-c1", u.c1)
    u.expected_c1 = tree_hash(ref)  # type: ignore[attr-defined]
    u.ref_c1 = ref  # type: ignore[attr-defined]
    return u


def pin_for(up, **kw) -> SourcePin:
    base = dict(
        name="proj", git=url(up.proj), rev=up.c1, git_tree=up.c1_tree, tree_hash="unverified: test",
        submodules=(Submodule("vendor/libsub", url(up.sub), up.sub_c1),),
    )
    base.update(kw)
    return SourcePin(**base)


def test_fetches_the_pinned_rev_with_submodule_not_the_later_commit(up, tmp_path):
    res = fetch_source(pin_for(up), str(tmp_path / "out"))
    out = tmp_path / "out"
    assert (out / "a.txt").read_text() == "hello 1\nline 2\nline 3\n"  # c1, not c2
    assert (out / "vendor" / "libsub" / "sub.txt").read_text() == "submodule v1\n"
    assert os.access(out / "run.sh", os.X_OK) and os.readlink(out / "link") == "a.txt"
    assert not (out / ".git").exists() and not (out / "vendor" / "libsub" / ".git").exists()
    assert res.git_tree == up.c1_tree and res.rev == up.c1
    # same hash as a checkout made by `git clone --recursive` itself
    assert res.tree_hash == up.expected_c1 and not res.tree_hash_verified
    assert any(f'tree_hash = "{up.expected_c1}"' in n for n in res.notes)
    assert not (tmp_path / "out.partial").exists()


def test_verified_tree_hash_and_keep_git(up, tmp_path):
    res = fetch_source(pin_for(up, tree_hash=up.expected_c1), str(tmp_path / "o"), keep_git=True)
    assert res.tree_hash_verified and res.notes == ()
    assert git("rev-parse", "HEAD", cwd=tmp_path / "o") == up.c1
    assert git("rev-parse", "HEAD", cwd=tmp_path / "o" / "vendor" / "libsub") == up.sub_c1


def test_tree_hash_mismatch_names_expected_actual_and_update(up, tmp_path):
    wrong = "sha256:" + "0" * 64
    with pytest.raises(TreeHashMismatch) as e:
        fetch_source(pin_for(up, tree_hash=wrong), str(tmp_path / "o"))
    msg = str(e.value)
    assert "[sources.proj]" in msg and wrong in msg and up.expected_c1 in msg and "pin update" in msg
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_git_tree_mismatch(up, tmp_path):
    with pytest.raises(TreeHashMismatch, match="git tree .* the lock says git_tree = " + up.c2_tree):
        fetch_source(pin_for(up, git_tree=up.c2_tree), str(tmp_path / "o"))


def test_rev_not_found(up, tmp_path):
    bad = "1" * 40
    with pytest.raises(RevNotFound) as e:
        fetch_source(pin_for(up, rev=bad), str(tmp_path / "o"))
    assert bad in str(e.value) and "[sources.proj]" in str(e.value) and "--bump" in str(e.value)


def test_unpinned_or_wrong_submodule_is_refused(up, tmp_path):
    with pytest.raises(ToolError, match="submodule vendor/libsub .* does not list"):
        fetch_source(pin_for(up, submodules=()), str(tmp_path / "a"))
    with pytest.raises(ToolError, match="pinned at " + up.sub_c2):
        fetch_source(pin_for(up, submodules=(Submodule("vendor/libsub", url(up.sub), up.sub_c2),)), str(tmp_path / "b"))
    extra = (Submodule("vendor/libsub", url(up.sub), up.sub_c1), Submodule("nope", url(up.sub), up.sub_c1))
    with pytest.raises(ToolError, match="lists submodule\\(s\\) nope"):
        fetch_source(pin_for(up, submodules=extra), str(tmp_path / "c"))


def _patch(tmp_path: Path, old: str, new: str) -> Path:
    p = tmp_path / "fix.patch"
    p.write_text(
        "--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n"
        f"-{old}\n+{new}\n line 2\n line 3\n"
    )
    return p


def test_patch_applied_then_hash_verified(up, tmp_path):
    p = _patch(tmp_path, "hello 1", "patched")
    pin = pin_for(up, patches=(PatchRef(file="fix.patch", base_dir=str(tmp_path)),))
    res = fetch_source(pin, str(tmp_path / "o"))
    assert (tmp_path / "o" / "a.txt").read_text() == "patched\nline 2\nline 3\n"
    assert res.tree_hash != up.expected_c1
    again = fetch_source(dataclasses.replace(pin, tree_hash=res.tree_hash), str(tmp_path / "o2"))
    assert again.tree_hash_verified
    assert not list((tmp_path / "o").rglob("*.orig")) and not list((tmp_path / "o").rglob("*.rej"))
    assert p.exists()


def test_patch_that_does_not_apply(up, tmp_path):
    _patch(tmp_path, "something else", "patched")
    pin = pin_for(up, patches=(PatchRef(file="fix.patch", base_dir=str(tmp_path)),))
    with pytest.raises(PatchFailed) as e:
        fetch_source(pin, str(tmp_path / "o"))
    msg = str(e.value)
    assert "[sources.proj]" in msg and "fix.patch does not apply" in msg and "a.txt" in msg and "FAILED" in msg
    assert "\n" not in msg


def test_missing_patch_file_says_where_to_get_it(up, tmp_path):
    pin = pin_for(up, patches=(PatchRef(file="patches/proj/x.patch", origin="redox.git@abc:recipes/x.patch",
                                        base_dir=str(tmp_path)),))
    with pytest.raises(PatchFailed, match="x.patch not found .*copy it from redox.git@abc:recipes/x.patch"):
        fetch_source(pin, str(tmp_path / "o"))


def test_unreachable_url_fails_fast_with_one_line(up, tmp_path):
    pin = pin_for(up, git=f"{UNREACHABLE_BASE}/proj.git")
    with pytest.raises(SourceUnreachable) as e:
        fetch_source(pin, str(tmp_path / "o"), mirror_dirs=[str(tmp_path / "empty-mirror")])
    msg = str(e.value)
    assert "\n" not in msg and not waited_for_network(msg)  # refused at once: no timeout waited for
    assert f"{UNREACHABLE_BASE}/proj.git unreachable" in msg
    assert "<mirror>/proj or a bare mirror to <mirror>/proj.git" in msg and "[redox-sources].mirror_dirs" in msg


def test_git_error_classified_as_unreachable_without_probe(up, tmp_path):
    # a file:// URL whose directory is missing: no network at all, still "unreachable"
    pin = pin_for(up, git=url(tmp_path / "gone" / "proj.git"))
    with pytest.raises(SourceUnreachable, match="unreachable \\(no such file or directory"):
        fetch_source(pin, str(tmp_path / "o"))


def test_bare_mirrors_offline(up, tmp_path):
    mirror = tmp_path / "mirror"
    bare_mirror(up.proj, mirror / "proj.git")
    bare_mirror(up.sub, mirror / "libsub.git")
    pin = pin_for(
        up, git=f"{UNREACHABLE_BASE}/proj.git", tree_hash=up.expected_c1,
        submodules=(Submodule("vendor/libsub", f"{UNREACHABLE_BASE}/libsub.git", up.sub_c1),),
    )
    res = fetch_source(pin, str(tmp_path / "o"), mirror_dirs=[str(mirror)])
    assert res.tree_hash_verified and res.origin == str(mirror / "proj.git")


def test_mirror_by_repo_name_and_git_checkout_with_submodule(up, tmp_path):
    # `<mirror>/<repo name>` (not the source name) holding a recursive clone: the submodule is
    # taken from the clone's own checkout.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    reference_checkout(up, mirror / "proj", up.c2)  # HEAD elsewhere: the pinned rev is fetched from it
    pin = pin_for(
        up, name="project", git=f"{UNREACHABLE_BASE}/proj.git", tree_hash=up.expected_c1,
        submodules=(Submodule("vendor/libsub", f"{UNREACHABLE_BASE}/libsub.git", up.sub_c1),),
    )
    res = fetch_source(pin, str(tmp_path / "o"), mirror_dirs=[str(mirror)])
    assert res.tree_hash_verified and (tmp_path / "o" / "a.txt").read_text().startswith("hello 1")


def test_mirror_without_the_rev_is_named(up, tmp_path):
    mirror = tmp_path / "mirror"
    bare_mirror(up.sub, mirror / "proj.git")  # wrong repository: lacks c1
    pin = pin_for(up, git=f"{UNREACHABLE_BASE}/proj.git")
    with pytest.raises(SourceUnreachable, match="mirror .*proj.git lacks " + up.c1[:12]):
        fetch_source(pin, str(tmp_path / "o"), mirror_dirs=[str(mirror)])


def test_prefetched_plain_checkout_verified_and_tampered(up, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(up.ref_c1, mirror / "proj", symlinks=True, ignore=shutil.ignore_patterns(".git"))
    offline = pin_for(up, git=f"{UNREACHABLE_BASE}/proj.git", tree_hash=up.expected_c1)
    res = fetch_source(offline, str(tmp_path / "ok"), mirror_dirs=[str(mirror)])
    assert res.tree_hash_verified and res.origin == str(mirror / "proj")

    (mirror / "proj" / "dir" / "b.txt").write_text("tampered\n")
    with pytest.raises(TreeHashMismatch, match="expected " + up.expected_c1):
        fetch_source(offline, str(tmp_path / "bad"), mirror_dirs=[str(mirror)])

    # without a verified tree hash a plain copy cannot be trusted: say so
    with pytest.raises(SourceUnreachable, match="plain mirror copy .* no verified tree_hash"):
        fetch_source(dataclasses.replace(offline, tree_hash="unverified: x"), str(tmp_path / "u"),
                     mirror_dirs=[str(mirror)])


def test_plain_copy_used_when_a_bare_mirror_beside_it_lacks_the_rev(up, tmp_path):
    # Every form in every mirror dir before giving up: M1/proj.git lacks c1 (stale), M2/proj is a
    # plain copy of c1 -> the copy is used, checked by the tree hash.
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    bare_mirror(up.sub, m1 / "proj.git")
    bare_mirror(up.sub, m2 / "proj.git")
    shutil.copytree(up.ref_c1, m2 / "proj", symlinks=True, ignore=shutil.ignore_patterns(".git"))
    offline = pin_for(up, git=f"{UNREACHABLE_BASE}/proj.git", tree_hash=up.expected_c1)
    res = fetch_source(offline, str(tmp_path / "ok"), mirror_dirs=[str(m1), str(m2)])
    assert res.tree_hash_verified and res.origin == str(m2 / "proj")


def test_dest_must_be_empty_unless_replace(up, tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "old").write_text("x")
    with pytest.raises(ToolError, match="exists and is not empty"):
        fetch_source(pin_for(up), str(tmp_path / "o"))
    fetch_source(pin_for(up), str(tmp_path / "o"), replace=True)
    assert not (tmp_path / "o" / "old").exists()


def test_fetch_all_lists_every_unreachable_source_in_one_error(up, tmp_path):
    pins = [
        pin_for(up, name="good"),
        pin_for(up, name="alpha", git=f"{UNREACHABLE_BASE}/alpha.git"),
        pin_for(up, name="beta", git="https://nonexistent.invalid/beta.git"),
        pin_for(up, name="gamma", submodules=(Submodule("vendor/libsub", f"{UNREACHABLE_BASE}/libsub.git", up.sub_c1),)),
        pin_for(up, name="delta", tree_hash="sha256:" + "1" * 64),
    ]
    with pytest.raises(SourcesUnavailable) as e:
        fetch_all(pins, str(tmp_path / "all"), connect_timeout=3)
    err = e.value
    msg = str(err)
    assert not waited_for_network(msg)  # every unreachable source refused at once: no timeout waited for
    assert "\n" not in msg and msg.startswith("4 of 5 sources could not be fetched")
    assert {u.name for u in err.unreachable} == {"alpha", "beta", "gamma"}
    for frag in (f"alpha ({UNREACHABLE_BASE}/alpha.git", "beta (https://nonexistent.invalid/beta.git",
                 f"gamma (submodule libsub {UNREACHABLE_BASE}/libsub.git", "then pass --mirror <dir>",
                 "failed: [sources.delta]: tree hash mismatch"):
        assert frag in msg
    assert [r.name for r in err.results] == ["good"] and (tmp_path / "all" / "good" / "a.txt").exists()


def test_fetch_all_ok(up, tmp_path):
    res = fetch_all([pin_for(up, name="x"), pin_for(up, name="y", tree_hash=up.expected_c1)], str(tmp_path / "d"))
    assert [r.name for r in res] == ["x", "y"] and res[1].tree_hash_verified


# ------------------------------------------------------------------------------------------
# archives


def _archive(tmp_path: Path, name: str = "pkg-1.0.tar.gz", **kw) -> Path:
    return make_tar_gz(
        tmp_path / name,
        {"README": b"readme\n", "bin/tool": b"#!/bin/sh\n", "src/x.c": b"int x;\n"},
        modes={"bin/tool": 0o755}, symlinks={"docs": "src"}, **kw,
    )


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_archive_pin_sha256_ok_and_mismatch(tmp_path):
    arc = _archive(tmp_path)
    pin = SourcePin(name="pkg", archive_url=url(arc), archive_sha256=_sha(arc), tree_hash="unverified: x")
    res = fetch_source(pin, str(tmp_path / "o"))
    o = tmp_path / "o"
    assert (o / "README").read_bytes() == b"readme\n" and os.access(o / "bin" / "tool", os.X_OK)
    assert os.readlink(o / "docs") == "src" and res.rev == "" and res.git_tree == ""
    res2 = fetch_source(dataclasses.replace(pin, tree_hash=res.tree_hash), str(tmp_path / "o2"))
    assert res2.tree_hash_verified

    with pytest.raises(TreeHashMismatch, match="archive .* has sha256 .* the lock says archive_sha256 = " + "a" * 64):
        fetch_source(dataclasses.replace(pin, archive_sha256="a" * 64), str(tmp_path / "o3"))


def test_archive_without_recorded_sha256_is_refused_until_update_records_it(tmp_path):
    arc = _archive(tmp_path)
    pin = SourcePin(name="pkg", archive_url=url(arc), archive_sha256="unverified: upstream publishes none",
                    tree_hash="unverified: x")
    with pytest.raises(TreeHashMismatch, match="the lock has no sha256 for .*pins update --only pkg"):
        fetch_source(pin, str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()
    lock = Lock(sources=(pin,))
    new_lock, lines = update_pins(lock)
    recorded = new_lock.get("pkg")
    assert recorded.archive_sha256 == _sha(arc) and recorded.tree_hash_verified
    assert any(ln.startswith("pkg: archive_sha256 unverified") for ln in lines)
    assert fetch_source(recorded, str(tmp_path / "o2")).tree_hash_verified


def test_archive_from_mirror_when_offline(tmp_path):
    arc = _archive(tmp_path)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(arc, mirror / arc.name)
    pin = SourcePin(name="pkg", archive_url=f"{UNREACHABLE_BASE}/dl/{arc.name}", archive_sha256=_sha(arc),
                    tree_hash="unverified: x")
    res = fetch_source(pin, str(tmp_path / "o"), mirror_dirs=[str(mirror)])
    assert res.origin == str(mirror / arc.name)
    with pytest.raises(SourceUnreachable, match="unreachable") as e:
        fetch_source(pin, str(tmp_path / "o2"))
    assert not waited_for_network(str(e.value))


@pytest.mark.parametrize(
    "raw,why",
    [("../evil", "'..'"), ("/abs/evil", "absolute"), ("pkg-1.0/../../evil", "'..'")],
)
def test_unsafe_archive_members_refused(tmp_path, raw, why):
    arc = _archive(tmp_path, raw_names=[raw])
    with pytest.raises(ToolError, match=why):
        safe_extract(str(arc), str(tmp_path / "x"), 1)
    assert not (tmp_path / "evil").exists()


def test_escaping_symlink_refused(tmp_path):
    arc = make_tar_gz(tmp_path / "s.tar.gz", {}, symlinks={"up": "../../etc"})
    with pytest.raises(ToolError, match="points outside"):
        safe_extract(str(arc), str(tmp_path / "x"), 1)


def test_falls_back_to_full_fetch_when_server_refuses_shallow_by_sha(up, tmp_path):
    # Protocol v0 upload-pack refuses unadvertised commits (c1 is not a branch tip).
    env = dict(os.environ, GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="protocol.version", GIT_CONFIG_VALUE_0="0")
    log = []
    res = fetch_source(pin_for(up, tree_hash=up.expected_c1), str(tmp_path / "o"), env=env, log=log.append)
    assert res.tree_hash_verified
    assert any("shallow fetch of " + up.c1[:12] + " refused" in line for line in log), log


def test_fetch_all_offline_from_a_recursive_clone_in_the_mirror(up, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    reference_checkout(up, mirror / "proj", up.c1)
    pin = pin_for(up, git=f"{UNREACHABLE_BASE}/proj.git", tree_hash=up.expected_c1,
                  submodules=(Submodule("vendor/libsub", f"{UNREACHABLE_BASE}/libsub.git", up.sub_c1),))
    res = fetch_all([pin], str(tmp_path / "d"), mirror_dirs=[str(mirror)])
    assert res[0].tree_hash_verified
