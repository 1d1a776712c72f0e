from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from redox_tools.redoxfs import vectors
from redox_tools.redoxfs.__main__ import main, parse_size

PLUGINS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_parse_size() -> None:
    assert parse_size("64M") == 64 << 20 and parse_size("1g") == 1 << 30 and parse_size("4096") == 4096
    assert parse_size("512KiB") == 512 << 10


def test_create_ls_cat_check(tmp_path, capsys) -> None:
    m, kw, sha = vectors.manifest_15_2(str(tmp_path))
    mpath = str(tmp_path / "m.json")
    m.dump(mpath)
    img = str(tmp_path / "out.img")
    assert main(["create", "--manifest", mpath, "-o", img, "--size", "2M",
                 "--uuid", "00112233-4455-6677-8899-aabbccddeeff", "--ctime", str(vectors.T)]) == 0
    assert hashlib.sha256(open(img, "rb").read()).hexdigest() == sha
    assert os.listdir(tmp_path).count("out.img") == 1 and not [n for n in os.listdir(tmp_path) if ".tmp" in n]
    capsys.readouterr()
    assert main(["ls", img, "-R"]) == 0
    out = capsys.readouterr().out
    assert "lrwxrwxrwx     0     0          7 2023-11-14 22:13 /bin -> usr/bin" in out
    assert "/usr/lib/boot/kernel" in out
    assert main(["ls", img, "/usr/lib/boot"]) == 0
    assert capsys.readouterr().out.strip().endswith("/usr/lib/boot/kernel")
    assert main(["check", img]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    assert main(["info", img]) == 0
    assert "00112233-4455-6677-8899-aabbccddeeff" in capsys.readouterr().out


def test_cat_and_errors_via_subprocess(tmp_path) -> None:
    m, kw, sha = vectors.manifest_15_2(str(tmp_path))
    mpath = str(tmp_path / "m.json")
    m.dump(mpath)
    img = str(tmp_path / "disk.img")
    env = dict(os.environ, PYTHONPATH=PLUGINS)
    run = lambda *a: subprocess.run([sys.executable, "-m", "redox_tools.redoxfs", *a],  # noqa: E731
                                    env=env, capture_output=True)
    r = run("create", "--manifest", mpath, "-o", img, "--size", "auto", "--offset", str(1 << 20))
    assert r.returncode == 0, r.stderr
    r = run("cat", img, "/hello.txt")  # found by scanning (filesystem at 1 MiB)
    assert (r.returncode, r.stdout) == (0, b"Hello, RedoxFS!\n")
    r = run("cat", img, "/hello.txt", "--offset", str(1 << 20))
    assert r.stdout == b"Hello, RedoxFS!\n"
    r = run("cat", img, "/missing")
    assert r.returncode == 2 and r.stderr == b"error: /missing: no such file or directory\n"
    r = run("create", "--manifest", mpath, "-o", str(tmp_path / "small.img"), "--size", "1M")
    assert r.returncode == 2 and r.stderr.startswith(b"error: image too small")
    assert not os.path.exists(tmp_path / "small.img")
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]
    with open(img, "r+b") as f:  # corrupt a DirList: check reports, exit 1 or 2
        f.seek((1 << 20) + 257 * 4096 + 10)
        f.write(b"\xff")
    r = run("check", img)
    assert r.returncode == 2 and b"checksum mismatch" in r.stderr
