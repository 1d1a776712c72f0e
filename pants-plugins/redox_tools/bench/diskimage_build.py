"""Time a whole disk-image build with the real RedoxFS writer.

    python -m redox_tools.bench.diskimage_build [--files 2000] [--mib 100] [--size 512M]

Makes a synthetic root tree (usr/lib/boot/{kernel,initfs} plus `--files` files totalling
about `--mib` MiB of random data in nested directories), builds the image twice in different
directories and prints build time, throughput, allocated blocks and whether the two builds
are byte-identical.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from typing import Optional, Sequence

from redox_tools.image.diskimage import create_disk_image, image_sha256, parse_size
from redox_tools.manifest import Manifest

MiB = 1 << 20


def make_tree(root: str, files: int, mib: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "usr/lib/boot"))
    with open(os.path.join(root, "usr/lib/boot/kernel"), "wb") as f:
        f.write(b"\x7fELF" + os.urandom(2 * MiB))
    with open(os.path.join(root, "usr/lib/boot/initfs"), "wb") as f:
        f.write(b"RedoxFtw" + os.urandom(4 * MiB))
    total = 0
    budget = mib * MiB
    for i in range(files):
        d = os.path.join(root, "usr/share", f"d{i % 37}", f"e{i % 5}")
        os.makedirs(d, exist_ok=True)
        n = int(rng.expovariate(files / budget)) if budget else 0
        with open(os.path.join(d, f"f{i}.bin"), "wb") as f:
            f.write(os.urandom(n))
        total += n
    return total + 6 * MiB


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m redox_tools.bench.diskimage_build")
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--size", default="512M")
    a = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="diskimage-bench-")
    try:
        content = make_tree(os.path.join(work, "tree"), a.files, a.mib)
        root = Manifest.from_tree(os.path.join(work, "tree"))
        efi = b"MZ" + os.urandom(100 * 1024)
        digests = []
        for run in ("a", "b"):
            os.makedirs(os.path.join(work, run))
            out = os.path.join(work, run, "disk.img")
            t = time.perf_counter()
            info = create_disk_image(out, root=root, efi_app=efi, size=parse_size(a.size), source_date_epoch=1700000000)
            dt = time.perf_counter() - t
            st = os.stat(out)
            print(
                f"build {run}: {dt:.2f} s for {len(root)} entries, {content / MiB:.0f} MiB content "
                f"({content / MiB / dt:.0f} MiB/s); image {st.st_size // MiB} MiB, allocated "
                f"{st.st_blocks * 512 / MiB:.1f} MiB; RedoxFS needs {info.redoxfs_needed / MiB:.1f} MiB"
            )
            t = time.perf_counter()
            digests.append(image_sha256(out))
            print(f"  sha256 {digests[-1]} ({time.perf_counter() - t:.2f} s)")
            if run == "a" and shutil.which("sgdisk"):
                import subprocess

                p = subprocess.run(["sgdisk", "-v", out], capture_output=True, text=True)
                print(f"  sgdisk -v: {'No problems found' if 'No problems found' in p.stdout else p.stdout.strip()}")
        print(f"identical: {digests[0] == digests[1]}")
        return 0 if digests[0] == digests[1] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
