"""Symlinks in a fetched source tree must stay inside it (issue 11 #8).

A pinned tree with a link to `/etc/shadow` (or `../../..`) would carry a host path into every
package staged from it, and into an image. `refuse_escaping_links(tree, who)` walks the tree
(never following links) and raises `ToolError` naming the pin for an absolute link target or
a relative one that climbs above the tree's root.
"""
from __future__ import annotations

import os
import posixpath

from redox_tools.errors import ToolError


def escapes(link_rel: str, target: str) -> bool:
    """True when `target`, read from the link at `link_rel` (relative to the tree root), is
    absolute or leads above the root (judged lexically, like the archive check)."""
    if posixpath.isabs(target) or target.startswith("\\"):
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link_rel), target))
    return joined == ".." or joined.startswith("../")


def refuse_escaping_links(tree: str, who: str) -> None:
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                continue
            rel = os.path.relpath(path, tree).replace(os.sep, "/")
            target = os.readlink(path)
            if escapes(rel, target):
                raise ToolError(f"{who}: the pinned tree has a symlink {rel} -> {target} pointing outside the tree; refusing it")
