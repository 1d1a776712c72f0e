"""`boot`: what starts the system (bootloader on the ESP, kernel and initfs in RedoxFS)."""
from redox_tools.system.types import BOOL, PACKAGE, Int, null_or, option

OPTIONS = {
    "boot": {
        "bootloader": option(
            null_or(PACKAGE),
            """The UEFI application copied to the ESP as /EFI/BOOT/BOOTX64.EFI
            (`<address>[=<path in its staged tree>]`).""",
            default="//packages/system:bootloader",
        ),
        "kernel": option(null_or(PACKAGE), "The kernel, installed at /usr/lib/boot/kernel.", default="//packages/system:kernel"),
        "initfs": option(
            null_or(PACKAGE), "A `redox_initfs` target, installed at /usr/lib/boot/initfs.", default="//packages/system:base-initfs"
        ),
        "esp_size_mib": option(Int(1, 4096), "Size of the EFI system partition in MiB.", default=1),
        "require_boot_files": option(
            BOOL, "Refuse an image without /usr/lib/boot/kernel and /usr/lib/boot/initfs (off only for test images).",
            default=True,
        ),
    }
}
