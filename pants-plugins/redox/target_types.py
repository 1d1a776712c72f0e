"""The vocabulary of the redox backend: every target type and field, with help text.

`./pants help <target>` renders these; keep the help short, concrete and about the user's
intent. Rules live elsewhere (one concern per module) and only read these fields.
"""
from __future__ import annotations

from pants.core.goals.package import OutputPathField
from pants.core.goals.test import TestTimeoutField
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    Dependencies,
    DictStringToStringField,
    IntField,
    MultipleSourcesField,
    SpecialCasedDependencies,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.strutil import help_text

REDOX_TRIPLE = "x86_64-unknown-redox"
UEFI_TRIPLE = "x86_64-unknown-uefi"
HOST = "host"
KNOWN_TRIPLES = (REDOX_TRIPLE, UEFI_TRIPLE, HOST)


# ---------------------------------------------------------------------------------------------
# Shared fields
# ---------------------------------------------------------------------------------------------


class RedoxTargetTripleField(StringField):
    alias = "rust_target"
    default = REDOX_TRIPLE
    help = help_text(
        f"""
        What the package is built for: `{REDOX_TRIPLE}` (Redox userspace), `{UEFI_TRIPLE}`
        (the bootloader and other UEFI apps) or `{HOST}` (tools that run on the build machine).
        A kernel-style package uses a custom target JSON instead: set `target_spec`.
        """
    )


class RedoxInstallField(DictStringToStringField):
    alias = "install"
    help = help_text(
        """
        Where the package's outputs go in the staged tree: `{"<output name>": "/path/in/image"}`.
        For Cargo the output name is a bin target name (or `lib<name>.a`); for C it is the
        object/library/program name. Executables get mode 755, other files 644. An output that
        the build does not produce is an error naming it.
        """
    )


class RedoxDependenciesField(Dependencies):
    help = help_text(
        """
        Other targets this package needs at build time, e.g. a `redox_source` with the code,
        or a sysroot package.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_source
# ---------------------------------------------------------------------------------------------


class RedoxSourceGitField(StringField):
    alias = "git"
    help = "Git URL of the upstream repository, exactly as the recipe uses it."


class RedoxSourceRevField(StringField):
    alias = "rev"
    help = "The full commit id to check out (40 hex digits). Branch names are not pinned and refused."


class RedoxSourceTreeHashField(StringField):
    alias = "tree_hash"
    help = help_text(
        """
        Content hash of the checked-out tree (submodules included), `sha256:<hex>`; a mismatch is
        an error. Recomputed by the pin-update target on a connected machine.
        """
    )


class RedoxSourceArchiveField(StringField):
    alias = "archive_url"
    help = "Instead of `git`: URL of a source archive (.tar.gz/.tar.xz), verified by `archive_sha256`."


class RedoxSourceArchiveSha256Field(StringField):
    alias = "archive_sha256"
    help = "sha256 of the archive named by `archive_url`."


class RedoxSourcePatchesField(MultipleSourcesField):
    alias = "patches"
    expected_file_extensions = (".patch", ".diff")
    help = "Patch files applied in order (`patch -p1`) after checkout."


class RedoxSourceTarget(Target):
    alias = "redox_source"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        RedoxSourceGitField,
        RedoxSourceRevField,
        RedoxSourceTreeHashField,
        RedoxSourceArchiveField,
        RedoxSourceArchiveSha256Field,
        RedoxSourcePatchesField,
    )
    help = help_text(
        """
        Pinned upstream source code: a git repository at a fixed commit (or an archive with its
        sha256), verified by a hash of the checked-out tree. Fetching is the only network step
        of a build; offline, sources come from `[redox-sources].mirror_dir`.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_cargo_package
# ---------------------------------------------------------------------------------------------


class CargoSourcesField(MultipleSourcesField):
    default = ("Cargo.toml", "Cargo.lock", "src/**/*", "*.json", "*.ld", "*.asm", "build.rs")
    help = help_text(
        """
        The crate's files (Cargo.toml, Cargo.lock, sources, target JSON, linker script). Leave
        empty when the code comes from a `redox_source` dependency.
        """
    )


class CargoTargetSpecField(StringField):
    alias = "target_spec"
    help = help_text(
        """
        Path (relative to the crate) of a custom target JSON, the kernel's way. Overrides
        `rust_target`; needs `build_std`.
        """
    )


class CargoLinkerScriptField(StringField):
    alias = "linker_script"
    help = "Path (relative to the crate) of a linker script passed as `-C link-arg=-T<script>`."


class CargoBuildStdField(StringSequenceField):
    alias = "build_std"
    help = help_text(
        """
        Crates of the standard library to build from the toolchain's rust-src (`-Z build-std`),
        e.g. `["core", "alloc", "compiler_builtins"]`. Needed for every target without a prebuilt
        std (Redox no_std, custom JSON, UEFI with the system toolchain).
        """
    )


class CargoBuildStdFeaturesField(StringSequenceField):
    alias = "build_std_features"
    default = ("compiler-builtins-mem",)
    help = "`-Z build-std-features`; the default provides memcpy & co. for freestanding code."


class CargoFeaturesField(StringSequenceField):
    alias = "features"
    help = "Cargo features to enable (`--features`)."


class CargoNoDefaultFeaturesField(BoolField):
    alias = "no_default_features"
    default = False
    help = "Pass `--no-default-features`."


class CargoRustflagsField(StringSequenceField):
    alias = "rustflags"
    help = "Extra rustc flags for this package (appended after the toolchain's own)."


class CargoProfileField(StringField):
    alias = "profile"
    default = "release"
    help = "Cargo profile: `release` (default) or `dev`, or a custom profile of the crate."


class CargoPackageNameField(StringField):
    alias = "cargo_package"
    help = "Workspace member to build (`-p`); default: the root package."


class CargoBinsField(StringSequenceField):
    alias = "bins"
    help = "Only build these bin targets (`--bin`); default: what `install` names, else all."


class CargoEntryField(StringField):
    alias = "entry"
    help = "Entry symbol passed to the linker (`-C link-arg=--entry=<sym>`) for freestanding binaries."


class CargoNasmSourcesField(StringSequenceField):
    alias = "nasm_sources"
    help = help_text(
        """
        Assembly files (relative to the crate) assembled with `nasm -f elf64` and linked into the
        binary, like the kernel's trampoline.
        """
    )


class CargoVendorField(SpecialCasedDependencies):
    alias = "vendor"
    help = help_text(
        """
        `files` targets, each over a Cargo vendor directory (rooted at its BUILD file), merged with the
        toolchain's std vendor (the same crate + version from both sides appears once). Offline
        builds use only these.
        """
    )


class RedoxCargoPackageTarget(Target):
    alias = "redox_cargo_package"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        CargoSourcesField,
        RedoxDependenciesField,
        RedoxTargetTripleField,
        CargoTargetSpecField,
        CargoLinkerScriptField,
        CargoBuildStdField,
        CargoBuildStdFeaturesField,
        CargoFeaturesField,
        CargoNoDefaultFeaturesField,
        CargoRustflagsField,
        CargoProfileField,
        CargoPackageNameField,
        CargoBinsField,
        CargoEntryField,
        CargoNasmSourcesField,
        CargoVendorField,
        RedoxInstallField,
        OutputPathField,
    )
    help = help_text(
        """
        A Cargo package cross-compiled for Redox (or UEFI, a custom target JSON, or the host),
        built offline and `--frozen` in one sandboxed process. `./pants package` writes its
        staged tree (outputs at their install paths) to dist/.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_c_package
# ---------------------------------------------------------------------------------------------


class CSourcesField(MultipleSourcesField):
    default = ("*.c", "*.h")
    expected_file_extensions = (".c", ".h", ".S", ".s")
    help = "C sources and headers."


class COutputKindField(StringField):
    alias = "output_kind"
    default = "object"
    valid_choices = ("object", "static_lib")
    help = "`object`: one `.o` per source; `static_lib`: `lib<name>.a` of all objects."


class CFlagsField(StringSequenceField):
    alias = "cflags"
    help = "Extra compiler flags."


class RedoxCPackageTarget(Target):
    alias = "redox_c_package"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        CSourcesField,
        RedoxDependenciesField,
        RedoxTargetTripleField,
        COutputKindField,
        CFlagsField,
        RedoxInstallField,
        OutputPathField,
    )
    help = help_text(
        """
        C code compiled with clang for Redox: freestanding (`-ffreestanding -nostdinc` with
        clang's own headers) until a relibc sysroot is wired in.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_initfs
# ---------------------------------------------------------------------------------------------


class InitfsBootstrapField(StringField):
    alias = "bootstrap"
    required = True
    help = help_text(
        """
        The bootstrap program placed at the front of the initfs: `<address>[=<path in its staged
        tree>]`, e.g. `//packages/system:base=usr/lib/boot/bootstrap`, or the address alone when
        the package installs exactly one file.
        """
    )


class InitfsContentsField(Dependencies):
    help = help_text(
        """
        Packages (staged trees) whose files make up the initfs, merged; two packages installing
        the same path differently is an error. The `bootstrap` package is added automatically.
        """
    )


class RedoxInitfsTarget(Target):
    alias = "redox_initfs"
    core_fields = (*COMMON_TARGET_FIELDS, InitfsContentsField, InitfsBootstrapField, OutputPathField)
    help = help_text(
        """
        A Redox initfs image ("RedoxFtw"): the bootstrap ELF followed by the merged staged trees of
        `contents`. Installed at /usr/lib/boot/initfs by a disk image.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_disk_image
# ---------------------------------------------------------------------------------------------


class DiskImageRootField(Dependencies):
    help = help_text(
        """
        Packages (staged trees) whose files make up the RedoxFS root. The `kernel`, `initfs` and
        `bootloader` targets are added automatically.
        """
    )


class DiskImageKernelField(StringField):
    alias = "kernel"
    help = help_text(
        """
        The kernel, `<address>[=<path in its staged tree>]`; installed at /usr/lib/boot/kernel
        (a package that already installs /usr/lib/boot/kernel needs no `=path`).
        """
    )


class DiskImageInitfsField(StringField):
    alias = "initfs"
    help = "A `redox_initfs` target; installed at /usr/lib/boot/initfs."


class DiskImageBootloaderField(StringField):
    alias = "bootloader"
    required = True
    help = help_text(
        """
        The UEFI application copied to the ESP as /EFI/BOOT/BOOTX64.EFI:
        `<address>[=<path in its staged tree>]`.
        """
    )


class DiskImageSizeField(StringField):
    alias = "size"
    default = "512M"
    help = "Whole-disk size (`512M`, `1G`, bytes). Too small for the content is an error giving the size needed."


class DiskImageEspSizeField(IntField):
    alias = "esp_size_mib"
    default = 1
    help = "Size of the EFI system partition in MiB (1 keeps RedoxFS at 2 MiB, where BIOS boot looks)."


class DiskImageSourceDateEpochField(IntField):
    alias = "source_date_epoch"
    help = "Timestamp for every file and filesystem (default: `[redox-image].source_date_epoch`)."


class DiskImageRequireBootFilesField(BoolField):
    alias = "require_boot_files"
    default = True
    help = "Refuse an image without /usr/lib/boot/kernel and /usr/lib/boot/initfs (off only for test images)."


class RedoxDiskImageTarget(Target):
    alias = "redox_disk_image"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        DiskImageRootField,
        DiskImageKernelField,
        DiskImageInitfsField,
        DiskImageBootloaderField,
        DiskImageSizeField,
        DiskImageEspSizeField,
        DiskImageSourceDateEpochField,
        DiskImageRequireBootFilesField,
        OutputPathField,
    )
    help = help_text(
        """
        A bootable GPT disk image: BIOS boot + FAT ESP (the bootloader) + RedoxFS holding the
        root tree, kernel and initfs. Sparse and bit-for-bit reproducible.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_boot_test
# ---------------------------------------------------------------------------------------------


class BootTestImageField(StringField):
    alias = "image"
    required = True
    help = "The `redox_disk_image` to boot."


class BootTestMilestonesField(StringSequenceField):
    alias = "milestones"
    required = True
    help = help_text(
        """
        Ordered serial-console milestones, each `name=regex[@timeout_seconds]`. The test fails at
        the first one not seen in time, with the serial log attached.
        """
    )


class BootTestFailPatternsField(StringSequenceField):
    alias = "fail_patterns"
    help = "Regexes that fail the boot at once when seen on serial (panics, missing RedoxFS)."


class BootTestExpectExitField(IntField):
    alias = "expect_exit"
    help = "Expected QEMU exit status from isa-debug-exit (51 = guest wrote 0x19 = success)."


class BootTestMemoryField(IntField):
    alias = "memory_mib"
    default = 256
    help = "Guest memory in MiB."


class RedoxBootTestTarget(Target):
    alias = "redox_boot_test"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        BootTestImageField,
        BootTestMilestonesField,
        BootTestFailPatternsField,
        BootTestExpectExitField,
        BootTestMemoryField,
        TestTimeoutField,
    )
    help = help_text(
        """
        Boots a disk image headless (QEMU+OVMF; KVM when real, else TCG) and passes when the
        serial milestones appear in order (and the debug-exit status matches). `./pants test`.
        """
    )


def target_types():
    return [
        RedoxSourceTarget,
        RedoxCargoPackageTarget,
        RedoxCPackageTarget,
        RedoxInitfsTarget,
        RedoxDiskImageTarget,
        RedoxBootTestTarget,
    ]
