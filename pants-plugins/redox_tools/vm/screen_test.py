import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from redox_tools.vm.screen import (
    ScreenError,
    dominant,
    encode_png,
    encode_ppm,
    parse_check,
    parse_ppm,
    read_ppm,
    run_check,
)


def screen(w=64, h=48, bg=(0, 0, 0), rect=None, colour=(255, 0, 255)):
    px = np.zeros((h, w, 3), dtype=np.uint8)
    px[:, :] = bg
    if rect:
        x, y, rw, rh = rect
        px[y:y + rh, x:x + rw] = colour
    return px


def test_ppm_roundtrip_and_header_comments():
    px = screen(rect=(10, 5, 8, 4))
    assert np.array_equal(parse_ppm(encode_ppm(px)), px)
    commented = b"P6\n# made by a test\n64 48\n255\n" + px.tobytes()
    assert np.array_equal(parse_ppm(commented), px)


@pytest.mark.parametrize(
    "data, msg",
    [
        (b"P3\n1 1\n255\n0 0 0", "not a binary PPM"),
        (b"P6\n2 2\n65535\n" + b"\0" * 24, "maxval 65535"),
        (b"P6\n2 2\n255\n" + b"\0" * 5, "needs 12 pixel bytes, has 5"),
        (b"P6\n2", "truncated PPM header"),
    ],
)
def test_bad_ppm_is_a_clear_error(data, msg):
    with pytest.raises(ScreenError, match=msg):
        parse_ppm(data, "x.ppm")


def test_read_ppm_missing_file(tmp_path):
    with pytest.raises(ScreenError, match="cannot read screendump"):
        read_ppm(str(tmp_path / "nope.ppm"))


def test_png_is_valid_and_decodes_to_the_pixels():
    px = screen(w=5, h=3, rect=(1, 1, 2, 1), colour=(1, 2, 3))
    png = encode_png(px)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        kind, body = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", png[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = body
        pos += 12 + n
    assert struct.unpack(">IIBBBBB", chunks[b"IHDR"]) == (5, 3, 8, 2, 0, 0, 0)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(3, 16)
    assert (raw[:, 0] == 0).all()
    assert np.array_equal(raw[:, 1:].reshape(3, 5, 3), px)
    assert b"IEND" in chunks


def test_parse_check_forms():
    c = parse_check("gop:  region 400,300,200,150 #FF00ff tol=8 min=0.9")
    assert (c.after, c.kind, c.rect, c.colour, c.tolerance, c.min_fraction) == (
        "gop", "region", (400, 300, 200, 150), (255, 0, 255), 8, 0.9)
    assert c.label == "gop: region 400,300,200,150 #FF00ff tol=8 min=0.9"
    b = parse_check("done: not-blank")
    assert (b.after, b.kind, b.max_fraction) == ("done", "not-blank", 0.999)
    assert parse_check("done: not-blank max=0.5").max_fraction == 0.5


@pytest.mark.parametrize(
    "text, msg",
    [
        ("not-blank", "expected 'MILESTONE: not-blank'"),
        ("gop:", "expected 'MILESTONE"),
        ("gop: sparkly", "unknown check 'sparkly'"),
        ("gop: region 1,2,3 #ff00ff", "expected X,Y,W,H"),
        ("gop: region 1,2,0,4 #ff00ff", "w,h >= 1"),
        ("gop: region 1,2,3,4 red", "expected #rrggbb"),
        ("gop: region 1,2,3,4 #ff00ff tol=300", "tol must be 0..255"),
        ("gop: region 1,2,3,4 #ff00ff min=2", r"min must be in \(0, 1\]"),
        ("gop: region 1,2,3,4 #ff00ff size=3", "region takes"),
        ("gop: not-blank 3", "not-blank takes only max"),
    ],
)
def test_parse_check_errors(text, msg):
    with pytest.raises(ScreenError, match=msg):
        parse_check(text)


def test_not_blank():
    blank = screen(bg=(0, 0, 170))
    r = run_check(parse_check("m: not-blank"), blank)
    assert not r.passed
    assert r.detail == "screen is blank: 100.0% of the 64x48 screen is #0000aa (allowed: 99.9%)"
    r = run_check(parse_check("m: not-blank"), screen(rect=(0, 0, 8, 8)))
    assert r.passed and "#000000" in r.detail
    # a couple of stray pixels do not make a screen "not blank"
    nearly = screen(w=100, h=100)
    nearly[0, 0] = (255, 255, 255)
    assert not run_check(parse_check("m: not-blank"), nearly).passed


def test_region_passes_exact_and_within_tolerance():
    px = screen(rect=(10, 5, 20, 10), colour=(250, 4, 251))
    assert run_check(parse_check("m: region 10,5,20,10 #ff00ff"), px).passed
    assert not run_check(parse_check("m: region 10,5,20,10 #ff00ff tol=2"), px).passed


def test_region_mostly_that_colour():
    px = screen(rect=(10, 5, 20, 10))
    px[5, 10:30] = (255, 255, 255)  # one of ten rows is text-coloured: 90 % magenta
    assert not run_check(parse_check("m: region 10,5,20,10 #ff00ff"), px).passed
    assert run_check(parse_check("m: region 10,5,20,10 #ff00ff min=0.85"), px).passed


def test_region_failure_says_what_was_seen():
    px = screen(rect=(10, 5, 20, 10), colour=(0, 255, 0))
    r = run_check(parse_check("m: region 10,5,20,10 #ff00ff"), px)
    assert not r.passed
    assert r.detail == (
        "region 20x10 at 10,5: 0.0% of its pixels within ±16 of #ff00ff (need 95.0%); "
        "dominant colour #00ff00 (100.0%), mean #00ff00; screen 64x48"
    )


def test_region_outside_the_screen():
    r = run_check(parse_check("m: region 60,40,10,10 #ff00ff"), screen())
    assert not r.passed and r.detail == "region 10x10 at 60,40 lies outside the 64x48 screen"


def test_dominant():
    px = screen(w=4, h=1)
    px[0, :3] = (1, 2, 3)
    assert dominant(px) == ((1, 2, 3), 0.75)


def test_cli(tmp_path):
    ppm = tmp_path / "s.ppm"
    ppm.write_bytes(encode_ppm(screen(rect=(10, 5, 20, 10))))
    png = tmp_path / "s.png"
    r = subprocess.run(
        [sys.executable, "-m", "redox_tools.vm.screen", str(ppm), "region 10,5,20,10 #ff00ff",
         "not-blank", "--png", str(png)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "64x48, dominant #000000" in r.stdout and r.stdout.count("ok ") == 2
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = subprocess.run([sys.executable, "-m", "redox_tools.vm.screen", str(ppm), "region 0,0,4,4 #ff00ff"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 1 and "FAIL  region 4x4 at 0,0" in r.stdout
