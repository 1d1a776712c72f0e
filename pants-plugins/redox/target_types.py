"""The vocabulary of the redox backend: every target type and field, with help text.

`./pants help <target>` renders these; keep the help short, concrete and about the user's
intent. Rules live elsewhere (one concern per module) and only read these fields.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional, Union

from pants.core.goals.package import OutputPathField
from pants.engine.addresses import Address
from pants.core.goals.test import TestTimeoutField
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    BoolField,
    Dependencies,
    DictStringToStringField,
    Field,
    IntField,
    InvalidFieldException,
    InvalidFieldTypeException,
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


class TargetReferenceField:
    """Mixin for a field whose value names other targets as `<address>[=<path in its staged
    tree>]` (one string, a list, or a dict's values). Dependency inference turns every such
    value into a graph edge, so a new reference field needs no rule of its own."""



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
        Packages this package needs at run time (the recipe's `[package] dependencies`): an image
        or initfs that installs this package installs them too. A dependency that is not a
        package, or a cycle, is an error naming the chain. (Build inputs have their own fields:
        `source`, `vendor`, `sysroot`.)
        """
    )


class RedoxSysrootField(TargetReferenceField, StringField):
    alias = "sysroot"
    help = help_text(
        """
        A `redox_sysroot` (relibc + libgcc: `//packages/relibc:sysroot`) or a `redox_make_package`
        (relibc's install alone) to compile and link against: C gets `-isystem <sysroot>/usr/include` (never host headers); programs are linked by
        ld.lld as `crt0.o crti.o <objects> -L<sysroot>/usr/lib -lc crtn.o` (statically, or
        against libc.so with `linkage="dynamic"`). A build input, not a run-time dependency.
        """
    )


class RedoxLinkageField(StringField):
    alias = "linkage"
    default = "static"
    valid_choices = ("static", "dynamic")
    help = help_text(
        """
        How a program is linked against its `sysroot`. `static` (Redox's default, crt-static):
        libc.a, a static ELF without PT_INTERP. `dynamic` (upstream's DYNAMIC_INIT recipes and
        every `template = "cargo"` recipe): against the sysroot's libc.so, so the program gets
        DT_NEEDED libc.so.6 (the sysroot's `soname`) and PT_INTERP `/usr/lib/<interpreter>`
        (relibc installs its loader, a copy of libc.so, as /usr/lib/ld64.so.1; whether upstream's
        prefix gcc writes /lib/ld64.so.1 instead was not checked here). Rust gets
        `-C target-feature=-crt-static -C prefer-dynamic=no`, so its std links `-lgcc_s`: the
        sysroot must then provide libgcc_s (its `libraries`). Needs `sysroot`; only for programs
        (C `executable`, Cargo bins).
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_source
# ---------------------------------------------------------------------------------------------


class RedoxSourcePinField(StringField):
    alias = "pin"
    help = help_text(
        """
        Name of the source's entry in the pin lock file (`[redox-sources].lock`, default
        3rdparty/redox/sources.lock.toml), which holds its git URL, rev, git tree id, content hash,
        submodules and patches. Default: the target's name.
        """
    )


class RedoxSourceTarget(Target):
    alias = "redox_source"
    core_fields = (*COMMON_TARGET_FIELDS, RedoxSourcePinField)
    help = help_text(
        """
        Pinned upstream source code: a git repository at a fixed commit (or an archive with its
        sha256), verified by a hash of the checked-out tree, with its patches applied. Fetching is the
        only network step of a build; offline, sources come from `[redox-sources].mirror_dirs`.
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


class CargoSourceField(TargetReferenceField, StringField):
    alias = "source"
    help = help_text(
        """
        A `redox_source` target whose checkout holds the code (upstream packages), instead of
        `sources` in the repository.
        """
    )


class CargoSourceSubdirField(StringField):
    alias = "source_subdir"
    help = "Directory of the crate (or C code) inside the `source` checkout (default: its root)."


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
        std (Redox no_std, custom JSON, UEFI with the system toolchain). They are built once per
        (toolchain, target, crates, features, std-shaping profile settings and rustflags) as their
        own cached process and shared by every package of that key (`--sysroot`).
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


class CargoPackageNameField(StringSequenceField):
    alias = "cargo_packages"
    help = help_text(
        """
        Workspace members to build in this one cargo invocation (`-p` each); default: the root
        package. A workspace built in several passes (base: rootfs daemons, then initfs daemons, so
        that feature unification of one set does not leak into the other) is one target per pass.
        """
    )


class CargoProfileSettingsField(DictStringToStringField):
    alias = "profile_settings"
    help = help_text(
        """
        Overrides of the selected Cargo profile, as upstream passes them through the environment
        (`{"opt-level": "s", "panic": "abort"}` -> `CARGO_PROFILE_RELEASE_OPT_LEVEL=s` ...).
        """
    )


class CargoSplitDebugField(StringSequenceField):
    alias = "split_debug"
    help = help_text(
        """
        Bins whose debug info is split off after linking, the kernel's way: `<bin>` becomes the
        stripped ELF (`objcopy --strip-debug`), `<bin>.sym` its debug symbols
        (`objcopy --only-keep-debug`) and `<bin>.all` the linked ELF; each can be named in `install`.
        """
    )


class CargoBinsField(StringSequenceField):
    alias = "bins"
    help = "Only build these bin targets (`--bin`); default: every bin of the package."


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


class CargoEmitObjectField(BoolField):
    alias = "emit_object"
    default = False
    help = help_text(
        """
        Build each package's lib with `cargo rustc --lib -- --emit obj=<crate>.o` (relibc's crt0,
        crti, crtn and ld_so: one relocatable object per crate, `-C codegen-units=1`) instead of
        `cargo build`; `install` names the objects, e.g. `{"crt0.o": "/usr/lib/crt0.o"}`.
        """
    )


class CargoLibOnlyField(BoolField):
    alias = "lib_only"
    default = False
    help = help_text(
        """
        Build only the package's lib target (`cargo build --lib`), like upstream's `cargo rustc
        --lib` for a staticlib whose crate also has bins (the BIOS bootloader's stage 3).
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


class CargoVendorLockfileField(BoolField):
    alias = "vendor_lockfile"
    default = False
    help = help_text(
        """
        Vendor the crates.io crates the crate's own Cargo.lock pins (`cargo vendor --locked`, the
        network step a `source` package takes), for a project crate with crates.io dependencies.
        Off by default: project crates build offline from `vendor` targets and the std vendor.
        """
    )


class RedoxCargoPackageTarget(Target):
    alias = "redox_cargo_package"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        CargoSourcesField,
        CargoSourceField,
        CargoSourceSubdirField,
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
        CargoProfileSettingsField,
        CargoBinsField,
        CargoSplitDebugField,
        CargoEntryField,
        CargoNasmSourcesField,
        CargoEmitObjectField,
        CargoLibOnlyField,
        CargoVendorField,
        CargoVendorLockfileField,
        RedoxSysrootField,
        RedoxLinkageField,
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


class RustStdPackageField(TargetReferenceField, StringField):
    alias = "package"
    required = True
    help = help_text(
        """
        The `redox_cargo_package` (with `build_std`) whose standard library this is: its target,
        `build_std` crates and features, std-shaping profile settings and rustflags make the std
        key, so this is byte for byte the std that package links against.
        """
    )


class RedoxRustStdTarget(Target):
    alias = "redox_rust_std"
    core_fields = (*COMMON_TARGET_FIELDS, RustStdPackageField, OutputPathField)
    help = help_text(
        """
        The prebuilt Rust standard library a cargo package links against (`--sysroot` instead of
        `-Z build-std`), as a package: `./pants package` writes the sysroot
        (`lib/rustlib/<target>/lib/*.rlib`) to dist/. It is the same cached build the package's
        own build uses (one per std key), so packaging it costs nothing more. For cargo builds
        outside Pants (`RUSTFLAGS="--sysroot=dist/..."`, no `-Z build-std`) and for tests that
        need exactly the std the rules build.
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
    valid_choices = ("object", "static_lib", "executable")
    help = help_text(
        """
        `object`: one `.o` per source; `static_lib`: `lib<name>.a` of all objects; `executable`:
        a program named after the target, linked against `sysroot` (required for it; static
        unless `linkage="dynamic"`).
        """
    )


class CFlagsField(StringSequenceField):
    alias = "cflags"
    help = "Extra compiler flags."


class CSourceFilesField(StringSequenceField):
    alias = "source_files"
    help = help_text(
        """
        With `source`: globs (relative to `source_subdir`, `**` allowed) of the .c/.S/.s files of
        the checkout to compile, in order; `!<glob>` drops earlier matches (openlibm's
        `src/e_sqrt.c` when `amd64/e_sqrt.S` replaces it).
        """
    )


class CIncludeDirsField(StringSequenceField):
    alias = "include_dirs"
    help = help_text(
        """
        Directories passed as `-I`, relative to `source_subdir` of the `source` checkout (`..`
        may climb to the checkout root, e.g. relibc's `../include` for openlibm) or, without
        `source`, to the target's directory.
        """
    )


class RedoxCPackageTarget(Target):
    alias = "redox_c_package"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        CSourcesField,
        CargoSourceField,
        CargoSourceSubdirField,
        CSourceFilesField,
        CIncludeDirsField,
        RedoxDependenciesField,
        RedoxTargetTripleField,
        COutputKindField,
        CFlagsField,
        RedoxSysrootField,
        RedoxLinkageField,
        RedoxInstallField,
        OutputPathField,
    )
    help = help_text(
        """
        C code compiled with clang for Redox (`-ffreestanding -nostdinc`: clang's own headers,
        plus the `sysroot`'s usr/include when one is given; never the host's). With a sysroot,
        `output_kind="executable"` links a static program with its crt objects and libc. The code
        is the target's `sources`, or `source_files` of a `source` checkout (openlibm in relibc's).
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_flat_binary
# ---------------------------------------------------------------------------------------------


class FlatBinarySourcesField(MultipleSourcesField):
    default = ("*.ld", "**/*.asm", "**/*.inc")
    help = help_text(
        """
        The linker script and nasm files in the repository (when they do not come from a
        `source` checkout).
        """
    )


class FlatBinaryInputField(TargetReferenceField, StringField):
    alias = "input"
    required = True
    help = help_text(
        """
        What is linked and wrapped: a static library, object or ELF executable another package
        installs, as `<address>[=<path in its staged tree>]` (e.g.
        `:bootloader-bios-lib=usr/lib/libbootloader.a`). A build input, not a run-time dependency.
        """
    )


class FlatBinaryLinkerScriptField(StringField):
    alias = "linker_script"
    help = help_text(
        """
        Linker script (relative to the target's directory, or to `source_subdir` of the `source`
        checkout) for `ld.lld <link_args> -T <script> -o <name>.elf <input>`. Required for a
        static library or object input; an ELF executable input is used as it is.
        """
    )


class FlatBinaryLinkArgsField(StringSequenceField):
    alias = "link_args"
    help = 'Arguments before `-T <script>`, e.g. `["-m", "elf_i386", "--gc-sections", "-z", "max-page-size=0x1000"]`.'


class FlatBinarySplitDebugField(BoolField):
    alias = "split_debug"
    default = False
    help = "Split the linked ELF with objcopy: `--only-keep-debug` -> output `sym`, then `--strip-debug` the ELF."


class FlatBinaryNasmSourceField(StringField):
    alias = "nasm_source"
    required = True
    help = help_text(
        """
        The nasm file assembled with `nasm -f bin` into the flat binary (relative like
        `linker_script`); it gets the linked ELF's path as `-D STAGE3=<path>` (unquoted, as
        upstream: `%defstr` it before `incbin`).
        """
    )


class FlatBinaryNasmIncludeDirsField(StringSequenceField):
    alias = "nasm_include_dirs"
    help = "Directories passed to nasm as `-i <dir>/` (relative like `linker_script`)."


class FlatBinaryNasmDefinesField(DictStringToStringField):
    alias = "nasm_defines"
    help = 'More nasm `-D` macros: `{"NAME": "value"}` (`""` defines NAME without a value).'


class RedoxFlatBinaryTarget(Target):
    alias = "redox_flat_binary"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        FlatBinarySourcesField,
        CargoSourceField,
        CargoSourceSubdirField,
        FlatBinaryInputField,
        FlatBinaryLinkerScriptField,
        FlatBinaryLinkArgsField,
        FlatBinarySplitDebugField,
        FlatBinaryNasmSourceField,
        FlatBinaryNasmIncludeDirsField,
        FlatBinaryNasmDefinesField,
        RedoxDependenciesField,
        RedoxInstallField,
        OutputPathField,
    )
    help = help_text(
        """
        A flat binary made the way the bootloader's BIOS variant is: another package's static
        library linked by ld.lld with a linker script into an ELF (optionally objcopy-split), then
        wrapped by `nasm -f bin` around it (`-D STAGE3=<elf>`). `install` maps the outputs
        `image` (the flat binary), `elf` and `sym` (with `split_debug`) to image paths.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_sysroot
# ---------------------------------------------------------------------------------------------


class SysrootTreesField(TargetReferenceField, StringSequenceField):
    alias = "trees"
    required = True
    help = help_text(
        """
        The packages whose installed trees make up the sysroot, merged: the C library as its
        upstream installs it (relibc's `make install`, a `redox_make_package`) and the compiler
        runtime beside it (libgcc from the prefix toolchain: libgcc.a, libgcc_eh.a, which Rust's
        std links when crt-static, and libgcc_s for dynamic programs). A path two trees both
        install with different contents is an error naming both.
        """
    )


class SysrootInterpreterField(StringField):
    alias = "interpreter"
    default = "ld64.so.1"
    help = help_text(
        """
        File name of the dynamic loader in usr/lib (relibc installs ld64.so.1 -> libc.so on
        x86_64; the catalog installs it as /usr/lib/ld64.so.1). Programs linked against this
        sysroot with `linkage="dynamic"` get PT_INTERP `/usr/lib/<interpreter>`.
        """
    )


class RedoxSysrootTarget(Target):
    alias = "redox_sysroot"
    core_fields = (*COMMON_TARGET_FIELDS, SysrootTreesField, SysrootInterpreterField, OutputPathField)
    help = help_text(
        """
        A sysroot put together from installed trees, like the cookbook's prefix sysroot: relibc
        as its own Makefile installs it plus libgcc. Nothing is rebuilt or re-derived here; the
        trees are merged as they are (symlinks kept). Packages name it in `sysroot`;
        `./pants package` writes it to dist/.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_make_package
# ---------------------------------------------------------------------------------------------


class MakeSourcesField(MultipleSourcesField):
    help = "The package's own tree (Makefile, sources, Cargo.lock) when it does not come from a `source`."


class MakeCommandsField(StringSequenceField):
    alias = "make"
    help = help_text(
        """
        Upstream's own make runs, in order, each `make -j<cpus> <entry>` in the source directory
        (shell-quoted arguments; `{stage}` is the staging directory, the package's root in the
        image), e.g. `["all", "install DESTDIR={stage}/usr PREFIX="]`. The cross tools are passed
        as make variables (`TARGET`, `CC`, `CXX`, `AR`, `LD`, `NM`, `OBJCOPY`, `RANLIB`, `STRIP`),
        so they beat a Makefile's own `CC = <triple>-gcc`.
        """
    )


class MakeScriptField(StringField):
    alias = "script"
    help = help_text(
        """
        Instead of `make`: a cookbook-style bash script (`set -euo pipefail`) run in the source
        directory with the same environment plus `COOKBOOK_SOURCE`, `COOKBOOK_STAGE` (install
        there) and `COOKBOOK_MAKE_JOBS`.
        """
    )


class MakeVariablesField(DictStringToStringField):
    alias = "make_variables"
    help = help_text(
        """
        Extra make variables for every run (they win over the cross tools'): how an upstream
        Makefile's network steps are neutralised without editing it, e.g. `{"GIT": "true"}` for a
        `$(GIT) submodule update` line.
        """
    )


class MakeHostToolsField(TargetReferenceField, StringSequenceField):
    alias = "host_tools"
    help = help_text(
        """
        Host packages (`rust_target="host"`, e.g. `//packages/host:cbindgen`) whose `bin/` goes
        first on the build's PATH.
        """
    )


class MakeSysrootField(TargetReferenceField, StringField):
    alias = "sysroot"
    help = help_text(
        """
        A package whose tree (usr/include, usr/lib) the target C compiler and linker use as
        `--sysroot` (e.g. libgcc for relibc's `-lgcc`). Default: an empty one, never the host's.
        """
    )


class RedoxMakePackageTarget(Target):
    alias = "redox_make_package"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        MakeSourcesField,
        CargoSourceField,
        CargoSourceSubdirField,
        RedoxDependenciesField,
        RedoxTargetTripleField,
        MakeCommandsField,
        MakeScriptField,
        MakeVariablesField,
        CargoRustflagsField,
        MakeHostToolsField,
        MakeSysrootField,
        SysrootInterpreterField,
        OutputPathField,
    )
    help = help_text(
        """
        A package built by its upstream's own entry point (its Makefile, or a cookbook-style
        script), offline in one sandboxed process, with the Redox cross environment the cookbook
        gives recipes: TARGET, CC/CXX/AR/LD/NM/OBJCOPY/RANLIB (LLVM, for the target), cc-rs'
        `CC_<triple>` & co., CARGO with the Cargo.lock's crates vendored (+ the toolchain's std
        vendor for `-Z build-std`), RUSTC_BOOTSTRAP=1, the target's linker and `rustflags`, `-j`
        from the machine. What it installs under `{stage}` is the staged tree (symlinks kept).
        Other packages can name it in `sysroot` (relibc: `make install DESTDIR={stage}/usr`).
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_package_group, redox_data_package
# ---------------------------------------------------------------------------------------------


class PackageGroupMembersField(Dependencies):
    help = help_text(
        """
        The packages (or other groups) in the group. An image or initfs that depends on the group
        installs every member and their run-time `dependencies`.
        """
    )


class RedoxPackageGroupTarget(Target):
    alias = "redox_package_group"
    core_fields = (*COMMON_TARGET_FIELDS, PackageGroupMembersField)
    help = help_text(
        """
        A named set of packages: an upstream package built as several targets (base: two cargo
        passes, bootstrap, initfs, data files) or a profile's package list. Builds nothing itself.
        """
    )


class DataSourcesField(MultipleSourcesField):
    help = "Files in the repository to install (when the files do not come from a `source`)."


class DataInstallField(DictStringToStringField):
    alias = "install"
    help = help_text(
        """
        `{"<path or glob in the package's files>": "/path/in/image"}`. A plain path installs that
        file at the image path; a glob (`init.d/*`, `ui/**`) installs every match under the image
        directory, keeping the path below the glob's first wildcard; with `{dir}` in the image
        path, each match goes exactly there with `{dir}` = its directory's name
        (`"drivers/**/config.toml": "/usr/lib/pcid.d/{dir}.toml"`), `{name}` = its file name
        (`"**/lib/libgcc_s.so*": "/usr/lib/{name}"`). Modes travel with the files.
        """
    )


class DataSymlinksField(DictStringToStringField):
    alias = "symlinks"
    help = 'Symlinks the package installs: `{"/dev/null": "/scheme/null"}` (link -> target).'


class RedoxDataPackageTarget(Target):
    alias = "redox_data_package"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        DataSourcesField,
        CargoSourceField,
        CargoSourceSubdirField,
        RedoxDependenciesField,
        DataInstallField,
        DataSymlinksField,
        OutputPathField,
    )
    help = help_text(
        """
        Files installed as they are (no build): configuration, init units, fonts and icons, from the
        repository or a `redox_source` checkout, plus symlinks.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_initfs
# ---------------------------------------------------------------------------------------------


class InitfsBootstrapField(TargetReferenceField, StringField):
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


class DiskImageKernelField(TargetReferenceField, StringField):
    alias = "kernel"
    help = help_text(
        """
        The kernel, `<address>[=<path in its staged tree>]`; installed at /usr/lib/boot/kernel
        (a package that already installs /usr/lib/boot/kernel needs no `=path`).
        """
    )


class DiskImageInitfsField(TargetReferenceField, StringField):
    alias = "initfs"
    help = "A `redox_initfs` target; installed at /usr/lib/boot/initfs."


class DiskImageBootloaderField(TargetReferenceField, StringField):
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

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Any) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        # the forms redox_tools.image.diskimage.parse_size takes (a bad one would reach its argparse)
        m = re.fullmatch(r"\s*([0-9]+)\s*(|b|[kmgt](?:i?b)?)\s*", value or "", re.IGNORECASE)
        if value is not None and (not m or int(m.group(1)) == 0):
            raise InvalidFieldException(
                f"The `{cls.alias}` field of {address} must be a positive size like 512M, 1G or 1048576, got {value!r}"
            )
        return value


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
        root tree, kernel and initfs. Bit-for-bit reproducible. Written as qcow2
        (`dist/<dir>/<name>.qcow2`: only the data, not the holes; QEMU and Cloud Hypervisor boot
        it); `./pants run :raw-image -- IMAGE.qcow2 OUT.img` gives the raw image.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_boot_test
# ---------------------------------------------------------------------------------------------


class BootTestImageField(TargetReferenceField, StringField):
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


class BootTestScreenChecksField(StringSequenceField):
    alias = "screen_checks"
    help = help_text(
        """
        Checks on the VM's screen, each `MILESTONE: CHECK`. Right after the named milestone is
        reached the VM is paused, QEMU's QMP `screendump` captures the display, the VM resumes
        and the checks run:
        `"gop: not-blank"` (fails when one colour covers more than 99.9% of the screen; `max=F`
        changes that) or `"gop: region 400,300,200,150 #ff00ff"` (rectangle X,Y,W,H in pixels:
        at least 95% of its pixels within 16 per channel of the colour; `tol=N`, `min=F` change
        those). Giving any check boots the VM with a display device (`-vga std -display none`,
        a UEFI GOP framebuffer) instead of none. The screendump is saved as
        `dist/test/<address>/screen-<milestone>.ppm` (+ `.png`) beside `serial.log`; a failing
        check reports what it saw (dominant colour, share) and that path.
        """
    )


SERIAL_REPLIES_HELP = """
        Ordered answers typed on the serial console, each `"PATTERN=>REPLY"`: once PATTERN (a regex
        on the serial text with terminal escapes removed) appears, after the previous reply's
        match, REPLY is sent once. REPLY takes escapes `\\r` `\\n` `\\t` `\\e` `\\xHH` (split at
        the last `=>`). A preset name stands for its entries: `"redox-bootloader-menu"` =
        `"Press e to edit boot environment=>\\r"`, the Enter the Redox UEFI bootloader's
        video-mode menu waits for (forever) whenever a display exists (disk-image.md §10).
        Needs QEMU (its serial console goes through two FIFOs; the log is kept).
"""


class BootTestSerialRepliesField(StringSequenceField):
    alias = "serial_replies"
    help = help_text(SERIAL_REPLIES_HELP)


class RedoxBootTestTarget(Target):
    alias = "redox_boot_test"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        BootTestImageField,
        BootTestMilestonesField,
        BootTestFailPatternsField,
        BootTestExpectExitField,
        BootTestMemoryField,
        BootTestScreenChecksField,
        BootTestSerialRepliesField,
        TestTimeoutField,
    )
    help = help_text(
        """
        Boots a disk image headless (QEMU+OVMF; KVM when real, else TCG) and passes when the
        serial milestones appear in order (and the debug-exit status matches, and the
        `screen_checks` hold). `./pants test`. Progress lines name each milestone reached with
        its elapsed time; the serial log (and any screendumps) are written to
        `dist/test/<address>/`.
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_vm, redox_vm_control (runners: `./pants run`)
# ---------------------------------------------------------------------------------------------

VM_HYPERVISORS = ("auto", "cloud-hypervisor", "qemu")
VM_NETWORKS = ("none", "user", "tap")
VM_CONTROL_ACTIONS = ("pause", "resume", "info", "snapshot", "resize-memory")


class RedoxVmImageField(TargetReferenceField, StringField):
    alias = "image"
    required = True
    help = "The `redox_disk_image` to boot. It is built first and never written: the VM runs on an overlay."


class RedoxVmHypervisorField(StringField):
    alias = "hypervisor"
    default = None
    valid_choices = VM_HYPERVISORS
    help = help_text(
        """
        `auto`: Cloud Hypervisor when its binary, its firmware and real KVM exist; else QEMU+KVM;
        else QEMU+TCG. One line at start says which and why. `qemu` skips Cloud Hypervisor;
        `cloud-hypervisor` fails when it is not usable. Unset: the image's `virtualisation.hypervisor`
        option when it is a `redox_system`, else `auto`.
        """
    )


class RedoxVmGraphicalField(BoolField):
    alias = "graphical"
    default = False
    help = "Open a display window (QEMU GTK, needs the qemu-system-gui package). Default: headless, serial on the terminal."


class RedoxVmHeadlessDisplayField(BoolField):
    alias = "headless_display"
    default = False
    help = help_text(
        """
        Give the VM a display device without opening a window (QEMU `-vga std -display none`):
        the firmware gets a UEFI GOP framebuffer, so graphical drivers and the bootloader's mode
        setting run as on a desktop, QMP `screendump` can capture the screen (dev mode: the
        control socket), and the serial console stays on the terminal. QEMU only.
        """
    )


class RedoxVmCpusField(IntField):
    alias = "cpus"
    default = None
    help = "vCPU count (unset: a `redox_system` image's `virtualisation.cpus`, else 4). `CH_CPUS` overrides it at run time."


class RedoxVmMemoryField(StringField):
    alias = "memory"
    default = None
    help = "Guest RAM: `2048`, `2048M` or `2G` (MiB unless `G`; unset: a `redox_system` image's `virtualisation.memory`, else 2048M). The environment variable `CH_MEMORY` overrides it at run time."


class RedoxVmNetworkField(StringField):
    alias = "network"
    default = None
    valid_choices = VM_NETWORKS
    help = "`none`; `user` (QEMU user-mode NAT, needed for `forwards`); `tap` (a host tap device, see `tap`). Unset: a `redox_system` image's `virtualisation.network`, else `none`."


class RedoxVmTapField(StringField):
    alias = "tap"
    help = "Host tap device name for `network=\"tap\"` (create it beforehand, e.g. `ip tuntap add tap0 mode tap`)."


class RedoxVmForwardsField(StringSequenceField):
    alias = "forwards"
    help = help_text(
        """
        TCP port forwards `HOST:GUEST` (e.g. `2222:22`), bound to 127.0.0.1 only; no other host
        address is accepted. Implies `network="user"` (QEMU).
        """
    )


class RedoxVmDevModeField(BoolField):
    alias = "dev_mode"
    default = False
    help = help_text(
        """
        Keep the VM's control socket (QMP for QEMU, the REST API for Cloud Hypervisor) at a known
        path, `<build root>/.redox-vm/<directory>/<name>/control.sock`, with the VM's overlay disk
        beside it, so `redox_vm_control` targets (pause, resume, info, snapshot, resize-memory)
        reach it. QEMU also gets a virtio-balloon device for resize-memory. One dev VM per target
        at a time. Without dev mode everything lives in the run's temporary sandbox.
        """
    )


class RedoxVmDebugExitField(BoolField):
    alias = "debug_exit"
    default = False
    help = help_text(
        """
        Add QEMU's isa-debug-exit device (port 0xf4): the guest writing 0x19 ends the run with
        status 0 (QEMU's 51), 0x1a with status 1 (QEMU's 53). QEMU only.
        """
    )


class RedoxVmExtraArgsField(StringSequenceField):
    alias = "extra_args"
    help = "Arguments appended to the hypervisor's command line as they are."


class RedoxVmSerialRepliesField(StringSequenceField):
    alias = "serial_replies"
    help = help_text(
        SERIAL_REPLIES_HELP
        + """
        For a runner the terminal stays the serial console (keys go to the guest, Ctrl-C stops
        it); the replies are typed as well, e.g. Enter at the bootloader menu of a VM whose
        display nobody sees (`headless_display`).
"""
    )


class RedoxVmTarget(Target):
    alias = "redox_vm"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        RedoxVmImageField,
        RedoxVmHypervisorField,
        RedoxVmGraphicalField,
        RedoxVmHeadlessDisplayField,
        RedoxVmCpusField,
        RedoxVmMemoryField,
        RedoxVmNetworkField,
        RedoxVmTapField,
        RedoxVmForwardsField,
        RedoxVmDevModeField,
        RedoxVmDebugExitField,
        RedoxVmSerialRepliesField,
        RedoxVmExtraArgsField,
    )
    help = help_text(
        """
        Boots a disk image interactively with `./pants run`: serial console on the terminal
        (Ctrl-C stops the VM and cleans up), the serial log kept in
        `dist/vm/<directory>/<name>/serial.log`, the built image never written.

        Environment knobs read at run time, overriding the fields: `CH_CPUS`, `CH_MEMORY`,
        `CH_HUGEPAGES` (back RAM with hugepages), `CH_DIRECT_IO` (O_DIRECT disk), e.g.
        `CH_CPUS=2 CH_MEMORY=1G ./pants run runners:qemu`.
        """
    )


class RedoxVmControlVmField(TargetReferenceField, StringField):
    alias = "vm"
    required = True
    help = "The `redox_vm` (with `dev_mode=True`) whose running VM to control."


class RedoxVmControlActionField(StringField):
    alias = "action"
    required = True
    valid_choices = VM_CONTROL_ACTIONS
    help = help_text(
        """
        `pause`, `resume`, `info` (status as JSON), `snapshot` (QEMU: VM state + disk into the
        overlay under `--tag`; Cloud Hypervisor: to `--destination DIR`), `resize-memory`
        (`--size=1G`; QEMU through the balloon, Cloud Hypervisor needs memory hotplug).
        """
    )


class RedoxVmControlArgsField(StringSequenceField):
    alias = "args"
    help = "Options for the action, e.g. `[\"--size=1G\"]` or `[\"--tag=dev\"]`; `./pants run <target> -- ...` adds more."


class RedoxVmControlTarget(Target):
    alias = "redox_vm_control"
    core_fields = (*COMMON_TARGET_FIELDS, RedoxVmControlVmField, RedoxVmControlActionField, RedoxVmControlArgsField)
    help = help_text(
        """
        One control action on the running VM of a `redox_vm` in dev mode, with `./pants run`
        (use `--concurrent` while that VM's `./pants run` holds the Pants lock), e.g.
        `./pants --concurrent run runners:pause`. Prints the VM's answer as JSON.
        """
    )


class HostNetworkActionField(StringField):
    alias = "action"
    required = True
    valid_choices = ("setup", "teardown", "status")
    help = "`setup` (idempotent), `teardown` (removes exactly what setup added) or `status`."


class HostNetworkTapField(StringField):
    alias = "tap"
    default = "tap0"
    help = "Name of the TAP device a `redox_vm(network=\"tap\")` attaches to."


class HostNetworkCidrField(StringField):
    alias = "cidr"
    default = "172.30.0.1/24"
    help = "Host address and subnet on the TAP; the guest uses another address of it (static, no DHCP here)."


class HostNetworkUplinkField(StringField):
    alias = "uplink"
    help = "Interface NAT sends the guest's traffic out of (default: the default route's interface)."


class RedoxHostNetworkTarget(Target):
    alias = "redox_host_network"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        HostNetworkActionField,
        HostNetworkTapField,
        HostNetworkCidrField,
        HostNetworkUplinkField,
    )
    help = help_text(
        """
        Host networking for VMs on a TAP device (Cloud Hypervisor's virtio-net): `./pants run` creates
        the TAP with NAT (a dedicated `redox_pants` nftables table), removes it, or shows it. Needs root
        and says so otherwise.
        """
    )


class RedoxToolModuleField(StringField):
    alias = "module"
    required = True
    help = "The tool to run: a `redox_tools.*` module with a command-line main, e.g. `redox_tools.image.inspect`."


class RedoxToolArgsField(StringSequenceField):
    alias = "args"
    help = "Arguments always passed first; `./pants run <target> -- ...` appends more. Paths are relative to the repo."


class RedoxToolTarget(Target):
    alias = "redox_tool"
    core_fields = (*COMMON_TARGET_FIELDS, RedoxToolModuleField, RedoxToolArgsField)
    help = help_text(
        """
        One of the project's pure tools as a `./pants run` target, run from the repository root in its
        locked venv: e.g. `./pants run :inspect -- dist/images/selftest.qcow2 --tree` or
        `./pants run 3rdparty/redox:update-pins` (recomputes source pins; needs the network).
        """
    )


# ---------------------------------------------------------------------------------------------
# redox_module, redox_system (the module system: pants-plugins/redox_tools/system)
# ---------------------------------------------------------------------------------------------


class SystemConfigField(Field):
    """A module's configuration: nested dicts/lists/strings/ints/bools and mk_* markers, kept as
    canonical JSON text (hashable, and what the evaluator process reads)."""

    alias = "config"
    default = "{}"
    help = help_text(
        """
        Option values, NixOS-style: `{"networking": {"mode": "static"}, "users": {"users": {"admin":
        {"uid": 1001}}}}`. Attribute sets merge with other modules' deeply, lists concatenate, a
        value set twice at the same priority is an error; `mk_default(v)`, `mk_force(v)`,
        `mk_override(p, v)`, `mk_if("opt == v", v)`, `mk_merge([...])` change that.
        `./pants redox-options` lists every option.
        """
    )

    @classmethod
    def compute_value(  # type: ignore[override]
        cls, raw_value: Optional[Union[Dict[str, Any], str]], address: Address
    ) -> Optional[str]:
        # (annotated: `./pants help` reads the raw value's type from this signature)
        value = super().compute_value(raw_value, address)
        if value is None or isinstance(value, str):
            return value or "{}"
        if not isinstance(value, dict):
            raise InvalidFieldTypeException(address, cls.alias, raw_value, expected_type="a dict of option values")
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise InvalidFieldException(
                f"The `config` field of {address} holds a value that is not plain data ({e}): use dicts, lists, "
                "strings, numbers, booleans and None"
            ) from None


class ModuleImportsField(TargetReferenceField, StringSequenceField):
    alias = "imports"
    help = "Other `redox_module` targets this module builds on (their definitions come first)."


class RedoxModuleTarget(Target):
    alias = "redox_module"
    core_fields = (*COMMON_TARGET_FIELDS, ModuleImportsField, SystemConfigField)
    help = help_text(
        """
        A module of the system configuration: option values (`config`) on top of the modules it
        `imports`. Profiles (images/profiles) and user configuration are modules; a `redox_system`
        combines them.
        """
    )


class SystemModulesField(TargetReferenceField, StringSequenceField):
    alias = "modules"
    help = help_text(
        """
        The `redox_module` targets making up the system (with everything they import). `./pants
        dependencies` shows them and the packages the evaluated options name
        (`environment.system_packages`, `boot.*`).
        """
    )


class RedoxSystemTarget(Target):
    alias = "redox_system"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        SystemModulesField,
        SystemConfigField,
        DiskImageSourceDateEpochField,
        OutputPathField,
    )
    help = help_text(
        """
        A Redox system: its `modules` (and `config`, a module of its own) evaluated into one
        configuration, whose packages (`environment.system_packages`, `boot.*`) and generated files
        (/etc/passwd, /etc/shadow, /etc/group, homes, /etc/net, init units, ion aliases,
        os-release) make a bootable disk image with `./pants package`. `redox_vm` and
        `redox_boot_test` accept it as `image`. `./pants redox-options --system=<address>` shows
        its evaluated options without building anything.
        """
    )


def target_types():
    return [
        RedoxSourceTarget,
        RedoxCargoPackageTarget,
        RedoxRustStdTarget,
        RedoxCPackageTarget,
        RedoxFlatBinaryTarget,
        RedoxSysrootTarget,
        RedoxMakePackageTarget,
        RedoxPackageGroupTarget,
        RedoxDataPackageTarget,
        RedoxInitfsTarget,
        RedoxDiskImageTarget,
        RedoxBootTestTarget,
        RedoxVmTarget,
        RedoxVmControlTarget,
        RedoxHostNetworkTarget,
        RedoxToolTarget,
        RedoxModuleTarget,
        RedoxSystemTarget,
    ]
