"""RedoxFS writer throughput against `cp -r` and upstream `redoxfs-ar`, as alternating pairs.

    python -m redox_tools.bench.redoxfs_throughput [--mb 200] [--image-mb 512] [--dir DIR] [--repeat N]
        [--against cp,redoxfs-ar] [--redoxfs-ar PATH] [--writer python|native] [--redoxfs-write PATH]
    python -m redox_tools.bench.redoxfs_throughput --memory 100000 [--dir DIR] [--writer python|native]

Generates a tree of ~200 MB in a temp dir (under DIR if given: choose the file system to
measure; many small files in ordinary and one big directory, a few large files) and its
manifest, then times PAIRS in one run: the writer (a subprocess: Python start, manifest load,
write into a 512 MB sparse image; with `--writer native` the native writer instead,
packages/host/redoxfs-write, `redoxfs-write create --into IMAGE`: its start, manifest load and
write on $REDOXFS_WRITE_THREADS or all cores; found as redox_tools.redoxfs.native finds it, or
given with --redoxfs-write) against each other leg on the same tree — `cp -r` of the
tree, and upstream `redoxfs-ar IMAGE TREE` (redoxfs 0.8.0, packages/host:redoxfs-crate; found
in dist/ or given with --redoxfs-ar) when it is built. The order inside a pair alternates
(writer first, then the other first), so drift in machine load hits both legs alike.

Every leg writes into fresh space: its own new copy or image, none deleted before the run
ends (deleting a 200 MB tree right before a leg makes that leg pay for the file system's
cleanup: cp -r of this tree took 1-3 s after an rm -rf and 0.2-0.6 s into fresh space), and
`sync` runs (untimed) before each leg so no leg pays for the previous one's writeback. (Space
freed shortly before a run, e.g. by another run's clean-up, can still slow its cp legs ~3x on
an ext4 mounted with `discard`: compare figures within one run.)

Each pair prints its own ratio (the other leg's time / the writer's time = the writer's
throughput relative to it) and its ratio of CPU times. The run closes with the median of the
pair ratios and with the figure the goal (>= 0.8x) is judged by: the other leg at its FASTEST
(its best wall time) against the writer's median, so a degraded cp leg cannot flatter the
writer. Every leg is timed as a whole process with os.wait4: wall time, CPU time and peak RSS. A
leg whose wall time is more than twice its CPU time is flagged "waited": it spent most of its
time waiting for the disk or for the CPU (a loaded machine), so its pair's wall ratio says
little; the CPU-time ratios are the figures a loaded machine disturbs least. The image's disk
usage (st_blocks) against the content size shows that the writer's image stays sparse.

`--memory FILES` instead writes one image of FILES tiny files (1..256 bytes, 100 per directory)
and prints the writer's peak RSS (goal: 100 000 files < 150 MiB), for either writer.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

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


@dataclass
class Leg:
    name: str
    wall: float
    cpu: float
    maxrss_kb: int
    detail: str = ""

    @property
    def waited(self) -> bool:
        return self.wall > 2 * max(self.cpu, 1e-9)

    def line(self, mb: float) -> str:
        flag = f"  WAITED (cpu {self.cpu:.2f} s of {self.wall:.2f} s wall)" if self.waited else ""
        return (f"  {self.name:<11} {self.wall:6.2f} s  {mb / self.wall:5.0f} MB/s  cpu {self.cpu:5.2f} s  "
                f"peak RSS {self.maxrss_kb / 1024:4.0f} MB{self.detail}{flag}")


# Runs argv[1:] and prints its rusage as JSON. A process started straight from this (large)
# bench process would report the bench's own RSS as its peak (Linux keeps the pre-exec address
# space's high-water mark), so each leg starts from this small launcher (~10 MB floor).
LAUNCH = r"""
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
sys.stderr.write("\nRUSAGE " + json.dumps({"code": os.waitstatus_to_exitcode(status), "cpu": ru.ru_utime + ru.ru_stime,
                                           "maxrss_kb": ru.ru_maxrss}) + "\n")
"""


def _timed(name: str, cmd: List[str], env: Optional[dict] = None) -> Tuple[Leg, str]:
    """Run `cmd` as one process: wall time (including the launcher's ~20 ms), CPU time, peak RSS."""
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-S", "-c", LAUNCH, *cmd], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    err = res.stderr.decode(errors="replace")
    tail = err.rsplit("\nRUSAGE ", 1)
    if len(tail) != 2:
        raise SystemExit(f"{name}: launcher failed: {err.strip()[-500:]}")
    fig = json.loads(tail[1])
    if fig["code"] != 0:
        raise SystemExit(f"{name} failed (exit {fig['code']}): {(res.stdout.decode(errors='replace') + tail[0]).strip()[-500:]}")
    return Leg(name, wall, fig["cpu"], fig["maxrss_kb"]), res.stdout.decode(errors="replace")


def _find_redoxfs_ar(explicit: Optional[str]) -> Optional[str]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    for cand in (explicit, os.path.join(root, "dist", "packages.host", "redoxfs-crate", "bin", "redoxfs-ar"),
                 shutil.which("redoxfs-ar")):
        if cand and os.path.isfile(cand):
            return cand
    return None


def make_tiny_tree(root: str, nfiles: int, per_dir: int = 100, seed: int = 2) -> int:
    """`nfiles` tiny files (1..256 bytes: inline in their node blocks), `per_dir` to a directory."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 257, size=nfiles).tolist()
    blob = rng.integers(0, 256, size=1 << 16, dtype=np.uint8).tobytes()
    written = 0
    for i, n in enumerate(sizes):
        d = os.path.join(root, f"d{i // per_dir // 100:03d}", f"e{i // per_dir % 100:02d}")
        if i % per_dir == 0:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:06d}"), "wb") as f:
            f.write(blob[(i * 97) % (len(blob) - 256) :][:n])
        written += n
    return written


def _sync() -> None:
    """Flush the previous leg's dirty pages (untimed), so no leg pays for another's writeback."""
    subprocess.run(["sync"], check=False)


def _writer_leg(native: Optional[str], mpath: str, img: str, size: int, env: dict) -> Tuple[Leg, Optional[float]]:
    """The writer's leg, the whole process (start, manifest load, write into `img`): the native
    writer when `native` is its path, else the Python one, which also reports its write alone (s)."""
    if native is not None:
        leg, _ = _timed("writer", [native, "create", "--manifest", mpath, "--into", img, "--size", str(size), "-q"], env)
        return leg, None
    leg, out = _timed("writer", [sys.executable, "-c", CHILD, mpath, img, str(size)], env)
    return leg, json.loads(out.strip().splitlines()[-1])["write_s"]


def _memory(work: str, nfiles: int, image_mb: int, env: dict, native: Optional[str] = None) -> int:
    src = os.path.join(work, "tiny")
    t = time.perf_counter()
    content = make_tiny_tree(src, nfiles)
    from redox_tools.manifest import Manifest

    man = Manifest.from_tree(src, relative_to=work)
    mpath = os.path.join(work, "tiny-manifest.json")
    man.dump(mpath)
    del man
    print(f"tree: {nfiles} tiny files, {content / 1e6:.1f} MB (generated in {time.perf_counter() - t:.1f} s)")
    size = image_mb << 20
    img = os.path.join(work, "tiny.img")
    with open(img, "wb") as f:
        f.truncate(size)
    _sync()
    leg, write_s = _writer_leg(native, mpath, img, size, env)
    alone = f" (write alone {write_s:.2f} s)" if write_s is not None else ""
    print(f"writer: {leg.wall:.2f} s wall, cpu {leg.cpu:.2f} s{alone}, "
          f"peak RSS {leg.maxrss_kb / 1024:.0f} MiB  goal < 150 MiB for 100 000 files")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="tree size in MB")
    ap.add_argument("--image-mb", type=int, default=512)
    ap.add_argument("--dir", help="work directory (default: a new temp dir; what the run makes in it is removed at the end)")
    ap.add_argument("--repeat", type=int, default=3, help="pairs per other leg (order alternates)")
    ap.add_argument("--against", default="cp,redoxfs-ar", help="other legs: cp, redoxfs-ar (comma-separated)")
    ap.add_argument("--redoxfs-ar", help="upstream redoxfs-ar binary (default: dist/packages.host/redoxfs-crate/bin)")
    ap.add_argument("--memory", type=int, metavar="FILES",
                    help="instead: peak RSS of one writer run over FILES tiny files (e.g. 100000)")
    ap.add_argument("--writer", choices=("python", "native"), default="python",
                    help="the writer measured: redox_tools.redoxfs (python) or packages/host/redoxfs-write (native)")
    ap.add_argument("--redoxfs-write", help="the native writer binary (default: $REDOXFS_WRITE, then dist/)")
    args = ap.parse_args(argv)
    from redox_tools.manifest import Manifest  # noqa: E402

    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    against = [a for a in args.against.split(",") if a]
    for a in against:
        if a not in ("cp", "redoxfs-ar"):
            raise SystemExit(f"--against: unknown leg {a!r} (cp, redoxfs-ar)")
    ar = _find_redoxfs_ar(args.redoxfs_ar) if "redoxfs-ar" in against and args.memory is None else None
    if "redoxfs-ar" in against and ar is None and args.memory is None:
        print("redoxfs-ar not built (./pants package packages/host:redoxfs-crate): its pairs are skipped")
        against.remove("redoxfs-ar")
    native: Optional[str] = None
    if args.writer == "native":
        from redox_tools.errors import ToolError
        from redox_tools.redoxfs.native import find_writer

        try:
            native = find_writer(args.redoxfs_write)
        except ToolError as e:
            raise SystemExit(f"error: {e}") from None
        threads = env.get("REDOXFS_WRITE_THREADS") or f"{os.cpu_count()} (all cores)"
        print(f"writer: native {native}, threads {threads}")
    elif args.redoxfs_write:
        raise SystemExit("error: --redoxfs-write is for --writer native")
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="redoxfs-bench-", dir=args.dir)
    try:
        if args.memory is not None:
            return _memory(work, args.memory, args.image_mb, env, native)
        src = os.path.join(work, "tree")
        t = time.perf_counter()
        content = make_tree(src, args.mb)
        nfiles = sum(len(f) for _, _, f in os.walk(src))
        print(f"tree: {nfiles} files, {content / 1e6:.1f} MB (generated in {time.perf_counter() - t:.1f} s) in {work}")
        man = Manifest.from_tree(src, relative_to=work)
        mpath = os.path.join(work, "manifest.json")
        man.dump(mpath)
        mb = content / 1e6
        size = args.image_mb << 20
        legs_run = [0]

        def target(kind: str) -> str:
            # Every leg writes into fresh space: nothing is deleted until the run ends (deleting
            # the previous copy right before a leg made cp pay for the file system's cleanup).
            legs_run[0] += 1
            return os.path.join(work, f"{kind}-{legs_run[0]}")

        def image(kind: str) -> str:
            path = target(kind) + ".img"
            with open(path, "wb") as f:
                f.truncate(size)
            return path

        def writer() -> Tuple[Leg, str]:
            img = image("redoxfs")
            _sync()
            leg, write_s = _writer_leg(native, mpath, img, size, env)
            if write_s is not None:
                leg.detail = f"  (write alone {write_s:.2f} s = {mb / write_s:.0f} MB/s)"
            return leg, img

        def other(name: str) -> Leg:
            if name == "cp":
                dst = target("copy")
                _sync()
                leg, _ = _timed("cp -r", ["cp", "-r", src, dst])
                return leg
            img = image("upstream")
            _sync()
            leg, _ = _timed("redoxfs-ar", [str(ar), img, src])
            return leg

        ratios: Dict[str, List[Tuple[float, bool]]] = {a: [] for a in against}
        cpu_ratios: Dict[str, List[float]] = {a: [] for a in against}
        legs: Dict[str, List[Leg]] = {"writer": [], **{a: [] for a in against}}
        pair = 0
        img = ""
        for rep in range(args.repeat):
            for a in against:
                pair += 1
                first_writer = pair % 2 == 1
                if first_writer:
                    w, img = writer()
                    o = other(a)
                else:
                    o = other(a)
                    w, img = writer()
                r = o.wall / w.wall
                waited = w.waited or o.waited
                ratios[a].append((r, waited))
                legs["writer"].append(w)
                legs[a].append(o)
                order = "writer first" if first_writer else f"{o.name} first"
                cpu_r = o.cpu / max(w.cpu, 1e-9)
                cpu_ratios[a].append(cpu_r)
                print(f"pair {pair} ({order}): writer/{o.name} throughput {r:.2f}x (by CPU time {cpu_r:.2f}x)"
                      + ("  (a leg WAITED: this wall-time ratio says little)" if waited else ""))
                print(w.line(mb))
                print(o.line(mb))
        if img:
            st = os.stat(img)
            print(f"image: {size >> 20} MiB apparent, {st.st_blocks * 512 / 1e6:.1f} MB on disk, content {mb:.1f} MB "
                  f"({st.st_blocks * 512 / content:.2f}x content)")
        ws = legs["writer"]
        w_med = statistics.median(x.wall for x in ws)
        w_cpu = statistics.median(x.cpu for x in ws)
        print(f"writer: median {w_med:.2f} s wall (best {min(x.wall for x in ws):.2f} s), "
              f"median cpu {w_cpu:.2f} s; peak RSS {max(x.maxrss_kb for x in ws) / 1024:.0f} MB")
        for a, rs in ratios.items():
            if not rs:
                continue
            vals = [r for r, _ in rs]
            clean = [r for r, waited in rs if not waited]
            os_ = legs[a]
            best = min(os_, key=lambda x: x.wall)
            best_cpu = min(x.cpu for x in os_)
            print(f"writer vs {a}: pair ratios median {statistics.median(vals):.2f}x over {len(vals)} pairs "
                  f"(min {min(vals):.2f}x, max {max(vals):.2f}x"
                  + (f"; median of the {len(clean)} pairs without waiting {statistics.median(clean):.2f}x" if clean else
                     "; every pair had a leg that waited")
                  + f"; by CPU time {statistics.median(cpu_ratios[a]):.2f}x)")
            print(f"  against {a} at its fastest: {a} best {best.wall:.2f} s wall (median {statistics.median(x.wall for x in os_):.2f} s), "
                  f"writer median {w_med:.2f} s -> {best.wall / w_med:.2f}x  goal >= 0.8x;  by CPU time: {a} best "
                  f"{best_cpu:.2f} s / writer median {w_cpu:.2f} s = {best_cpu / max(w_cpu, 1e-9):.2f}x;  "
                  f"peak RSS {a} {max(x.maxrss_kb for x in os_) / 1024:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
