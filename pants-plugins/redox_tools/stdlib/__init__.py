"""The Rust standard library built once per (toolchain, target, crates, features, codegen settings)
as a sysroot that package builds link against with `--sysroot` instead of `-Z build-std`."""
