from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings, strategies as st

from redox_tools.vm.serial import (
    AnsiStripper,
    LogFollower,
    Milestone,
    MilestoneError,
    MilestoneTracker,
    REPLY_PRESETS,
    ReplyTracker,
    SerialPipe,
    SerialReplyError,
    decode_reply,
    parse_milestone,
    parse_replies,
    parse_reply,
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


# --- serial replies ---------------------------------------------------------------------


def test_decode_reply_escapes():
    assert decode_reply(r"\r") == b"\r"
    assert decode_reply(r"root\n") == b"root\n"
    assert decode_reply(r"a\tb\e[6n\x7f\0\\") == b"a\tb\x1b[6n\x7f\x00\\"
    assert decode_reply("é") == "é".encode()
    with pytest.raises(SerialReplyError, match="unknown escape"):
        decode_reply(r"\q")
    with pytest.raises(SerialReplyError, match="dangling backslash"):
        decode_reply("abc\\")


def test_parse_reply_splits_at_last_arrow():
    r = parse_reply(r"Press e to edit boot environment=>\r")
    assert r.pattern.pattern == "Press e to edit boot environment" and r.reply == b"\r"
    r = parse_reply(r"a(?=>)b=>x")  # a lookahead for ">" keeps its `=>`
    assert r.pattern.pattern == "a(?=>)b" and r.reply == b"x"
    for bad, why in (("no arrow", "expected PATTERN=>REPLY"), ("=>\\r", "expected"),
                     ("x=>", "empty reply"), ("(=>\\r", "bad regex")):
        with pytest.raises(SerialReplyError, match=re.escape(why)):
            parse_reply(bad)


def test_preset_expands_in_place():
    rs = parse_replies(["a=>1", "redox-bootloader-menu", "b=>2"])
    assert [r.reply for r in rs] == [b"1", b"\r", b"2"]
    assert rs[1].pattern.pattern == "Press e to edit boot environment"
    assert rs[1].label == REPLY_PRESETS["redox-bootloader-menu"][0]
    with pytest.raises(SerialReplyError, match="redox-bootloader-menu"):
        parse_replies(["redox-bootloader-manu"])  # a typo is not silently a pattern


def test_replies_are_ordered_and_sent_once():
    t = ReplyTracker(parse_replies(["login:=>root\\n", "Password:=>pw\\n", "login:=>again\\n"]))
    assert t.due("Password: ") == []  # the first one gates the rest
    text = "Password: \nredox login: "
    assert [r.reply for r in t.due(text)] == [b"root\n"]
    assert t.due(text) == []  # once
    text += "root\nPassword: "
    assert [r.reply for r in t.due(text)] == [b"pw\n"]
    # the third needs a `login:` after the Password match, not the old one
    assert t.due(text) == [] and not t.done
    text += "\nLogin incorrect\nredox login: "
    assert [r.reply for r in t.due(text)] == [b"again\n"] and t.done


def test_several_replies_due_in_one_read():
    t = ReplyTracker(parse_replies(["A=>1", "B=>2", "C=>3"]))
    assert [r.reply for r in t.due("xA B")] == [b"1", b"2"]
    assert [r.reply for r in t.due("xA B C")] == [b"3"]


def test_bootloader_prompt_matches_cleaned_ovmf_text():
    raw = (b"RedoxFS 1234: 61 MiB\r\n\r\nOutput 0, best resolution: 1280x800\r\n"
           b"Arrow keys and enter select mode\r\nPress l to  enable live mode\r\n"
           b"\x1b[1mPress e to edit boot \x1b[0menvironment\r\n")
    s = AnsiStripper()
    t = ReplyTracker(parse_replies(["redox-bootloader-menu"]))
    text = s.feed(raw[:70])
    assert t.due(text) == []
    text += s.feed(raw[70:])
    assert [r.reply for r in t.due(text)] == [b"\r"]


def test_serial_pipe_round_trip(tmp_path):
    base = str(tmp_path / "serial")
    pipe = SerialPipe(base)
    try:
        # QEMU's side: it opens both O_RDWR, reads <base>.in, writes <base>.out.
        fin = os.open(base + ".in", os.O_RDWR | os.O_NONBLOCK)
        fout = os.open(base + ".out", os.O_RDWR | os.O_NONBLOCK)
        for _ in range(100_000):  # a chatty guest, one byte per write: never blocks QEMU
            os.write(fout, b"x")
            if _ % 20_000 == 0:
                pipe.poll()
        pipe.poll()
        pipe.send(b"\r")
        assert os.read(fin, 16) == b"\r"
        os.close(fin)
        os.close(fout)
    finally:
        pipe.close()
    assert not os.path.exists(base + ".in") and not os.path.exists(base + ".out")
