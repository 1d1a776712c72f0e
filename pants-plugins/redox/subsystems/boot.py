"""`[redox-boot-tests]`: options of `redox_boot_test` targets under `./pants test`."""
from __future__ import annotations

from enum import Enum

from pants.option.option_types import EnumOption, SkipOption, StrListOption
from pants.option.subsystem import Subsystem


class UnavailableSources(Enum):
    skip = "skip"
    fail = "fail"


class RedoxBootTestSubsystem(Subsystem):
    options_scope = "redox-boot-tests"
    name = "redox-boot-tests"
    help = "Boot tests of Redox disk images (QEMU+OVMF headless; KVM when real, else TCG)."

    skip = SkipOption("test")
    path = StrListOption(
        default=["/usr/bin", "/bin", "/usr/sbin", "/sbin"],
        help="PATH for the VM process (where qemu-system-x86_64 and qemu-img are found).",
    )
    unavailable_sources = EnumOption(
        default=UnavailableSources.skip,
        help=(
            "What a boot test does when its image needs upstream sources that cannot be fetched (offline, no "
            "mirror): `skip` (reported as not run, with a warning listing the sources) or `fail` (the fetch "
            "error). Use `fail` on machines that are meant to build the real images."
        ),
    )
