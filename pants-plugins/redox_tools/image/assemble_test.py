"""`python -m redox_tools.image.assemble`: staged trees -> root manifest -> initfs / GPT disk image."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from redox_tools.formats import gpt
from redox_tools.image import assemble
from redox_tools.image.assemble import main, parse_file, parse_tree, root_manifest
from redox_tools.errors import ManifestError, ToolError
from redox_tools.formats.initfs import InitfsReader

PLUGINS = Path(__file__).resolve().parents[2]
EPOCH = 1700000000
ODD_MTIME = 123456789  # what the host says; must never reach an image
ODD_UID = 4321


def tree(root: Path, files: Dict[str, Tuple[bytes, int]]) -> Path:
    """A staged tree with the given files (path -> (content, mode)) and odd host mtimes."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, (data, mode) in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(mode)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (ODD_MTIME, ODD_MTIME))
            if os.geteuid() == 0:  # odd host owners too, where we may
                os.chown(os.path.join(dirpath, n), ODD_UID, ODD_UID)
    return root


def two_trees(tmp: Path) -> Tuple[Path, Path]:
    a = tree(tmp / "a", {"usr/bin/hello": (b"\x7fELF hello", 0o755), "etc/motd": (b"hi\n", 0o644)})
    b = tree(tmp / "b", {"usr/lib/libx.a": (b"!<arch>\n", 0o644), "etc/hostname": (b"redox\n", 0o644)})
    return a, b


def cli(*args: str, cwd: Path) -> Tuple[int, str, str]:
    p = subprocess.run(
        [sys.executable, "-m", "redox_tools.image.assemble", *args],
        cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PLUGINS)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    return p.returncode, p.stdout, p.stderr


def manifest_entries(path: Path) -> Dict[str, dict]:
    data = json.loads(path.read_text())
    assert data["version"] == 1
    return {e["path"]: e for e in data["entries"]}


# --- argument parsing ---------------------------------------------------------------------------


def test_parse_tree_and_file() -> None:
    assert parse_tree("//pkg:a=__staged/a") == ("//pkg:a", "__staged/a")
    assert parse_file("/etc/x=host/x:600") == ("/etc/x", "host/x", 0o600)
    assert parse_file("/etc/x=host/x") == ("/etc/x", "host/x", None)
    for bad in ("noequals", "=dir", "origin="):
        with pytest.raises(ToolError, match="expected ORIGIN=DIR"):
            parse_tree(bad)
    with pytest.raises(ToolError, match="mode '9z' is not octal"):
        parse_file("/etc/x=host/x:9z")
    with pytest.raises(ToolError, match="expected /IMAGE/PATH=HOSTFILE"):
        parse_file("/etc/x")


# --- merging trees ------------------------------------------------------------------------------


def test_merge_two_trees_manifest(tmp_path: Path) -> None:
    a, b = two_trees(tmp_path)
    m = root_manifest([f"//pkg:a={a}", f"//pkg:b={b}"], [], EPOCH)
    paths = [e.path for e in m]
    assert paths == ["etc", "etc/hostname", "etc/motd", "usr", "usr/bin", "usr/bin/hello", "usr/lib", "usr/lib/libx.a"]
    hello = m.get("usr/bin/hello")
    assert hello is not None and hello.mode == 0o755 and hello.origin == "//pkg:a"
    assert m.get("usr/lib/libx.a").origin == "//pkg:b"  # type: ignore[union-attr]
    assert os.path.isabs(hello.source or "") and m.read(hello) == b"\x7fELF hello"
    for e in m:
        assert (e.uid, e.gid, e.mtime) == (0, 0, EPOCH), e


def test_conflict_names_both_origins(tmp_path: Path) -> None:
    a = tree(tmp_path / "a", {"etc/motd": (b"from a\n", 0o644)})
    b = tree(tmp_path / "b", {"etc/motd": (b"from b\n", 0o644)})
    with pytest.raises(ManifestError) as e:
        root_manifest([f"packages/a:a={a}", f"packages/b:b={b}"], [], 0)
    msg = str(e.value)
    assert "conflict at /etc/motd" in msg and "packages/a:a" in msg and "packages/b:b" in msg
    # the same through the CLI: one error line, exit 2, no output written
    code, out, err = cli("disk", "--tree", f"packages/a:a={a}", "--tree", f"packages/b:b={b}", "--efi", "/dev/null",
                         "--no-require-boot-files", "--manifest-out", "root.json", "-o", "img/disk.img", cwd=tmp_path)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert "packages/a:a" in errors[0] and "packages/b:b" in errors[0] and "/etc/motd" in errors[0]
    assert not (tmp_path / "img" / "disk.img").exists() and not (tmp_path / "root.json").exists()


def test_conflict_mode_only(tmp_path: Path) -> None:
    a = tree(tmp_path / "a", {"bin/x": (b"same", 0o755)})
    b = tree(tmp_path / "b", {"bin/x": (b"same", 0o644)})
    with pytest.raises(ManifestError, match=r"conflict at /bin/x: A installs a file .*mode 755.* and B .*mode 644"):
        root_manifest([f"A={a}", f"B={b}"], [], 0)


def test_identical_file_from_two_trees_ok(tmp_path: Path) -> None:
    a = tree(tmp_path / "a", {"etc/motd": (b"same\n", 0o644), "bin/a": (b"a", 0o755)})
    b = tree(tmp_path / "b", {"etc/motd": (b"same\n", 0o644), "bin/b": (b"b", 0o755)})
    os.utime(b / "etc" / "motd", (5, 5))  # a different host mtime does not make it different
    m = root_manifest([f"A={a}", f"B={b}"], [], EPOCH)
    assert [e.path for e in m] == ["bin", "bin/a", "bin/b", "etc", "etc/motd"]
    assert m.read(m.get("etc/motd")) == b"same\n"  # type: ignore[arg-type]


def test_file_option_with_and_without_mode(tmp_path: Path) -> None:
    (tmp_path / "motd").write_text("welcome\n")
    (tmp_path / "tool").write_bytes(b"#!/bin/sh\n")
    (tmp_path / "tool").chmod(0o755)
    os.utime(tmp_path / "motd", (ODD_MTIME, ODD_MTIME))
    m = root_manifest([], [f"/etc/motd={tmp_path / 'motd'}:600", f"/usr/bin/tool={tmp_path / 'tool'}",
                           f"etc/plain={tmp_path / 'motd'}"], EPOCH)
    motd, tool, plain = m.get("etc/motd"), m.get("usr/bin/tool"), m.get("etc/plain")
    assert motd is not None and motd.mode == 0o600 and motd.origin == "--file /etc/motd" and motd.mtime == EPOCH
    assert tool is not None and tool.mode == 0o755
    assert plain is not None and plain.mode == 0o644
    assert m.get("etc") is not None and m.get("etc").mtime == EPOCH  # type: ignore[union-attr]
    with pytest.raises(ManifestError, match=r"--file /etc/x: .*nope is not a file"):
        root_manifest([], [f"/etc/x={tmp_path / 'nope'}"], 0)
    with pytest.raises(ManifestError, match=r"'\.\.'"):
        root_manifest([], [f"/../x={tmp_path / 'motd'}"], 0)


def test_file_option_conflicts_with_tree(tmp_path: Path) -> None:
    a = tree(tmp_path / "a", {"etc/motd": (b"tree\n", 0o644)})
    (tmp_path / "motd").write_text("file\n")
    with pytest.raises(ManifestError, match=r"conflict at /etc/motd: .*pkg:a.*--file /etc/motd"):
        root_manifest([f"pkg:a={a}"], [f"/etc/motd={tmp_path / 'motd'}"], 0)


def test_manifest_out_never_leaks_host_times_or_owners(tmp_path: Path) -> None:
    a, b = two_trees(tmp_path)
    (tmp_path / "f").write_text("x")
    os.utime(tmp_path / "f", (ODD_MTIME, ODD_MTIME))
    code, out, err = cli("disk", "--tree", f"A={a}", "--tree", f"B={b}", "--file", f"/etc/f={tmp_path / 'f'}",
                         "--efi", str(efi(tmp_path)), "--no-require-boot-files", "--size", "16M",
                         "--manifest-out", "root.json", "-o", "disk.img", cwd=tmp_path)
    assert code == 0, err
    entries = manifest_entries(tmp_path / "root.json")
    assert len(entries) == 9
    for e in entries.values():
        assert (e["uid"], e["gid"], e["mtime"]) == (0, 0, 0), e  # SOURCE_DATE_EPOCH unset -> 0
    assert str(ODD_MTIME) not in (tmp_path / "root.json").read_text()


def test_source_date_epoch_from_environment(tmp_path: Path) -> None:
    a, _ = two_trees(tmp_path)
    p = subprocess.run(
        [sys.executable, "-m", "redox_tools.image.assemble", "disk", "--tree", f"A={a}", "--efi", str(efi(tmp_path)),
         "--no-require-boot-files", "--size", "16M", "--manifest-out", "root.json", "-o", "disk.img"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PLUGINS), "SOURCE_DATE_EPOCH": str(EPOCH)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert p.returncode == 0, p.stderr
    assert {e["mtime"] for e in manifest_entries(tmp_path / "root.json").values()} == {EPOCH}


# --- initfs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from redox_tools.formats import initfs_integration_test as it

    if it.RUSTC is None or it.LLD is None:
        pytest.skip("/usr/bin/rustc or ld.lld not installed")
    d = tmp_path_factory.mktemp("bootstrap")
    boot = it.build_bootstrap(d, bss_in_data=True)
    path = d / "bootstrap.elf"
    path.write_bytes(boot)
    return path


def test_initfs_subcommand(tmp_path: Path, bootstrap: Path) -> None:
    a, b = two_trees(tmp_path)
    out = tmp_path / "out" / "initfs.img"
    assert main(["initfs", "--tree", f"A={a}", "--tree", f"B={b}", "--file", f"/etc/extra={bootstrap}:600",
                 "--bootstrap", str(bootstrap), "--source-date-epoch", str(EPOCH),
                 "--manifest-out", str(tmp_path / "root.json"), "-o", str(out)]) == 0
    data = out.read_bytes()
    r = InitfsReader(data)
    r.check()
    assert data[0x1000:0x1000 + bootstrap.stat().st_size] == bootstrap.read_bytes()
    assert r.read("usr/bin/hello") == b"\x7fELF hello" and r.stat("usr/bin/hello").executable
    assert r.read("etc/motd") == b"hi\n" and not r.stat("etc/motd").executable
    assert r.read("usr/lib/libx.a") == b"!<arch>\n"
    assert r.read("etc/extra") == bootstrap.read_bytes()
    assert sorted(r.listdir("etc")) == ["extra", "hostname", "motd"]
    assert {e["mtime"] for e in manifest_entries(tmp_path / "root.json").values()} == {EPOCH}
    # determinism: other trees with the same content, other host times -> the same bytes
    a2, b2 = two_trees(tmp_path / "again")
    for p in (a2 / "etc" / "motd", b2 / "usr"):
        os.utime(p, (1, 1))
    out2 = tmp_path / "initfs2.img"
    assert main(["initfs", "--tree", f"A={a2}", "--tree", f"B={b2}", "--file", f"/etc/extra={bootstrap}:600",
                 "--bootstrap", str(bootstrap), "--source-date-epoch", str(EPOCH), "-o", str(out2)]) == 0
    assert out2.read_bytes() == data


def test_initfs_bad_bootstrap_cli(tmp_path: Path) -> None:
    a, _ = two_trees(tmp_path)
    (tmp_path / "notelf").write_bytes(b"not an ELF at all" * 10)
    code, out, err = cli("initfs", "--tree", f"A={a}", "--bootstrap", "notelf", "-o", "initfs.img", cwd=tmp_path)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "initfs.img").exists()


# --- disk ---------------------------------------------------------------------------------------


def efi(tmp: Path) -> Path:
    p = tmp / "BOOTX64.EFI"
    p.write_bytes(b"MZ" + b"\x90" * 1000 + b"fake-efi-end")
    return p


def boot_tree(tmp: Path) -> Path:
    return tree(tmp / "boot", {"usr/lib/boot/kernel": (b"\x7fELF kernel", 0o644),
                               "usr/lib/boot/initfs": (b"RedoxFtw initfs", 0o644)})


def read_disk(img: Path) -> Tuple[List[gpt.Partition], object]:
    from redox_tools.redoxfs import RedoxFSReader

    with open(img, "rb") as f:
        _hdr, parts = gpt.read_gpt(f)
    f = open(img, "rb")
    redox = next(p for p in parts if p.name == "REDOX")
    return parts, RedoxFSReader(f, offset=redox.first_lba * gpt.LBA)


def test_disk_subcommand(tmp_path: Path) -> None:
    a, b = two_trees(tmp_path)
    boot = boot_tree(tmp_path)
    img = tmp_path / "out" / "disk.img"
    assert main(["disk", "--tree", f"A={a}", "--tree", f"B={b}", "--tree", f"boot={boot}",
                 "--file", f"/etc/extra={efi(tmp_path)}:600", "--efi", str(efi(tmp_path)), "--size", "16M",
                 "--source-date-epoch", str(EPOCH), "-o", str(img)]) == 0
    assert img.stat().st_size == 16 << 20
    parts, fs = read_disk(img)
    assert [p.name for p in parts] == ["BIOS", "EFI", "REDOX"]
    esp = parts[1]
    with open(img, "rb") as f:
        f.seek(esp.first_lba * gpt.LBA)
        assert efi(tmp_path).read_bytes() in f.read(esp.size_bytes)
    assert fs.read("usr/lib/boot/kernel") == b"\x7fELF kernel"  # type: ignore[attr-defined]
    assert fs.read("usr/lib/boot/initfs") == b"RedoxFtw initfs"  # type: ignore[attr-defined]
    assert fs.read("usr/bin/hello") == b"\x7fELF hello"  # type: ignore[attr-defined]
    st = fs.stat("usr/bin/hello")  # type: ignore[attr-defined]
    assert st.perm == 0o755 and (st.uid, st.gid) == (0, 0) and st.mtime == EPOCH
    assert fs.stat("etc/extra").perm == 0o600  # type: ignore[attr-defined]
    for path, st in fs.walk("/"):  # type: ignore[attr-defined]
        assert (st.uid, st.gid, st.mtime) == (0, 0, EPOCH), (path, st)
    # reproducible: the same inputs from other directories give identical bytes
    tmp2 = tmp_path / "again"
    a2, b2 = two_trees(tmp2)
    boot2 = boot_tree(tmp2)
    img2 = tmp2 / "disk.img"
    assert main(["disk", "--tree", f"A={a2}", "--tree", f"B={b2}", "--tree", f"boot={boot2}",
                 "--file", f"/etc/extra={efi(tmp2)}:600", "--efi", str(efi(tmp2)), "--size", "16M",
                 "--source-date-epoch", str(EPOCH), "-o", str(img2)]) == 0
    assert img2.read_bytes() == img.read_bytes()


def test_disk_qcow2_is_the_raw_image(tmp_path: Path) -> None:
    """`--format qcow2` (what the image rule asks for) holds exactly the raw image's bytes, is a
    fraction of its size, and leaves no raw temporary behind; back to raw it is byte-identical."""
    a, b = two_trees(tmp_path)
    boot = boot_tree(tmp_path)
    common = ["disk", "--tree", f"A={a}", "--tree", f"B={b}", "--tree", f"boot={boot}", "--efi", str(efi(tmp_path)),
              "--size", "64M", "--source-date-epoch", str(EPOCH)]
    assert main([*common, "-o", str(tmp_path / "raw" / "disk.img")]) == 0
    assert main([*common, "--format", "qcow2", "-o", str(tmp_path / "q" / "disk.qcow2")]) == 0
    assert os.listdir(tmp_path / "q") == ["disk.qcow2"]
    raw, img = tmp_path / "raw" / "disk.img", tmp_path / "q" / "disk.qcow2"
    from redox_tools import qcow2

    qcow2.to_raw(str(img), str(tmp_path / "back.img"))
    assert (tmp_path / "back.img").read_bytes() == raw.read_bytes()
    print(f"64 MiB image: raw {raw.stat().st_size} bytes ({raw.stat().st_blocks * 512} on disk), "
          f"qcow2 {img.stat().st_size} bytes")
    assert img.stat().st_size < 2 << 20


def test_disk_requires_boot_files_and_mz(tmp_path: Path) -> None:
    a, _ = two_trees(tmp_path)
    code, _, err = cli("disk", "--tree", f"A={a}", "--efi", str(efi(tmp_path)), "--size", "16M", "-o", "d.img",
                       cwd=tmp_path)
    assert code == 2 and "no /usr/lib/boot/kernel" in err and not (tmp_path / "d.img").exists()
    (tmp_path / "bad.efi").write_bytes(b"\x7fELF not a PE")
    boot = boot_tree(tmp_path)
    code, _, err = cli("disk", "--tree", f"boot={boot}", "--efi", "bad.efi", "--size", "16M", "-o", "d.img",
                       cwd=tmp_path)
    assert code == 2 and "does not start with 'MZ'" in err and not (tmp_path / "d.img").exists()
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1


def test_manifest_out_does_not_depend_on_the_build_directory(tmp_path: Path) -> None:
    """The root manifest written next to an image records no host path: two builds of the same
    trees in different directories write identical manifests."""
    outs = []
    for side in ("a", "b"):
        work = tmp_path / side / "deep" / "sandbox"
        tree = work / "__trees" / "0" / "usr" / "bin"
        tree.mkdir(parents=True)
        (tree / "tool").write_bytes(b"same bytes\n")
        cwd = os.getcwd()
        os.chdir(work)
        try:
            assemble.portable(assemble.root_manifest(["//pkg:tool=__trees/0"], [], 0), str(work)).dump(
                str(work / "root.json")
            )
        finally:
            os.chdir(cwd)
        outs.append((work / "root.json").read_bytes())
    assert outs[0] == outs[1]
    assert b"__trees/0/usr/bin/tool" in outs[0]


def test_overlay_replaces_package_entries_with_owner_and_mode(tmp_path: Path) -> None:
    from redox_tools.manifest import DIR, FILE, Entry, Manifest

    pkg = tree(tmp_path / "pkg", {"etc/passwd": (b"from-package\n", 0o644), "usr/bin/x": (b"x", 0o755)})
    ov_dir = tmp_path / "ov"
    (ov_dir / "files/etc").mkdir(parents=True)
    (ov_dir / "files/etc/passwd").write_bytes(b"root;0;0;root;/root;/bin/ion\n")
    import hashlib

    data = (ov_dir / "files/etc/passwd").read_bytes()
    Manifest([
        Entry("etc/passwd", FILE, 0o644, source="files/etc/passwd", sha256=hashlib.sha256(data).hexdigest(), size=len(data),
              origin="module system: users.users"),
        Entry("home/admin", DIR, 0o700, 1001, 1001, origin="module system: users.users.admin.home"),
    ], str(ov_dir)).dump(str(ov_dir / "overlay.json"))
    m = root_manifest([f"pkg={pkg}"], [], EPOCH, [str(ov_dir / "overlay.json")])
    passwd = m.get("etc/passwd")
    assert passwd is not None and m.read(passwd) == data and passwd.origin == "module system: users.users"
    home = m.get("home/admin")
    assert home is not None and (home.mode, home.uid, home.gid) == (0o700, 1001, 1001)
    assert m.get("home") is not None and m.get("usr/bin/x") is not None
