"""The built images:selftest holds exactly the drivers its `hardware.drivers` option chose: read
back from the image itself (qcow2 -> GPT -> RedoxFS, and the initfs inside it), not from what
the rules meant to write. The fixture (packages/fixtures/base-shaped :drivers, :initfs-drivers)
installs five rootfs and four initfs drivers with upstream-format pcid/xhcid configs."""
from __future__ import annotations

import tomllib

from redox_tools import qcow2
from redox_tools.formats import gpt
from redox_tools.formats.initfs import InitfsReader
from redox_tools.redoxfs import RedoxFSReader
from redox_tools.packaged_testutil import packaged

IMAGE = "images/selftest.qcow2"  # the test target's runtime_package_dependencies build it


def commands(data: bytes):
    return [d["command"][0] for d in tomllib.loads(data.decode())["drivers"]]


def test_selftest_image_holds_exactly_the_chosen_drivers(tmp_path):
    raw = str(tmp_path / "selftest.img")
    qcow2.to_raw(packaged(IMAGE), raw)
    with open(raw, "rb") as f:
        _h, parts = gpt.read_gpt(f)
        (redox,) = [p for p in parts if p.name == "REDOX"]
        fs = RedoxFSReader(f, offset=redox.first_lba * gpt.LBA, size=redox.size_bytes)
        # rootfs: ihdad and usbhidd are left out, programs and config entries alike
        assert sorted(fs.listdir("/usr/lib/drivers")) == ["e1000d", "virtio-netd", "xhcid"]
        assert sorted(fs.listdir("/usr/lib/pcid.d")) == ["e1000d.toml", "virtio-netd.toml", "xhcid.toml"]
        assert commands(fs.read("/usr/lib/xhcid.d/drivers.toml")) == ["usbhubd", "usbscsid"]
        assert commands(fs.read("/usr/lib/pcid.d/e1000d.toml")) == ["e1000d"]
        initfs = InitfsReader(fs.read("/usr/lib/boot/initfs", limit=1 << 30))
    # initfs: nvmed and virtio-gpud are left out; ided's entry goes too (not chosen)
    assert sorted(initfs.listdir("lib/drivers")) == ["ahcid", "virtio-blkd"]
    assert commands(initfs.read("lib/pcid.d/initfs.toml")) == [
        "/scheme/initfs/lib/drivers/ahcid", "/scheme/initfs/lib/drivers/virtio-blkd"
    ]
    # the rest of the initfs is the target's (the pass-2 daemon and the hello program)
    assert initfs.exists("bin/initd")
