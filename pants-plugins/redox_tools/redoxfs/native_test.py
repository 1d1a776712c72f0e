"""The native writer's finder and manifest hand-over (no binary needed; the byte-for-byte
comparison with the reference is native_integration_test.py)."""
from __future__ import annotations

import os

import pytest

from redox_tools.errors import ToolError
from redox_tools.manifest import Manifest
from redox_tools.redoxfs import native
from redox_tools.redoxfs.format import RedoxFSError


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """A working directory and repository root without any built tool, no $REDOXFS_WRITE."""
    monkeypatch.delenv(native.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_missing_tool_names_the_build_command(nowhere) -> None:
    with pytest.raises(ToolError) as exc:
        native.find_writer(root=str(nowhere))
    msg = str(exc.value)
    assert msg.startswith("redoxfs-write not found (looked for $REDOXFS_WRITE, ./" + native.TOOL_REL)
    assert msg.endswith("build it with ./pants package packages/host/redoxfs-write")
    assert "\n" not in msg


def test_explicit_or_env_path_must_exist(nowhere, monkeypatch) -> None:
    with pytest.raises(ToolError, match=r"^redoxfs-write not found at /no/such/tool \(the given redoxfs-write path\); build it with"):
        native.find_writer("/no/such/tool", root=str(nowhere))
    monkeypatch.setenv(native.ENV_VAR, "/no/such/env-tool")
    with pytest.raises(ToolError, match=r"not found at /no/such/env-tool \(\$REDOXFS_WRITE\)"):
        native.find_writer(root=str(nowhere))
    with pytest.raises(ToolError, match="packages/host/redoxfs-write"):
        native.native_redoxfs_writer()  # found when the writer is made, not when an image is half-written


def test_search_order(nowhere, monkeypatch) -> None:
    def make(rel: str) -> str:
        p = nowhere / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
        return str(p)

    dist = make("repo/dist/" + native.TOOL_REL)
    assert native.find_writer(root=str(nowhere / "repo")) == dist
    sandbox = make(native.TOOL_REL)  # relative to the working directory (a test sandbox)
    assert native.find_writer(root=str(nowhere / "repo")) == sandbox
    env = make("env-tool")
    monkeypatch.setenv(native.ENV_VAR, env)
    assert native.find_writer(root=str(nowhere / "repo")) == env
    assert native.find_writer(make("explicit"), root=str(nowhere / "repo")) == str(nowhere / "explicit")


def test_reference_argument_checks_come_first(tmp_path, monkeypatch) -> None:
    """The reference's own argument errors, word for word, before the tool runs (a tool that
    does not exist as a program would fail differently)."""
    fake = tmp_path / "not-run"
    fake.write_bytes(b"")
    write = native.native_redoxfs_writer(str(fake))
    with open(tmp_path / "img", "w+b") as f:
        for kw, msg in ((dict(offset=-1, size=4096), "offset -1 is negative"),
                        (dict(offset=0, size=4097), "filesystem size 4097 is not a multiple of 4096 bytes"),
                        (dict(offset=0, size=4096, uuid=b"x"), "uuid must be 16 bytes, got 1")):
            with pytest.raises(RedoxFSError) as exc:
                write(f, Manifest([]), **kw)
            assert str(exc.value) == msg
    assert not os.path.getsize(tmp_path / "img")


def test_first_difference_names_the_block(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    data = bytearray(b"\x11" * (5 * 4096))
    a.write_bytes(bytes(data))
    assert native.first_difference(str(a), str(a)) is None
    data[3 * 4096 + 100] = 0x22
    data[4 * 4096] = 0x33
    b.write_bytes(bytes(data))
    diff = native.first_difference(str(a), str(b), offset=4096)
    assert diff is not None
    lines = diff.splitlines()
    assert lines[1] == "2 differing 4096-byte blocks; first: file block 3 (filesystem block 2, byte 100 in it)"
    assert lines[4:] == ["  at byte 96:", f"  {a}: " + " ".join(["1111111111111111"] * 4),
                         f"  {b}: 11111111" + "22111111 " + " ".join(["1111111111111111"] * 3)]
    b.write_bytes(bytes(data[:4096]))
    assert (native.first_difference(str(a), str(b)) or "").startswith(f"{a}: 20480 bytes, {b}: 4096 bytes")
