"""What every package build driver (cargo_build, c_build, make_build, flat_binary) shares:
reading its JSON spec into its dataclass, checking `install` paths, and staging outputs under
`out_dir` at their image paths. Errors are the caller's ToolError subclass, naming the package."""
from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type, TypeVar

from redox_tools.errors import ToolError

T = TypeVar("T")


def spec_main(module: str, doc: Optional[str], build: Callable[[str], Iterable[str]], argv: Optional[Sequence[str]]) -> int:
    """The command line every driver has: `python -m <module> SPEC.json`, printing what it staged."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=(doc or "").strip().splitlines()[0])
    parser.add_argument("spec", help="JSON build spec")
    for line in build(parser.parse_args(argv).spec):
        print(line)
    return 0


def resolve(path: str, root: str) -> str:
    """A spec path: absolute as given, else relative to the sandbox root."""
    return path if os.path.isabs(path) else os.path.join(root, path)


def cargo_env(path: Sequence[str], work: str, cargo_home: str, rustc: str) -> Dict[str, str]:
    """The environment every cargo run of the drivers starts from: nothing of the caller's but
    `path`, a private HOME/CARGO_HOME, the toolchain's rustc with nightly features, fixed time,
    no colours, no incremental state."""
    return {
        "PATH": os.pathsep.join(path),
        "HOME": work,
        "CARGO_HOME": cargo_home,
        "RUSTC": rustc,
        "RUSTC_BOOTSTRAP": "1",
        "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0"),
        "CARGO_TERM_COLOR": "never",
        "CARGO_INCREMENTAL": "0",
    }


def load_spec(cls: Type[T], path: str, error: Type[ToolError], what: str) -> T:
    """`cls(**json)` of the spec file; an unknown or missing key -> `bad <what> spec <path>: ...`."""
    with open(path) as f:
        data: Any = json.load(f)
    try:
        return cls(**data)
    except TypeError as e:
        raise error(f"bad {what} spec {path}: {e}") from None


def image_relpath(package: str, name: str, dest: str, error: Type[ToolError]) -> str:
    """`dest` (an install path) relative to the image root; refused unless it is a plain path."""
    rel = dest.lstrip("/")
    parts = rel.split("/")
    if not rel or ".." in parts or "" in parts or "." in parts:
        raise error(
            f"{package}: install path {dest!r} for `{name}` is not a plain path inside the image "
            "(no empty, '.' or '..' components)"
        )
    return rel


def stage(out_dir: str, files: Iterable[Tuple[str, str, int]]) -> List[str]:
    """Copy each (source file, image-relative path, mode) under `out_dir`; the paths staged."""
    staged = []
    for src, rel, mode in files:
        target = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(src, target)
        os.chmod(target, mode)
        staged.append(rel)
    return staged
