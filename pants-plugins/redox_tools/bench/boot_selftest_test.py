"""The boot bench's serial replies: which ones each command line types (no VM started)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from redox_tools.bench.boot_selftest import build_parser, serial_replies


def replies(*argv):
    p = build_parser()
    return [(r.pattern.pattern, r.reply) for r in serial_replies(p.parse_args(["img", *argv]), p)]


def test_graphical_types_the_selftest_apps_two_enters():
    # the menu-shaped prompt (the bootloader preset), then the hold after the block is drawn
    assert replies("--graphical") == [
        ("Press e to edit boot environment", b"\r"),
        ("Press Enter to go on", b"\r"),
    ]


def test_without_a_display_nothing_is_typed():
    assert replies() == []


def test_serial_reply_replaces_the_defaults_in_order_with_presets_expanded():
    assert replies("--graphical", "--serial-reply", r"login:=>user\n", "--serial-reply", "redox-bootloader-menu") == [
        ("login:", b"user\n"),
        ("Press e to edit boot environment", b"\r"),
    ]
    assert replies("--serial-reply", r"a=b=>\x1b[A") == [("a=b", b"\x1b[A")]  # split at the last =>


def test_no_serial_reply_types_nothing_even_graphical():
    assert replies("--graphical", "--no-serial-reply") == []


def test_no_serial_reply_with_serial_reply_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        replies("--no-serial-reply", "--serial-reply", "x=>y")
    assert e.value.code == 2
    assert "--no-serial-reply and --serial-reply exclude each other" in capsys.readouterr().err


def test_a_bad_reply_is_one_error_line_before_any_boot(tmp_path):
    # the image does not exist: the reply is judged first, and no VM starts
    proc = subprocess.run(
        [sys.executable, "-m", "redox_tools.bench.boot_selftest", str(tmp_path / "none.qcow2"),
         "--serial-reply", r"Press=>\q"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        r"error: serial reply 'Press=>\\q': unknown escape \q (use \r \n \t \e \0 \\ \xHH)"
    ]
