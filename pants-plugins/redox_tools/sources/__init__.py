"""Pinned upstream sources: the lock file (`pins`), the tree hash (`treehash`), the fetch phase
(`fetch`), `cargo vendor` (`vendor`) and the git dependencies of Cargo.locks (`cargo_git`). The
only code of the build that touches the network.

    python -m redox_tools.sources {fetch,fetch-all,treehash,check-vendor,vendor,crate-mirror-fingerprint} ...
    python -m redox_tools.sources.pins {generate,update,show} ...
"""
