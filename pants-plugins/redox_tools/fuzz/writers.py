"""Differential fuzzing of the two RedoxFS writers: the reference (`redox_tools.redoxfs`, Python)
and the native one (`redoxfs-write`, packages/host/redoxfs-write).

Each case makes a random tree on disk and its manifest (names of every length up to the limit,
UTF-8 beyond ASCII, file sizes around every layout boundary: empty, inline limit, one record,
record multiples, records through a BlockList, all-zero pages; symlinks short and stored in
records; directories big enough for HTree levels; implied parents; random modes, owners and
times; duplicate entries with the same content) and a random size, offset, UUID and ctime. Both
writers write it; the images must be byte-identical and equally sparse. Some cases are made
impossible on purpose (a source changed after its manifest, an image too small, a name over the
limit, a file below a file): then both must refuse, with the same message.

Shared by `fuzz/writers_test.py` (fixed seed) and `python -m redox_tools.bench.redoxfs_writers_diff`.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from redox_tools.manifest import DIR, FILE, SYMLINK, Entry, Manifest
from redox_tools.redoxfs import RedoxFSError, size_needed, write_redoxfs
from redox_tools.redoxfs.format import BLOCK_SIZE
from redox_tools.redoxfs.native import first_difference

RECORD = BLOCK_SIZE << 5
# sizes around the layout's boundaries: inline limit 3967, records of 128 KiB, level-0 pointers
# for 128 records (16 MiB) before the first BlockList
SIZES = [0, 1, 7, 3966, 3967, 3968, 3969, 4095, 4096, 4097, 8191, 65536, RECORD - 1, RECORD, RECORD + 1,
         3 * RECORD + 37856, 5 * RECORD]
BIG = [128 * RECORD, 128 * RECORD + 5, 130 * RECORD + 4097]  # through a level-1 BlockList
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-_.~ " + "éöß€☃漢字😀"
OUTCOMES = ("identical", "both refused alike", "DIFFERENT")


@dataclass
class Case:
    manifest: Manifest
    size: int
    offset: int
    uuid: Optional[bytes]
    ctime: Optional[int]
    what: str  # what the case is, for a report
    corrupt_after: List[Tuple[str, bytes]] = field(default_factory=list)  # (source, new bytes) after the manifest


def _name(rng: random.Random, taken: set) -> str:
    while True:
        r = rng.random()
        if r < 0.03:
            n = "n" * 252 if rng.random() < 0.5 else "é" * 126  # at the 252-byte limit
        else:
            n = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 24)))
        n = n.strip() or "x"
        if n not in (".", "..") and n not in taken:
            taken.add(n)
            return n


def _content(rng: random.Random, size: int) -> bytes:
    kind = rng.random()
    if kind < 0.2:
        return bytes(size)  # all-zero pages stay holes
    if kind < 0.4 and size > 2 * BLOCK_SIZE:  # data with zero pages in between
        out = bytearray(size)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(size)
            n = min(size - at, rng.randint(1, 3 * BLOCK_SIZE))
            out[at : at + n] = rng.randbytes(n)
        return bytes(out)
    return rng.randbytes(size)


def make_case(rng: random.Random, root: str, *, big: bool = False) -> Case:
    """A random tree under `root` (created) and how to write it."""
    os.makedirs(root)
    entries: List[Entry] = []
    dirs = [""]
    names: Dict[str, set] = {"": set()}
    nfiles = 0

    def child(parent: str) -> str:
        n = _name(rng, names.setdefault(parent, set()))
        return f"{parent}/{n}" if parent else n

    for _ in range(rng.randint(0, 8)):
        d = child(rng.choice(dirs))
        dirs.append(d)
        names[d] = set()
        if rng.random() < 0.8:  # else implied (no entry of its own)
            entries.append(Entry(d, DIR, rng.randrange(0o10000), rng.randrange(1 << 32), rng.randrange(1 << 32),
                                 rng.choice([0, 1, rng.randrange(1 << 64)])))
    if rng.random() < 0.25:  # an HTree directory (several DirList blocks)
        d = child("")
        dirs.append(d)
        names[d] = set()
        for i in range(rng.randint(100, 700)):
            entries.append(Entry(f"{d}/entry-{i:05d}-" + "y" * rng.randint(0, 60), SYMLINK, 0o777, target=f"t{i}"))
    sizes = SIZES + (BIG if big else [])
    for _ in range(rng.randint(1, 40)):
        p = child(rng.choice(dirs))
        r = rng.random()
        if r < 0.15:
            target = "x" * rng.choice([1, 100, 3967, 3968, 5000]) if rng.random() < 0.3 else rng.choice(["/scheme/null", "../a", "bin"])
            entries.append(Entry(p, SYMLINK, 0o777, rng.randrange(1 << 32), 0, rng.randrange(1 << 40), target=target))
            continue
        size = rng.choice(sizes)
        data = _content(rng, size)
        src = os.path.join(root, f"src{nfiles}")
        nfiles += 1
        with open(src, "wb") as f:
            f.write(data)
        e = Entry(p, FILE, rng.randrange(0o10000), rng.randrange(1 << 32), rng.randrange(1 << 32),
                  rng.randrange(1 << 64), source=os.path.basename(src), sha256=hashlib.sha256(data).hexdigest(),
                  size=size)
        entries.append(e)
        if rng.random() < 0.05:
            entries.append(e)  # the same file twice is one entry
    m = Manifest(entries, root)
    need = size_needed(m)
    size = need + BLOCK_SIZE * rng.choice([0, 1, 63, 64, 1000, rng.randrange(4096)])
    case = Case(m, size, rng.choice([0, 0, 512, 1 << 20, 4096 * rng.randrange(1, 600)]),
                rng.randbytes(16) if rng.random() < 0.5 else None,
                rng.choice([None, 0, 1700000000, (1 << 64) - 1]), f"{len(entries)} entries, {size} bytes")
    return _maybe_impossible(rng, case, root)


def _maybe_impossible(rng: random.Random, case: Case, root: str) -> Case:
    r = rng.random()
    files = [e for e in case.manifest if e.kind == FILE and e.size > 0]
    if r < 0.06 and files:
        e = rng.choice(files)
        case.corrupt_after.append((os.path.join(root, e.source or ""), bytes(e.size)[:-1] + b"\x01"))
        case.what += ", a source changed after its manifest"
    elif r < 0.10:
        case.size = max(BLOCK_SIZE, case.size - BLOCK_SIZE * rng.randint(65, 5000)) // BLOCK_SIZE * BLOCK_SIZE
        case.what += ", image too small"
    elif r < 0.13:
        # '@' is not in ALPHABET: these never meet a random entry
        if rng.random() < 0.5:
            extra = [Entry("@" * 253, DIR, 0o755)]
        else:
            extra = [Entry("@f", FILE, 0o644, source="@none", sha256="0" * 64), Entry("@f/below", DIR, 0o755)]
        case.manifest = Manifest(list(case.manifest) + extra, root)
        case.what += ", an impossible entry"
    return case


def _native_write(tool: str, case: Case, manifest_path: str, image: str) -> Tuple[int, str]:
    args = [tool, "create", "--manifest", manifest_path, "--into", image, "--offset", str(case.offset),
            "--size", str(case.size), "-q"]
    if case.uuid is not None:
        args += ["--uuid", case.uuid.hex()]
    if case.ctime is not None:
        args += ["--ctime", str(case.ctime)]
    res = subprocess.run(args, capture_output=True, text=True)
    return res.returncode, res.stderr.strip()


def run_case(tool: str, case: Case, work: str) -> Tuple[str, str]:
    """Write `case` with both writers in `work`; (outcome, detail)."""
    for src, data in case.corrupt_after:
        with open(src, "wb") as f:
            f.write(data)
    manifest_path = os.path.join(case.manifest.base_dir, "manifest.json")
    case.manifest.dump(manifest_path)
    images = []
    for name in ("python.img", "native.img"):
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.truncate(case.offset + max(case.size, 0))
        images.append(path)
    py_error: Optional[str] = None
    try:
        with open(images[0], "r+b") as f:
            write_redoxfs(f, case.manifest, offset=case.offset, size=case.size, uuid=case.uuid, ctime=case.ctime)
    except RedoxFSError as exc:
        py_error = str(exc)
    code, err = _native_write(tool, case, manifest_path, images[1])
    native_error = err[len("error: "):] if code == 2 and err.startswith("error: ") else None
    if code not in (0, 2):
        return OUTCOMES[2], f"{case.what}: redoxfs-write exit {code}: {err[-500:]}"
    if py_error is not None or native_error is not None:
        if py_error == native_error:
            return OUTCOMES[1], py_error or ""
        return OUTCOMES[2], f"{case.what}: python says {py_error!r}, native says {native_error!r}"
    diff = first_difference(images[0], images[1], offset=case.offset)
    if diff is not None:
        return OUTCOMES[2], f"{case.what}: the images differ: {diff}"
    blocks = [os.stat(p).st_blocks for p in images]
    if abs(blocks[0] - blocks[1]) > 64:  # 512-byte units: the same holes, give or take the fs's allocation
        return OUTCOMES[2], f"{case.what}: same bytes but {blocks[0]} vs {blocks[1]} blocks on disk"
    return OUTCOMES[0], case.what


def fuzz(tool: str, cases: int, seed: int, work: str, *, big_every: int = 10) -> Dict[str, List[str]]:
    """Run `cases` cases; outcome -> details. Every `big_every`-th case has files past 16 MiB."""
    rng = random.Random(seed)
    out: Dict[str, List[str]] = {o: [] for o in OUTCOMES}
    for i in range(cases):
        root = os.path.join(work, f"case{i}")
        case = make_case(rng, root, big=big_every > 0 and i % big_every == big_every - 1)
        outcome, detail = run_case(tool, case, work)
        out[outcome].append(f"case {i}: {detail}")
        shutil.rmtree(root)
    return out
