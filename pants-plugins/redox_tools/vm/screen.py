"""Checks on a VM's screen, from the PPM that QEMU's QMP `screendump` writes.

A check is written `MILESTONE: KIND ARGS...` (the boot test takes one screendump right after
the serial milestone MILESTONE is reached, then runs every check named for it):

* `done: not-blank [max=0.999]` — fails when one colour covers more than `max` of the
  screen (default 99.9 %: a black or single-colour screen, a few stray pixels allowed);
* `gop: region X,Y,W,H #RRGGBB [tol=16] [min=0.95]` — the rectangle at X,Y (top left, pixels)
  of size WxH: at least `min` of its pixels must be within `tol` (per channel, 0..255) of
  the colour. `min=1` asks for every pixel.

Failure messages say what was seen instead (the dominant colour and its share, the mean).
`save_png` writes a PNG copy of the PPM for viewing (zlib only, no imaging library).

    python -m redox_tools.vm.screen SCREEN.ppm "region 400,300,200,150 #ff00ff" [--png OUT.png]
"""
from __future__ import annotations

import argparse
import re
import struct
import zlib
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from redox_tools.errors import ToolError, run_main
from redox_tools.safeio import atomic_output

Rgb = Tuple[int, int, int]
KINDS = ("not-blank", "region")
DEFAULT_TOLERANCE = 16
DEFAULT_MIN_FRACTION = 0.95
DEFAULT_BLANK_MAX = 0.999


class ScreenError(ToolError):
    """A screen check that cannot be parsed, or a screendump that cannot be read."""


# --- PPM ------------------------------------------------------------------------------

_PPM_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n)*(\S+)")


def parse_ppm(data: bytes, origin: str = "screendump") -> np.ndarray:
    """A binary PPM (P6, maxval 255; what QEMU writes) as an (H, W, 3) uint8 array."""
    pos = 0
    fields: List[bytes] = []
    for _ in range(4):
        m = _PPM_TOKEN.match(data, pos)
        if not m:
            raise ScreenError(f"{origin}: truncated PPM header")
        fields.append(m.group(1))
        pos = m.end()
    if fields[0] != b"P6":
        raise ScreenError(f"{origin}: not a binary PPM (magic {fields[0][:8]!r}, expected b'P6')")
    try:
        width, height, maxval = (int(f) for f in fields[1:])
    except ValueError:
        raise ScreenError(f"{origin}: bad PPM header {b' '.join(fields)!r}") from None
    if maxval != 255:
        raise ScreenError(f"{origin}: PPM maxval {maxval} not supported (expected 255)")
    if width < 1 or height < 1:
        raise ScreenError(f"{origin}: PPM is {width}x{height}")
    pos += 1  # the single whitespace byte after maxval
    need = width * height * 3
    if len(data) - pos < need:
        raise ScreenError(f"{origin}: PPM {width}x{height} needs {need} pixel bytes, has {len(data) - pos}")
    return np.frombuffer(data, dtype=np.uint8, count=need, offset=pos).reshape(height, width, 3)


def read_ppm(path: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ScreenError(f"cannot read screendump {path}: {e.strerror or e}") from None
    return parse_ppm(data, path)


def encode_ppm(pixels: np.ndarray) -> bytes:
    h, w, _ = pixels.shape
    return b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()


def encode_png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of `pixels` (filter 0 on every row)."""
    h, w, _ = pixels.shape
    rows = np.zeros((h, 1 + 3 * w), dtype=np.uint8)  # a leading 0 = filter "none"
    rows[:, 1:] = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(h, 3 * w)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def save_png(pixels: np.ndarray, path: str) -> None:
    with atomic_output(path) as f:  # never writes through a planted link
        f.write(encode_png(pixels))


# --- checks ---------------------------------------------------------------------------


def hex_rgb(c: Sequence[int]) -> str:
    return "#%02x%02x%02x" % (int(c[0]), int(c[1]), int(c[2]))


def parse_rgb(text: str, label: str = "") -> Rgb:
    m = re.fullmatch(r"#?([0-9a-fA-F]{6})", text.strip())
    if not m:
        raise ScreenError(f"{label}colour {text!r}: expected #rrggbb")
    v = int(m.group(1), 16)
    return (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF


@dataclass(frozen=True)
class ScreenCheck:
    after: str  # the milestone whose arrival triggers the screendump
    kind: str  # "not-blank" | "region"
    rect: Optional[Tuple[int, int, int, int]] = None  # x, y, w, h (region)
    colour: Optional[Rgb] = None  # region
    tolerance: int = DEFAULT_TOLERANCE
    min_fraction: float = DEFAULT_MIN_FRACTION  # region: share of matching pixels needed
    max_fraction: float = DEFAULT_BLANK_MAX  # not-blank: largest share of one colour allowed
    text: str = ""

    @property
    def label(self) -> str:
        return self.text or f"{self.after}: {self.kind}"


@dataclass(frozen=True)
class CheckResult:
    check: ScreenCheck
    passed: bool
    detail: str


def _fraction(label: str, key: str, value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        raise ScreenError(f"{label}: {key}={value!r} is not a number") from None
    if not 0.0 < f <= 1.0:
        raise ScreenError(f"{label}: {key} must be in (0, 1], got {value}")
    return f


def parse_check(text: str) -> ScreenCheck:
    """`MILESTONE: not-blank [max=F]` or `MILESTONE: region X,Y,W,H #RRGGBB [tol=N] [min=F]`."""
    label = f"screen check {text!r}"
    after, sep, rest = text.partition(":")
    tokens = rest.split()
    if not sep or not after.strip() or not tokens:
        raise ScreenError(
            f"{label}: expected 'MILESTONE: not-blank' or 'MILESTONE: region X,Y,W,H #RRGGBB [tol=N] [min=F]'"
        )
    kind, args = tokens[0], tokens[1:]
    opts = {}
    positional = []
    for a in args:
        k, eq, v = a.partition("=")
        if eq:
            opts[k] = v
        else:
            positional.append(a)
    name = after.strip()
    canonical = " ".join([name + ":"] + tokens)
    if kind == "not-blank":
        if positional or set(opts) - {"max"}:
            raise ScreenError(f"{label}: not-blank takes only max=F")
        return ScreenCheck(
            name, kind, text=canonical,
            max_fraction=_fraction(label, "max", opts.get("max", str(DEFAULT_BLANK_MAX))),
        )
    if kind == "region":
        if len(positional) != 2 or set(opts) - {"tol", "min"}:
            raise ScreenError(f"{label}: region takes X,Y,W,H #RRGGBB [tol=N] [min=F]")
        try:
            x, y, w, h = (int(v) for v in positional[0].split(","))
        except ValueError:
            raise ScreenError(f"{label}: rectangle {positional[0]!r}: expected X,Y,W,H (integers)") from None
        if x < 0 or y < 0 or w < 1 or h < 1:
            raise ScreenError(f"{label}: rectangle needs x,y >= 0 and w,h >= 1")
        colour = parse_rgb(positional[1], f"{label}: ")
        try:
            tol = int(opts.get("tol", DEFAULT_TOLERANCE))
        except ValueError:
            raise ScreenError(f"{label}: tol={opts['tol']!r} is not an integer") from None
        if not 0 <= tol <= 255:
            raise ScreenError(f"{label}: tol must be 0..255")
        return ScreenCheck(
            name, kind, text=canonical,
            rect=(x, y, w, h),
            colour=colour,
            tolerance=tol,
            min_fraction=_fraction(label, "min", opts.get("min", str(DEFAULT_MIN_FRACTION))),
        )
    raise ScreenError(f"{label}: unknown check {kind!r} (one of: {', '.join(KINDS)})")


def dominant(pixels: np.ndarray) -> Tuple[Rgb, float]:
    """The most common colour of an (..., 3) array and its share of the pixels."""
    flat = pixels.reshape(-1, 3).astype(np.uint32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    values, counts = np.unique(packed, return_counts=True)
    i = int(np.argmax(counts))
    v = int(values[i])
    return ((v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF), float(counts[i]) / float(packed.size)


def run_check(check: ScreenCheck, pixels: np.ndarray) -> CheckResult:
    h, w, _ = pixels.shape
    if check.kind == "not-blank":
        colour, share = dominant(pixels)
        seen = f"{share:.1%} of the {w}x{h} screen is {hex_rgb(colour)}"
        if share > check.max_fraction:
            return CheckResult(check, False, f"screen is blank: {seen} (allowed: {check.max_fraction:.1%})")
        return CheckResult(check, True, f"not blank: {seen}")
    assert check.rect is not None and check.colour is not None
    x, y, rw, rh = check.rect
    where = f"region {rw}x{rh} at {x},{y}"
    if x + rw > w or y + rh > h:
        return CheckResult(check, False, f"{where} lies outside the {w}x{h} screen")
    region = pixels[y:y + rh, x:x + rw].astype(np.int16)
    diff = np.abs(region - np.array(check.colour, dtype=np.int16)).max(axis=2)
    share = float(np.count_nonzero(diff <= check.tolerance)) / float(rw * rh)
    colour, dshare = dominant(pixels[y:y + rh, x:x + rw])
    mean = region.reshape(-1, 3).mean(axis=0)
    seen = (
        f"{share:.1%} of its pixels within ±{check.tolerance} of {hex_rgb(check.colour)} "
        f"(need {check.min_fraction:.1%}); dominant colour {hex_rgb(colour)} ({dshare:.1%}), "
        f"mean {hex_rgb(np.rint(mean))}; screen {w}x{h}"
    )
    return CheckResult(check, share >= check.min_fraction, f"{where}: {seen}")


def run_checks(checks: Sequence[ScreenCheck], pixels: np.ndarray) -> List[CheckResult]:
    return [run_check(c, pixels) for c in checks]


# --- CLI ------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m redox_tools.vm.screen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ppm", help="a P6 screendump")
    p.add_argument("check", nargs="*", help="'not-blank' or 'region X,Y,W,H #RRGGBB [tol=N] [min=F]'")
    p.add_argument("--png", default=None, help="also write a PNG copy here")
    a = p.parse_args(argv)
    pixels = read_ppm(a.ppm)
    if a.png:
        save_png(pixels, a.png)
    colour, share = dominant(pixels)
    print(f"{a.ppm}: {pixels.shape[1]}x{pixels.shape[0]}, dominant {hex_rgb(colour)} ({share:.1%})")
    failed = 0
    for text in a.check:
        r = run_check(parse_check(text if ":" in text else f"screen: {text}"), pixels)
        print(("ok    " if r.passed else "FAIL  ") + r.detail)
        failed += not r.passed
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
