from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from redox_tools.vm.serial import (
    AnsiStripper,
    LogFollower,
    Milestone,
    MilestoneError,
    MilestoneTracker,
    parse_milestone,
    redox_failures,
    redox_milestones,
    strip_ansi,
    tail_text,
)

OVMF = (b"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0002 \"UEFI Misc\"\r\n"
        b"\x1b[1m\x1b[33m\x1b[40mMapping table\x1b[0m\x1b[37m\x1b[40m\r\n"
        b"Redox OS Bootloader 1.0.0 on x86_64/UEFI\r\nusr/lib/boot/kernel: 0/1 MiB\r"
        b"usr/lib/boot/kernel: 1/1 MiB\r\n\x1b[1mredox login: \x1b[0m")


def test_strip_ansi():
    text = strip_ansi(OVMF.decode())
    assert "\x1b" not in text and "\r" not in text
    assert text.startswith('BdsDxe: loading Boot0002 "UEFI Misc"\nMapping table\n')
    assert "kernel: 0/1 MiB\nusr/lib/boot/kernel: 1/1 MiB\n" in text
    assert text.endswith("redox login: ")
    assert strip_ansi("a\x1b]0;title\x07b\x1b(Bc") == "abc"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(OVMF)), max_size=12))
def test_stripper_is_split_invariant(cuts):
    cuts = sorted(set(cuts))
    s = AnsiStripper()
    out = ""
    prev = 0
    for c in cuts + [len(OVMF)]:
        out += s.feed(OVMF[prev:c])
        prev = c
    out += s.feed(b"", final=True)
    assert out == strip_ansi(OVMF.decode())


def test_utf8_split_across_chunks():
    data = "Grüße\r\n".encode()
    s = AnsiStripper()
    assert s.feed(data[:3]) + s.feed(data[3:]) + s.feed(b"", True) == "Grüße\n"


def test_parse_milestone():
    m = parse_milestone("kernel=Redox OS starting@60")
    assert (m.name, m.pattern.pattern, m.timeout) == ("kernel", "Redox OS starting", 60.0)
    m = parse_milestone("mail=user@host")  # '@host' is not a timeout
    assert (m.pattern.pattern, m.timeout) == ("user@host", None)
    m = parse_milestone("x=a=b@2.5s")
    assert (m.pattern.pattern, m.timeout) == ("a=b", 2.5)
    m = parse_milestone("t=end@5@10")
    assert (m.pattern.pattern, m.timeout) == ("end@5", 10.0)
    for bad in ("noequals", "=regex", "name=", "name=@5", "n=(unclosed", "n=x@0"):
        with pytest.raises(MilestoneError):
            parse_milestone(bad)


def ms(*pairs):
    return [Milestone(n, re.compile(p)) for n, p in pairs]


def test_tracker_is_ordered():
    t = MilestoneTracker(ms(("a", "alpha"), ("b", "beta")))
    assert t.advance("beta then") == []  # b before a does not count
    assert [m.name for m in t.advance("beta then alpha")] == ["a"]
    assert t.advance("beta then alpha") == []
    assert [m.name for m in t.advance("beta then alpha, beta")] == ["b"]
    assert t.done and t.current is None


def test_tracker_failures():
    t = MilestoneTracker(ms(("a", "x")), redox_failures())
    assert t.failure("Redox OS Bootloader 1.0.0\nLooking for RedoxFS:\n") is None
    text = "Looking for RedoxFS:\nINFO - Failed to open RedoxFS: NotFound\nmore"
    assert t.failure(text) == ("redoxfs-open", "INFO - Failed to open RedoxFS: NotFound")
    t2 = MilestoneTracker([], redox_failures())
    assert t2.failure("SETUP PANIC: panicked at src/os/uefi/disk.rs:10:5:")[0] == "setup-panic"


def test_redox_presets():
    names = [m.name for m in redox_milestones([10, 20, 30])]
    assert names == ["bootloader", "kernel", "login"]
    t = MilestoneTracker(redox_milestones())
    text = strip_ansi(OVMF.decode()) + "\nkernel::arch::x86_shared::start:INFO -- Redox OS starting...\n"
    # login appears before kernel in this text: only bootloader and kernel count
    assert [m.name for m in t.advance(text)] == ["bootloader", "kernel"]


def test_log_follower(tmp_path):
    p = tmp_path / "serial.log"
    f = LogFollower(str(p))
    assert f.read_new() == ""  # not created yet
    with open(p, "wb") as w:
        w.write(b"\x1b[2Jhello\r")
        w.flush()
        assert f.read_new() == "hello"
        w.write(b"\nworld\r\n")
        w.flush()
        assert f.read_new() == "\nworld\n"
    assert f.text == "hello\nworld\n"
    f.close()
    assert tail_text("a\nb\nc\n\n", lines=2) == "b\nc"
