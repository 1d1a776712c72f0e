"""`filesystem`: the disk image's size."""
import re
from typing import Any

from redox_tools.system.types import OptionType, TypeMismatch, option

_SIZE = re.compile(r"^\d+(K|M|G|KiB|MiB|GiB)?$")


class Size(OptionType):
    name = "size (e.g. 512M, 1G, bytes)"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, str) or not _SIZE.match(value):
            raise TypeMismatch(f"expected a size like '512M' or '1G', got {value!r}")
        return value


OPTIONS = {
    "filesystem": {
        "size": option(Size(), "Whole-disk image size; too small for the content is an error giving the size needed.", default="512M"),
    }
}
