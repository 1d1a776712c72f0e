"""The package build drivers: one process per package build, run by the rules with a JSON spec.

`python -m redox_tools.builders.<driver> SPEC.json` for `cargo_build` (redox_cargo_package),
`c_build` (redox_c_package), `make_build` (redox_make_package: upstream's own Makefile or script)
and `flat_binary` (redox_flat_binary). `driver` is their shared command line, spec loading and
base cargo environment; `cross_env` the Redox cross environment (tool wrappers, cc-rs variables)
that cargo and make builds run in. The std sysroot builder is `redox_tools.stdlib`.
"""
