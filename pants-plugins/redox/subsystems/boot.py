"""`[redox-boot-tests]`: options of `redox_boot_test` targets under `./pants test`."""
from __future__ import annotations

from pants.option.option_types import SkipOption, StrListOption
from pants.option.subsystem import Subsystem


class RedoxBootTestSubsystem(Subsystem):
    options_scope = "redox-boot-tests"
    name = "redox-boot-tests"
    help = "Boot tests of Redox disk images (QEMU+OVMF headless; KVM when real, else TCG)."

    skip = SkipOption("test")
    path = StrListOption(
        default=["/usr/bin", "/bin", "/usr/sbin", "/sbin"],
        help="PATH for the VM process (where qemu-system-x86_64 and qemu-img are found).",
    )
