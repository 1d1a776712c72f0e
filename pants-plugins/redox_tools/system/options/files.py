"""`files`: arbitrary files, directories and symlinks in the image, keyed by absolute path."""
from __future__ import annotations

from typing import Any, Dict

from redox_tools.system.evaluator import Evaluator
from redox_tools.system.types import BOOL, STR, Int, OptionType, TypeMismatch, attrs_of, normalize_image_path, null_or, option, sub


class Mode(OptionType):
    name = "mode (0o644 or '0644')"

    def check(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            try:
                value = int(value, 8)
            except ValueError:
                raise TypeMismatch(f"expected an octal mode like '0644', got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
            raise TypeMismatch(f"expected a permission mode 0..0o7777, got {value!r}")
        return value


class RepoFile(OptionType):
    """A file in the repository: relative to the declaring module's directory, or `//path` from the root."""

    name = "repository file"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, str) or not value:
            raise TypeMismatch(f"expected a file path in the repository, got {value!r}")
        if ".." in value.split("/"):
            raise TypeMismatch(f"repository file {value!r} may not contain '..'")
        return value

    def relativize(self, value: Any, module_dir: str) -> Any:
        if value.startswith("//"):
            return value[2:]
        return f"{module_dir}/{value}" if module_dir else value


FILE = sub(
    "file",
    text=option(null_or(STR), "Content, written as is (UTF-8).", default=None),
    source=option(null_or(RepoFile()), "Content from a repository file (relative to the module's BUILD directory, or //path).", default=None),
    symlink=option(null_or(STR), "Make a symlink with this target instead.", default=None),
    directory=option(BOOL, "Make a directory instead.", default=False),
    mode=option(null_or(Mode()), "Permissions; unset: 0644 for files, 0755 for directories.", default=None),
    uid=option(Int(0, 65535), "Owner uid.", default=0),
    gid=option(Int(0, 65535), "Owner gid.", default=0),
)

OPTIONS = {
    "files": option(
        attrs_of(FILE),
        "Files by absolute image path; they replace a package's file at the same path (like upstream's installer [[files]]).",
        default={},
        example={"/etc/motd": {"text": "Welcome\n"}},
    ),
}


def check(ev: Evaluator, config: Dict[str, Any]) -> None:
    for path, f in config["files"].items():
        try:
            normalize_image_path(path)
        except TypeMismatch as e:
            raise ev.fail(f"files.{path}", f"{e}") from None
        kinds = [k for k in ("text", "source", "symlink") if f[k] is not None] + (["directory"] if f["directory"] else [])
        if len(kinds) != 1:
            raise ev.fail(f"files.{path}", f"give exactly one of text, source, symlink, directory (got {', '.join(kinds) or 'none'})")


CHECKS = [check]
