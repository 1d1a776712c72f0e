"""Writers never follow a link planted at their temporary or output paths (issue 11 #3)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from redox_tools.formats import fat
from redox_tools.image.diskimage_test import PLUGINS, build
from redox_tools.manifest import Manifest
from redox_tools.safeio import atomic_output, copy_new, create_new

MiB = 1 << 20


def plant(tmp_path, names):
    """Symlinks at every predictable temporary name, all pointing at one victim file."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    for n in names:
        os.symlink(victim, tmp_path / n)
    return victim


def test_disk_image_does_not_write_through_a_planted_temp_link(tmp_path):
    victim = plant(tmp_path, [f".disk.img.tmp-{os.getpid()}", "disk.img.tmp"])
    out, _info, _w = build(tmp_path)
    assert victim.read_bytes() == b"precious"
    assert not os.path.islink(out) and os.path.getsize(out) == 64 * MiB


def test_disk_image_replaces_a_link_at_the_output_path(tmp_path):
    victim = plant(tmp_path, ["disk.img"])
    out, _info, _w = build(tmp_path)
    assert victim.read_bytes() == b"precious" and not os.path.islink(out)


def test_fat_image_does_not_write_through_a_planted_temp_link(tmp_path):
    img = tmp_path / "esp.img"
    victim = plant(tmp_path, [f"esp.img.tmp-{os.getpid()}"])
    fat.make_fat_image(str(img), size=MiB, files={"A.TXT": b"a"})
    assert victim.read_bytes() == b"precious" and not os.path.islink(img)
    assert fat.FatReader(open(img, "rb"), 0, MiB).read("A.TXT") == b"a"


def test_mkfs_redoxfs_does_not_write_through_a_planted_temp_link(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_bytes(b"x")
    man = tmp_path / "m.json"
    Manifest.from_tree(str(tree), relative_to=str(tmp_path)).dump(str(man))
    out = tmp_path / "rfs.img"
    # the pid of the child is unknown: plant the parent's and a range around it
    victim = plant(tmp_path, [f"rfs.img.tmp-{p}" for p in range(os.getpid(), os.getpid() + 64)])
    p = subprocess.run([sys.executable, "-m", "redox_tools.redoxfs", "create", "--manifest", str(man), "-o", str(out), "--size", "4M"],
                       cwd=PLUGINS, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert victim.read_bytes() == b"precious" and not os.path.islink(out)


def test_manifest_dump_does_not_write_through_a_planted_temp_link(tmp_path):
    victim = plant(tmp_path, ["m.json.tmp"])
    Manifest([]).dump(str(tmp_path / "m.json"))
    assert victim.read_bytes() == b"precious"


def test_helpers(tmp_path):
    victim = plant(tmp_path, ["link"])
    with pytest.raises(FileExistsError):
        create_new(str(tmp_path / "link"))
    copy_new(str(victim), str(tmp_path / "link"))  # the link is replaced, not followed
    assert not os.path.islink(tmp_path / "link") and victim.read_bytes() == b"precious"
    with pytest.raises(RuntimeError):
        with atomic_output(str(tmp_path / "out")) as f:
            f.write(b"half")
            raise RuntimeError
    assert sorted(os.listdir(tmp_path)) == ["link", "victim"]  # nothing half-written
