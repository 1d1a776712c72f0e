"""`[redox-image]`: defaults shared by image-building targets."""
from __future__ import annotations

from pants.option.option_types import IntOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import softwrap


class RedoxImageSubsystem(Subsystem):
    options_scope = "redox-image"
    help = "Defaults for initfs and disk images."

    source_date_epoch = IntOption(
        default=0,
        help=softwrap(
            """
            Timestamp (seconds since 1970) of every file, directory and filesystem in images unless
            a target sets its own. Fixed by default so two builds give identical bytes.
            """
        ),
    )
    ovmf_code = StrOption(default="/usr/share/OVMF/OVMF_CODE_4M.fd", help="OVMF firmware code (read-only pflash).")
    ovmf_vars = StrOption(default="/usr/share/OVMF/OVMF_VARS_4M.fd", help="OVMF variable store template (copied per VM).")
    qemu = StrOption(default="/usr/bin/qemu-system-x86_64", help="QEMU system emulator used by boot tests and runners.")
    redoxfs_writer = StrOption(
        default="//packages/host/redoxfs-write",
        help=softwrap(
            """
            The package whose `bin/redoxfs-write` writes every disk image's RedoxFS (the project's
            native writer, built for the build machine); `<address>=<path>` names another file
            of the package. It writes the same bytes as the Python
            writer in `redox_tools.redoxfs`, several times faster. Set to the empty string to
            write RedoxFS in the image process itself with the Python writer (no Rust build).
            """
        ),
    )
