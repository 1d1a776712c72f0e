"""RedoxFS version 8: image writer, reader and checker (docs/formats/redoxfs.md).

    from redox_tools.redoxfs import write_redoxfs, size_needed, RedoxFSReader, RedoxFSError
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redox_tools.redoxfs.format import RedoxFSError
from redox_tools.redoxfs.writer import default_uuid, size_needed, write_redoxfs

if TYPE_CHECKING:
    from redox_tools.redoxfs.reader import RedoxFSReader, RedoxStat

__all__ = ["RedoxFSError", "RedoxFSReader", "RedoxStat", "write_redoxfs", "size_needed", "default_uuid"]


def __getattr__(name: str) -> Any:
    # The reader is imported when first asked for: a writer process does not pay for it.
    if name in ("RedoxFSReader", "RedoxStat"):
        from redox_tools.redoxfs import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
