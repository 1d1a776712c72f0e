"""The driver filter (`hardware.drivers`) on the base-shaped fixture's upstream-format driver
configs: the programs and config entries of dropped drivers go, the rest keeps its bytes."""
from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import pytest

from redox_tools.image.assemble import portable, root_manifest
from redox_tools.image.driver_filter import DriverFilterError, drop_drivers, filter_config
from redox_tools.manifest import Manifest

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "packages/fixtures/base-shaped"


def fixture_text(rel: str) -> str:
    return (FIXTURE / rel).read_text()


def commands(text: str):
    return [d["command"][0] for d in tomllib.loads(text)["drivers"]]


def test_initfs_list_keeps_the_chosen_entries_byte_for_byte():
    text = fixture_text("drivers/initfs.toml")
    out = filter_config(text, {"ided", "nvmed", "virtio-gpud"}, "initfs.toml")
    assert out == (
        "## Drivers for the initfs ##\n\n"
        "# ahcid\n[[drivers]]\nname = \"AHCI storage\"\nclass = 1\nsubclass = 6\n"
        "command = [\"/scheme/initfs/lib/drivers/ahcid\"]\n\n"
        "[[drivers]]\nname = \"virtio-blk\"\nclass = 1\nsubclass = 0\nvendor = 0x1AF4\ndevice = 0x1001\n"
        "command = [\"/scheme/initfs/lib/drivers/virtio-blkd\"]\n\n"
    )
    assert commands(out) == ["/scheme/initfs/lib/drivers/ahcid", "/scheme/initfs/lib/drivers/virtio-blkd"]


def test_xhcid_class_drivers_and_the_comment_above_an_entry():
    text = fixture_text("drivers/usb/xhcid/drivers.toml")
    out = filter_config(text, {"usbhidd"}, "drivers.toml")
    assert out is not None and "keyboards" not in out and "USB HID" not in out
    assert commands(out) == ["usbhubd", "usbscsid"]
    assert out.startswith("# USB class drivers xhcid starts")


def test_nothing_dropped_is_the_same_text_and_nothing_left_is_none():
    text = fixture_text("drivers/net/e1000d/config.toml")
    assert filter_config(text, {"virtio-netd"}, "e1000d.toml") is text
    assert filter_config(text, {"e1000d"}, "e1000d.toml") is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[drivers]]\ncommand = [\"e1000d\"]\n[other]\nx = 1\n", "a driver config holds only `[[drivers]]` entries; found other"),
        ("[[drivers]\n", "not a valid driver config"),
        ("drivers = [{command = [\"e1000d\"]}, {command = [\"ihdad\"]}]\n", "cannot tell its `[[drivers]]` entries apart"),
    ],
)
def test_configs_it_cannot_filter_are_one_error_naming_the_file(text, message):
    with pytest.raises(DriverFilterError) as e:
        filter_config(text, {"e1000d"}, "/usr/lib/pcid.d/x.toml")
    assert str(e.value).startswith("/usr/lib/pcid.d/x.toml: ") and message in str(e.value)


def staged_fixture(tmp: Path) -> Path:
    """The fixture's :drivers and :initfs-drivers trees, installed as their BUILD says."""
    tree = tmp / "tree"
    for name in os.listdir(FIXTURE / "drivers-shaped/rootfs"):
        (tree / "usr/lib/drivers").mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURE / "drivers-shaped/rootfs" / name, tree / "usr/lib/drivers" / name)
    for name in os.listdir(FIXTURE / "drivers-shaped/initfs"):
        (tree / "lib/drivers").mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURE / "drivers-shaped/initfs" / name, tree / "lib/drivers" / name)
    (tree / "usr/lib/pcid.d").mkdir(parents=True)
    for config in sorted((FIXTURE / "drivers").glob("**/config.toml")):
        shutil.copy(config, tree / "usr/lib/pcid.d" / f"{config.parent.name}.toml")
    (tree / "usr/lib/xhcid.d").mkdir(parents=True)
    shutil.copy(FIXTURE / "drivers/usb/xhcid/drivers.toml", tree / "usr/lib/xhcid.d/drivers.toml")
    (tree / "lib/pcid.d").mkdir(parents=True)
    shutil.copy(FIXTURE / "drivers/initfs.toml", tree / "lib/pcid.d/initfs.toml")
    return tree


KEEP = {"ahcid", "e1000d", "usbhubd", "usbscsid", "virtio-blkd", "virtio-netd", "xhcid"}
KNOWN = {
    "ac97d", "ahcid", "e1000d", "ided", "ihdad", "ihdgd", "ixgbed", "nvmed", "rtl8139d", "rtl8168d", "sb16d",
    "usbctl", "usbhidd", "usbhubd", "usbscsid", "vboxd", "virtio-blkd", "virtio-gpud", "virtio-netd", "xhcid",
}


def test_root_manifest_holds_exactly_the_chosen_drivers(tmp_path, monkeypatch):
    tree = staged_fixture(tmp_path)
    monkeypatch.chdir(tmp_path)
    full = root_manifest([f"//fixture={tree}"], [], 0)
    m = root_manifest([f"//fixture={tree}"], [], 0, (), sorted(KNOWN - KEEP), "out.drivers.d")
    files = {"/" + e.path for e in m if e.kind == "file"}
    assert files == {
        "/usr/lib/drivers/e1000d", "/usr/lib/drivers/virtio-netd", "/usr/lib/drivers/xhcid",
        "/usr/lib/pcid.d/e1000d.toml", "/usr/lib/pcid.d/virtio-netd.toml", "/usr/lib/pcid.d/xhcid.toml",
        "/usr/lib/xhcid.d/drivers.toml",
        "/lib/drivers/ahcid", "/lib/drivers/virtio-blkd", "/lib/pcid.d/initfs.toml",
    }
    # untouched files are the tree's own; rewritten ones are new files with their own hash and size
    assert m.get("usr/lib/pcid.d/e1000d.toml") == full.get("usr/lib/pcid.d/e1000d.toml")
    initfs = m.get("lib/pcid.d/initfs.toml")
    assert commands(m.read(initfs).decode()) == ["/scheme/initfs/lib/drivers/ahcid", "/scheme/initfs/lib/drivers/virtio-blkd"]
    assert initfs.size == len(m.read(initfs)) < full.get("lib/pcid.d/initfs.toml").size
    assert commands(m.read(m.get("usr/lib/xhcid.d/drivers.toml")).decode()) == ["usbhubd", "usbscsid"]
    # deterministic: a second run writes the same manifest
    again = root_manifest([f"//fixture={tree}"], [], 0, (), sorted(KNOWN - KEEP), "out.drivers.d")
    assert json.dumps(portable(m, str(tmp_path)).to_json()) == json.dumps(portable(again, str(tmp_path)).to_json())


def test_no_drop_list_changes_nothing(tmp_path):
    tree = staged_fixture(tmp_path)
    full = root_manifest([f"//fixture={tree}"], [], 0)
    assert drop_drivers(full, [], str(tmp_path / "w")) is full
    assert not (tmp_path / "w").exists()


def test_a_bad_config_in_the_tree_names_its_image_path_and_package(tmp_path):
    tree = staged_fixture(tmp_path)
    (tree / "usr/lib/pcid.d/broken.toml").write_text("[[drivers]\n")
    with pytest.raises(DriverFilterError) as e:
        root_manifest([f"//fixture={tree}"], [], 0, (), ["ihdad"], str(tmp_path / "w"))
    assert str(e.value).startswith("/usr/lib/pcid.d/broken.toml (from //fixture): not a valid driver config")


def test_manifest_loaded_back_reads_the_rewritten_config(tmp_path, monkeypatch):
    tree = staged_fixture(tmp_path)
    monkeypatch.chdir(tmp_path)
    m = root_manifest([f"//fixture={tree}"], [], 0, (), ["usbhidd"], "img.drivers.d")
    portable(m, str(tmp_path)).dump(str(tmp_path / "m.json"))
    back = Manifest.load(str(tmp_path / "m.json"))
    assert commands(back.read(back.get("usr/lib/xhcid.d/drivers.toml")).decode()) == ["usbhubd", "usbscsid"]
