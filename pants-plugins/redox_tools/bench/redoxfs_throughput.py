"""RedoxFS writer throughput against `cp -r`.

    python -m redox_tools.bench.redoxfs_throughput [--mb 200] [--image-mb 512] [--dir DIR] [--repeat N]

Generates a tree of ~200 MB in a temp dir (many small files in ordinary and one big
directory, a few large files), then in the same run times `cp -r` of it and the writer into a
512 MB sparse image (the writer runs in a subprocess, which reports its own time and peak RSS
via ru_maxrss). Prints MB/s of both, the ratio (goal >= 0.5x cp), peak RSS (goal < 256 MB) and
the image's disk usage (st_blocks * 512) against the content size. The CPU time of cp and of
the writer process are shown too: on a busy or disk-bound machine the wall times swing a lot.
With --repeat N the cp/writer pair runs N times on the same tree and the median ratio is shown.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

import numpy as np

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from redox_tools.manifest import Manifest
from redox_tools.redoxfs import write_redoxfs
m = Manifest.load(sys.argv[1])
t1 = time.perf_counter()
with open(sys.argv[2], "r+b") as f:
    write_redoxfs(f, m, offset=0, size=int(sys.argv[3]))
t2 = time.perf_counter()
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"write_s": t2 - t1, "startup_s": t1 - t0, "maxrss_kb": ru.ru_maxrss,
                  "user_s": ru.ru_utime, "sys_s": ru.ru_stime}))
"""


def make_tree(root: str, total_mb: int, seed: int = 1) -> int:
    rng = np.random.default_rng(seed)
    total = total_mb << 20
    big = [total * 25 // 100, total * 15 // 100, total * 10 // 100, 3_000_000, 700_000]
    small_budget = total - sum(big)
    written = 0
    blob = rng.integers(0, 256, size=64 << 20, dtype=np.uint8).tobytes()
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(blob):
            pos = 0
        out = blob[pos : pos + n]
        pos += n
        return out

    os.makedirs(os.path.join(root, "big"), exist_ok=True)
    for i, n in enumerate(big):
        with open(os.path.join(root, "big", f"large{i}.bin"), "wb") as f:
            for k in range(0, n, 8 << 20):
                f.write(take(min(8 << 20, n - k)))
        written += n
    # small files: sizes log-uniform 32 B .. 64 KiB (median ~1.5 KiB), 1/10 in one big dir
    i = 0
    while small_budget > 0:
        n = int(np.exp(rng.uniform(np.log(32), np.log(64 << 10))))
        d = "bigdir" if i % 10 == 0 else f"pkg{i % 97:02d}/sub{i % 7}"
        os.makedirs(os.path.join(root, d), exist_ok=True)
        with open(os.path.join(root, d, f"file{i:06d}.dat"), "wb") as f:
            f.write(take(n))
        written += n
        small_budget -= n
        i += 1
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="tree size in MB")
    ap.add_argument("--image-mb", type=int, default=512)
    ap.add_argument("--dir", help="work directory (default: a new temp dir, removed afterwards)")
    ap.add_argument("--repeat", type=int, default=1, help="cp/writer pairs to time on the same tree")
    args = ap.parse_args(argv)
    from redox_tools.manifest import Manifest  # noqa: E402

    work = args.dir or tempfile.mkdtemp(prefix="redoxfs-bench-")
    try:
        src = os.path.join(work, "tree")
        t = time.perf_counter()
        content = make_tree(src, args.mb)
        nfiles = sum(len(f) for _, _, f in os.walk(src))
        print(f"tree: {nfiles} files, {content / 1e6:.1f} MB (generated in {time.perf_counter() - t:.1f} s)")
        man = Manifest.from_tree(src, relative_to=work)
        mpath = os.path.join(work, "manifest.json")
        man.dump(mpath)
        subprocess.run(["sync"], check=False)
        env = dict(os.environ)
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
        mb = content / 1e6
        size = args.image_mb << 20
        ratios = []
        for rep in range(args.repeat):
            if args.repeat > 1:
                print(f"-- run {rep + 1} of {args.repeat}")
            # cp -r
            dst = os.path.join(work, "copy")
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(["cp", "-r", src, dst], check=True)
            cp_s = time.perf_counter() - t
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cp_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            shutil.rmtree(dst)
            # writer
            img = os.path.join(work, "redoxfs.img")
            if os.path.exists(img):
                os.unlink(img)
            with open(img, "wb") as f:
                f.truncate(size)
            t = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", CHILD, mpath, img, str(size)], check=True, env=env,
                                 stdout=subprocess.PIPE, text=True)
            total_s = time.perf_counter() - t
            figures = json.loads(res.stdout.strip().splitlines()[-1])
            st = os.stat(img)
            print(f"cp -r:   {cp_s:.2f} s  {mb / cp_s:.0f} MB/s  (cpu {cp_cpu:.2f} s: a wall time well above it means cp "
                  "waited for the disk or the CPU)")
            print(f"writer:  {figures['write_s']:.2f} s  {mb / figures['write_s']:.0f} MB/s "
                  f"(process incl. startup {total_s:.2f} s, {mb / total_s:.0f} MB/s; "
                  f"process cpu user {figures['user_s']:.2f} s + sys {figures['sys_s']:.2f} s)")
            print(f"ratio writer/cp: {cp_s / figures['write_s']:.2f}x (process: {cp_s / total_s:.2f}x)  goal >= 0.5x")
            print(f"writer peak RSS: {figures['maxrss_kb'] / 1024:.0f} MB  goal < 256 MB")
            print(f"image: {size >> 20} MiB apparent, {st.st_blocks * 512 / 1e6:.1f} MB on disk, content {mb:.1f} MB "
                  f"({st.st_blocks * 512 / content:.2f}x content)")
            ratios.append(cp_s / figures["write_s"])
        if len(ratios) > 1:
            print(f"median ratio writer/cp over {len(ratios)} runs: {statistics.median(ratios):.2f}x")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
