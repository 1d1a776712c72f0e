"""`[redox-toolchain]`: where rustc/cargo/rust-src/lld/clang come from."""
from __future__ import annotations

from pants.option.option_types import DictOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text, softwrap

SYSTEM = "system"
DOWNLOAD = "download"


class RedoxToolchainSubsystem(Subsystem):
    options_scope = "redox-toolchain"
    help = help_text(
        """
        The Rust/LLVM toolchain used for every Redox package. Two providers give the same value:
        `download` fetches a pinned Rust nightly (rustc, cargo, rust-std, rust-src archives checked
        by sha256 + size); `system` uses tools already on the host (e.g. Debian's rustc-web 1.96 +
        rust-web-src + lld-22 + clang-22), fingerprinted by their `--version` output so the cache
        key changes when they do.
        """
    )

    provider = StrOption(
        default=DOWNLOAD,
        help=f"`{DOWNLOAD}` (pinned nightly; needs the network or a mirror) or `{SYSTEM}` (host tools).",
    )

    # --- download provider ---------------------------------------------------------------------
    nightly = StrOption(
        default="2026-05-24",
        help="Date of the Rust nightly to download (Redox upstream pins nightly-2026-05-24).",
    )
    url_template = StrOption(
        default="https://static.rust-lang.org/dist/{date}/{component}-nightly-{archive_triple}.tar.xz",
        help=softwrap(
            """
            URL of one component archive. `{date}`, `{component}` (rustc, cargo, rust-std, rust-src)
            and `{archive_triple}` (host triple, the std's triple, or `` for rust-src) are filled
            in. Point it at a mirror (`file:///srv/rust-mirror/...` works) to build offline.
            """
        ),
    )
    known_versions = StrListOption(
        default=[],
        help=softwrap(
            """
            Pins, one per archive: `<date>|<component>|<archive_triple>|<sha256>|<length>`, e.g.
            `2026-05-24|rust-src||<sha256>|<bytes>`. A download whose hash or length differs is an
            error. Fill from the channel manifest on a connected machine.
            """
        ),
    )
    host_triple = StrOption(default="x86_64-unknown-linux-gnu", help="Triple of the build machine.")

    # --- system provider -----------------------------------------------------------------------
    search_path = StrListOption(
        default=["/usr/bin"],
        help=softwrap(
            """
            Where the `system` provider looks for rustc, cargo, clang, lld and llvm tools. The default
            skips ~/.cargo/bin on purpose: rustup's toolchains there have no rust-src here.
            """
        ),
    )
    tool_names = DictOption[str](
        default={
            "rustc": "rustc",
            "cargo": "cargo",
            "clang": "clang-22,clang",
            "lld": "ld.lld-22,ld.lld",
            "objcopy": "llvm-objcopy-22,llvm-objcopy",
            "ar": "llvm-ar-22,llvm-ar",
            "nasm": "nasm",
        },
        help="Binary names tried in order for each tool of the `system` provider (comma-separated).",
    )
