"""Test trees for the RedoxFS writers: entries with their sources written under a root."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, List

from redox_tools.manifest import DIR, FILE, SYMLINK, Entry, Manifest


class Tree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: List[Entry] = []
        self.content: Dict[str, bytes] = {}

    def file(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int = 0) -> None:
        src = self.root / "src" / path
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(data)
        self.entries.append(Entry(path, FILE, mode, uid, gid, mtime, source=str(src),
                                  sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
        self.content[path] = data

    def sparse_file(self, path: str, size: int, pieces: Dict[int, bytes]) -> bytes:
        src = self.root / "src" / path
        src.parent.mkdir(parents=True, exist_ok=True)
        with open(src, "wb") as f:
            f.truncate(size)
            for off, data in pieces.items():
                f.seek(off)
                f.write(data)
        data = src.read_bytes()
        self.entries.append(Entry(path, FILE, 0o644, source=str(src), sha256=hashlib.sha256(data).hexdigest(), size=size))
        self.content[path] = data
        return data

    def dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: int = 0) -> None:
        self.entries.append(Entry(path, DIR, mode, uid, gid, mtime))

    def link(self, path: str, target: str, uid: int = 0) -> None:
        self.entries.append(Entry(path, SYMLINK, 0o777, uid, 0, 7, target=target))

    def manifest(self) -> Manifest:
        return Manifest(self.entries)
