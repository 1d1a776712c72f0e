"""`[redox-sources]`: where pinned upstream sources come from."""
from __future__ import annotations

from pants.option.option_types import IntOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import softwrap


class RedoxSourcesSubsystem(Subsystem):
    options_scope = "redox-sources"
    help = "Pinned upstream sources (git at a rev or archives), fetched once and verified by content hash."

    lock = StrOption(
        default="3rdparty/redox/sources.lock.toml",
        help="The pin lock file: one entry per upstream repository (URL, rev, git tree, tree hash, patches).",
    )
    mirror_dirs = StrListOption(
        default=[],
        help=softwrap(
            """
            Absolute directories searched before the network: `<dir>/<name>` (a checkout) or
            `<dir>/<name>.git` (a bare mirror), submodules as `<dir>/<repo name>`, and the git
            dependencies of packages' Cargo.locks as `<dir>/<repo name>[.git]`. Copy sources there to
            build offline (README: "Offline mirrors").
            """
        ),
    )
    connect_timeout = IntOption(default=10, help="Seconds to wait for a source host before calling it unreachable.")
    cargo_config = StrOption(
        default="",
        help=softwrap(
            """
            Extra cargo config (TOML text) for the crates.io vendor step, written to its private
            CARGO_HOME's config.toml, e.g. a crates.io mirror:
            `[source.crates-io] replace-with = "mirror"` and `[source.mirror] local-registry =
            "/srv/crates"` (or `directory = ...`, or `registry = "sparse+https://..."`). A local
            mirror is checked against Cargo.lock's checksums; the text and what local mirrors hold
            are part of the vendor step's cache key.
            """
        ),
    )
