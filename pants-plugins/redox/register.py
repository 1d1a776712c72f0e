"""The redox backend: builds Redox OS packages, initfs and disk images with Pants.

Enable with `backend_packages.add = ["redox"]` (and `pythonpath` pointing at pants-plugins/).
"""
from __future__ import annotations

from redox import target_types as vocabulary
from redox.goals import boot, c_package, cargo_package, data_package, disk_image, initfs, run_vm, source
from redox.goals import flat_binary, make_package, rust_std, sysroot
from redox.goals import system, system_options
from redox.system_markers import BUILD_FILE_OBJECTS
from redox.util_rules import (
    dependency_inference,
    image_inputs,
    package_build,
    redox_tools,
    references,
    staged_tree,
    toolchain,
)


def target_types():
    return vocabulary.target_types()


def build_file_aliases():
    from pants.build_graph.build_file_aliases import BuildFileAliases

    return BuildFileAliases(objects=dict(BUILD_FILE_OBJECTS))


def rules():
    return [
        *toolchain.rules(),
        *redox_tools.rules(),
        *staged_tree.rules(),
        *references.rules(),
        *image_inputs.rules(),
        *package_build.rules(),
        *dependency_inference.rules(),
        *source.rules(),
        *cargo_package.rules(),
        *rust_std.rules(),
        *c_package.rules(),
        *flat_binary.rules(),
        *sysroot.rules(),
        *make_package.rules(),
        *data_package.rules(),
        *initfs.rules(),
        *disk_image.rules(),
        *boot.rules(),
        *run_vm.rules(),
        *system.rules(),
        *system_options.rules(),
    ]
