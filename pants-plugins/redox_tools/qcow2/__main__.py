"""Command line: raw disk image <-> qcow2 (see `redox_tools.qcow2`).

    python -m redox_tools.qcow2 from-raw RAW -o OUT.qcow2
    python -m redox_tools.qcow2 raw IMAGE.qcow2 OUT.img      # OUT may be a block device (USB stick)
    python -m redox_tools.qcow2 info IMAGE.qcow2

Exit status: 0 ok, 2 bad input.
"""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from redox_tools.errors import ToolError, run_main
from redox_tools.qcow2 import from_raw, guest_clusters, to_raw


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.qcow2", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("from-raw", help="raw image -> qcow2 (byte-reproducible)")
    p.add_argument("raw")
    p.add_argument("-o", "--output", required=True)
    p = sub.add_parser("raw", help="qcow2 -> raw image (sparse file, or every byte to a block device)")
    p.add_argument("image")
    p.add_argument("output")
    p = sub.add_parser("info", help="virtual size and allocated data")
    p.add_argument("image")
    a = ap.parse_args(argv)
    for path in (a.raw if a.cmd == "from-raw" else a.image,):
        if not os.path.isfile(path):
            raise ToolError(f"{path}: no such file")
    if a.cmd == "from-raw":
        layout = from_raw(a.raw, a.output)
        print(f"{a.output}: {layout.virtual_size} bytes virtual, {len(layout.data_offsets)} data clusters, "
              f"{layout.total_clusters * 65536} bytes")
    elif a.cmd == "raw":
        size = to_raw(a.image, a.output)
        print(f"{a.output}: {size} bytes")
    else:
        header, mapped = guest_clusters(a.image)
        cs = 1 << header.cluster_bits
        print(f"version {header.version}, cluster size {cs}, virtual size {header.virtual_size}, "
              f"{len(mapped)} data clusters ({len(mapped) * cs} bytes), file {os.path.getsize(a.image)} bytes")
    return 0


if __name__ == "__main__":
    run_main(main)
