"""RedoxFS version 8: image writer, reader and checker (docs/formats/redoxfs.md).

    from redox_tools.redoxfs import write_redoxfs, size_needed, RedoxFSReader, RedoxFSError
"""
from __future__ import annotations

from redox_tools.redoxfs.format import RedoxFSError
from redox_tools.redoxfs.reader import RedoxFSReader, RedoxStat
from redox_tools.redoxfs.writer import default_uuid, size_needed, write_redoxfs

__all__ = ["RedoxFSError", "RedoxFSReader", "RedoxStat", "write_redoxfs", "size_needed", "default_uuid"]
