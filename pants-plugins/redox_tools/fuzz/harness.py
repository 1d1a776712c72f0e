"""Run fuzz cases and classify their outcomes (shared by the fuzz tests and the bench).

Outcome classes: `accepted` (the mutation left something the reader reads), `clean error` (the
reader's own one-line error class), `accepted although corrupt` (read fine, but the judge — a
real tool such as fsck.fat/sgdisk -v, or an invariant — says it is corrupt), `other exception`
(a reader bug), `memory` (the reader tried to grow the address space past the target's bound:
RLIMIT_AS turns that into MemoryError). `slow` (over `slow_s` seconds) is counted on top.

A whole target runs in one forked child (`isolated`) whose address space may grow by at most
`mem_limit` bytes once its seeds are built (`arm`), so a runaway allocation is a counted outcome instead of a dead machine, and
the limit never touches the calling process (pytest).
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import os
import pickle
import resource
import signal
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Counter, List, Optional, Sequence, Tuple, Type

ACCEPTED = "accepted"
CLEAN = "clean error"
CORRUPT = "accepted although corrupt"
OTHER = "other exception"
MEMORY = "memory"
SLOW = "slow"
CLASSES = (ACCEPTED, CLEAN, CORRUPT, OTHER, MEMORY, SLOW)
FAILURES = (CORRUPT, OTHER, MEMORY, SLOW)


@dataclass
class Tally:
    name: str
    counts: Counter[str] = field(default_factory=collections.Counter)
    examples: List[str] = field(default_factory=list)
    slowest: float = 0.0
    peak: int = 0  # largest RSS growth of one case, bytes
    seconds: float = 0.0

    def cases(self) -> int:
        return sum(self.counts[c] for c in (ACCEPTED, CLEAN, CORRUPT, OTHER, MEMORY))

    def failures(self) -> int:
        return sum(self.counts[c] for c in FAILURES)

    def line(self) -> str:
        cells = "  ".join(f"{c}: {self.counts[c]}" for c in CLASSES)
        return (f"{self.name:<8} {self.cases():>6} cases  {cells}  | slowest {self.slowest * 1000:.0f} ms, "
                f"largest RSS growth {self.peak / 2**20:.1f} MiB, {self.seconds:.1f} s")

    def report(self, failing: Sequence[str] = FAILURES) -> bool:
        """Print the tally's line and its first examples; True when a `failing` class occurred."""
        print(self.line(), flush=True)
        for ex in self.examples[:5]:
            print("    " + ex.strip().replace("\n", "\n    ")[-1500:])
        return any(self.counts[c] for c in failing)


def bench_main(prog: str, doc: str, target: Callable[..., Tally], argv: Optional[Sequence[str]] = None) -> int:
    """The command line of a one-reader fuzz bench: `--cases N` (or `-n N`) cases of `target`
    from `--seed`, a case stopped after 60 s; exit status 1 when any case failed."""
    ap = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc.split("\n\n")[0])
    ap.add_argument("--cases", "-n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    return 1 if target(a.cases, a.seed, hang_s=60).report() else 0


class _Hang(Exception):
    pass


def _on_alarm(_sig: int, _frame: Any) -> None:
    raise _Hang()


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def run_case(
    tally: Tally,
    what: str,
    fn: Callable[[], object],
    clean: Tuple[Type[BaseException], ...],
    *,
    judge: Optional[Callable[[], object]] = None,
    slow_s: float = 5.0,
    hang_s: int = 0,
) -> str:
    """Run `fn` and count its outcome; `judge()` (only called when `fn` accepted) returns True
    for a corrupt input. `hang_s` > 0 (the bench, never the tests) stops a case after that many
    seconds (SIGALRM) and counts it as slow."""
    if _GC_MARK and _status_kib("VmSize") > _GC_MARK:
        gc.collect()  # earlier cases' reference cycles (readers held by nested closures)
    _reset_peak_rss()
    rss0 = _status_kib("VmRSS")
    detail = ""
    if hang_s:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(hang_s)
    t = time.perf_counter()
    try:
        fn()
        outcome = CORRUPT if judge is not None and judge() else ACCEPTED
    except _Hang:
        outcome = SLOW
    except clean:
        outcome = CLEAN
    except MemoryError:
        outcome, detail = MEMORY, "address-space bound reached"
    except Exception:  # noqa: BLE001 - what fuzzing looks for
        outcome, detail = OTHER, traceback.format_exc(limit=4)
    finally:
        if hang_s:
            signal.alarm(0)
    dt = time.perf_counter() - t
    tally.seconds += dt
    tally.slowest = max(tally.slowest, dt)
    tally.peak = max(tally.peak, max(0, _status_kib("VmHWM") - rss0) << 10)
    if outcome == SLOW or dt > slow_s:
        tally.counts[SLOW] += 1
        tally.examples.append(f"{what}: took {dt:.1f} s")
    if outcome != SLOW:
        tally.counts[outcome] += 1
    if outcome in (CORRUPT, OTHER, MEMORY):
        tally.examples.append(f"{what}: {outcome} {detail}".rstrip())
    return outcome


_PENDING_BOUND = 0
_GC_MARK = 0  # VmSize (KiB) above which run_case first collects garbage


def arm() -> None:
    """Called by a target once its seeds are built: inside `isolated`, from now on the address
    space may grow by the bound at most (elsewhere a no-op)."""
    global _PENDING_BOUND, _GC_MARK
    if _PENDING_BOUND:
        _GC_MARK = _status_kib("VmSize") + (_PENDING_BOUND >> 12)  # a quarter of the bound
        try:  # a fixed mmap threshold: big buffers are mapped and unmapped, never left in the heap
            ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (glibc)
        except (OSError, AttributeError):
            pass
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, ((_status_kib("VmSize") << 10) + _PENDING_BOUND, hard))
        _PENDING_BOUND = 0
_GC_MARK = 0  # VmSize (KiB) above which run_case first collects garbage


def isolated(fn: Callable[[], Tally], mem_limit: int) -> Tally:
    """Run a whole fuzz target in a forked child whose address space may grow by `mem_limit`
    bytes at most; returns its Tally (a child that dies is reported as one `other exception`)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        global _PENDING_BOUND
        _PENDING_BOUND = mem_limit  # applied by the target's arm() after its setup
        try:
            data = pickle.dumps(fn())
        except BaseException:  # noqa: BLE001 - reported to the parent
            t = Tally("?")
            t.counts[OTHER] += 1
            t.examples.append(traceback.format_exc(limit=6))
            data = pickle.dumps(t)
        with os.fdopen(wfd, "wb") as w:
            w.write(data)
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        data = r.read()
    _pid, status = os.waitpid(pid, 0)
    if not data:
        t = Tally("?")
        t.counts[OTHER] += 1
        t.examples.append(f"fuzz child ended with status {status:#x} without a report")
        return t
    tally: Tally = pickle.loads(data)
    return tally
