"""Take drivers out of an installed tree (a root or initfs manifest): the file-level filter behind
a system's `hardware.drivers` option.

The driver builds stay shared (base builds every upstream driver once); an image that wants fewer
drops, for each dropped driver NAME:

* its program: `/usr/lib/drivers/NAME` (rootfs) and `/lib/drivers/NAME` (initfs);
* every `[[drivers]]` entry that starts it from a pcid-spawner or xhcid config
  (`*/pcid.d/*.toml`, `*/xhcid.d/*.toml`: `command = ["NAME", ...]`, or an absolute path whose
  last part is NAME, like `/scheme/initfs/lib/drivers/NAME`). The rest of such a file keeps its
  bytes; a file left without entries is dropped (upstream installs one config per driver,
  `/usr/lib/pcid.d/NAME.toml`, and one initfs list, `/lib/pcid.d/initfs.toml`).

Pure (manifest in, manifest out); `assemble --drop-drivers` runs it. Rewritten configs are
written under `work_dir`, named by their content hash, so two runs give the same manifest.
"""
from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import replace
from typing import Any, Iterable, List, Optional, Set

from redox_tools.errors import ToolError
from redox_tools.manifest import FILE, Manifest
from redox_tools.safeio import replace_new

DRIVER_DIRS = ("/usr/lib/drivers", "/lib/drivers")
CONFIG_DIRS = ("pcid.d", "xhcid.d")
_HEADER = re.compile(r"^\s*\[\[\s*drivers\s*\]\]\s*(#.*)?$")
_TABLE = re.compile(r"^\s*\[")


class DriverFilterError(ToolError):
    pass


def command_driver(entry: Any) -> Optional[str]:
    """The driver program a `[[drivers]]` entry starts (the last part of `command[0]`)."""
    if not isinstance(entry, dict):
        return None
    command = entry.get("command")
    if not isinstance(command, list) or not command or not isinstance(command[0], str):
        return None
    return command[0].rstrip("/").rsplit("/", 1)[-1]


def filter_config(text: str, drop: Set[str], where: str) -> Optional[str]:
    """`text` (a pcid/xhcid driver config) without the `[[drivers]]` entries of dropped drivers:
    the same text when none is dropped, None when none is left."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DriverFilterError(f"{where}: not a valid driver config ({e})") from None
    entries = data.get("drivers", [])
    others = sorted(k for k in data if k != "drivers")
    if not isinstance(entries, list) or others:
        raise DriverFilterError(
            f"{where}: a driver config holds only `[[drivers]]` entries; found {', '.join(others) or 'drivers = ...'}"
        )
    keep = [command_driver(e) not in drop for e in entries]
    if all(keep):
        return text
    if not any(keep):
        return None
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    tables = [i for i, line in enumerate(lines) if _TABLE.match(line)]
    if len(starts) != len(entries) or tables != starts:
        raise DriverFilterError(f"{where}: cannot tell its `[[drivers]]` entries apart line by line")
    # A comment right above an entry's header belongs to that entry.
    bounds: List[int] = []
    for s in starts:
        while s > 0 and lines[s - 1].lstrip().startswith("#"):
            s -= 1
        bounds.append(s)
    out = lines[: bounds[0]]
    for n, (start, kept) in enumerate(zip(bounds, keep)):
        end = bounds[n + 1] if n + 1 < len(bounds) else len(lines)
        if kept:
            out += lines[start:end]
    result = "".join(out)
    left = tomllib.loads(result).get("drivers", [])
    if left != [e for e, k in zip(entries, keep) if k]:
        raise DriverFilterError(f"{where}: filtering its `[[drivers]]` entries changed the ones kept")
    return result


def is_config(path: str) -> bool:
    parent, name = os.path.split(path)
    return name.endswith(".toml") and os.path.basename(parent) in CONFIG_DIRS


def drop_drivers(manifest: Manifest, drop: Iterable[str], work_dir: str) -> Manifest:
    """`manifest` without the dropped drivers' programs and config entries."""
    dropped = set(drop)
    if not dropped:
        return manifest
    entries = []
    for e in manifest:
        image_path = "/" + e.path.lstrip("/")  # manifest paths have no leading slash
        parent, name = os.path.split(image_path)
        if parent in DRIVER_DIRS and name in dropped:
            continue
        if e.kind == FILE and is_config(image_path):
            where = f"{image_path} (from {e.origin or 'the tree'})"
            try:
                text = manifest.read(e).decode("utf-8")
            except UnicodeDecodeError:
                raise DriverFilterError(f"{where}: not UTF-8 text") from None
            filtered = filter_config(text, dropped, where)
            if filtered is None:
                continue
            if filtered != text:
                data = filtered.encode("utf-8")
                digest = hashlib.sha256(data).hexdigest()
                os.makedirs(work_dir, exist_ok=True)
                path = os.path.join(os.path.abspath(work_dir), digest)
                with replace_new(path) as f:
                    f.write(data)
                e = replace(e, source=path, sha256=digest, size=len(data))
        entries.append(e)
    return Manifest(entries, manifest.base_dir)
