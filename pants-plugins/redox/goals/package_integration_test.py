"""The package rules end to end through Pants' engine, with the real toolchain and real tools.

Each test lays out a build root holding the project's own fixtures, the `redox_tools` sources
and the `redox-tools` lockfile, exactly as in the repository, then asks the engine for the
packages. Outputs are checked with a real tool (llvm-readelf).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
from pants.backend.python import register as python_backend
from pants.backend.python import target_types_rules
from pants.backend.python.util_rules import pex_from_targets
from pants.core.goals.package import BuiltPackage
from pants.core.target_types import FileTarget, FilesGeneratorTarget
from pants.core.util_rules import archive, system_binaries
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.testutil.rule_runner import QueryRule, RuleRunner

from redox import register
from redox.goals.c_package import CPackageFieldSet
from redox.goals.cargo_package import CargoPackageFieldSet
from redox.goals.rust_std import RustStdFieldSet
from redox.goals.flat_binary import FlatBinaryFieldSet

# The pex tool, a declared input (//:pex) at its repository path in this test's sandbox: no
# checkout path reaches the test's environment, so its result is shared between clones.
PEX = os.path.abspath(".bootstrap/pex-v2.1.137")
READELF = "/usr/bin/llvm-readelf-22"

pytestmark = pytest.mark.skipif(not os.path.isfile(READELF), reason="needs llvm-22 (3rdparty/tools/host-packages)")


def redox_rule_runner(*queries: QueryRule) -> RuleRunner:
    """A RuleRunner with the redox backend, Python's and the files target types, and `queries`
    (besides WrappedTarget by WrappedTargetRequest, which every test asks for)."""
    return RuleRunner(
        rules=[
            *register.rules(),
            *pex_from_targets.rules(),
            *target_types_rules.rules(),
            *archive.rules(),
            *system_binaries.rules(),
            QueryRule(WrappedTarget, [WrappedTargetRequest]),
            *queries,
        ],
        target_types=[*register.target_types(), *python_backend.target_types(), FileTarget, FilesGeneratorTarget],
    )


def build_root_files(*, requirements: bool = True) -> Dict[str, str]:
    """`repo_files()` with the BUILD files the tools venv needs: redox_tools as sources of the
    redox-tools resolve and, with `requirements`, one python_requirement per line of the real
    requirements file (the same lockfile); without, none (tests that run no tool)."""
    files = repo_files()
    lines = files["3rdparty/python/redox-tools-requirements.txt"].splitlines() if requirements else []
    reqs = [r.strip() for r in lines if r.strip()]
    files["3rdparty/python/BUILD"] = "".join(
        f"python_requirement(name='r{i}', requirements=[{r!r}], resolve='redox-tools')\n" for i, r in enumerate(reqs)
    )
    files["pants-plugins/redox_tools/BUILD"] = 'python_sources(resolve="redox-tools", sources=["**/*.py"])\n'
    return files


def test_pex_is_a_declared_input() -> None:
    assert os.path.isfile(PEX), f"{PEX} is missing: the test needs //:pex (built by ./pants) as a dependency"


def repo_files() -> Dict[str, str]:
    """The repository files the build root needs, read from this test's sandbox."""
    files: Dict[str, str] = {}
    # Resources may arrive with or without their source root stripped.
    for root in ("redox_tools", "pants-plugins/redox_tools", "packages/fixtures", "3rdparty/python"):
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = os.path.join(dirpath, name)
                if "__pycache__" in path:
                    continue
                dest = f"pants-plugins/{path}" if root == "redox_tools" else path
                if dest.endswith("_test.py") or name == "BUILD":  # a test writes the BUILD files it means
                    continue
                with open(path, encoding="utf-8", errors="surrogateescape") as f:
                    files[dest] = f.read()
    return files


BUILD_FILES = {
    "packages/fixtures/c-object/BUILD": (
        'redox_c_package(name="c-object", install={"hello.o": "/usr/lib/redox-pants/hello.o"})\n'
    ),
    "packages/fixtures/redox-hello/BUILD": """
redox_cargo_package(
    name="redox-hello",
    build_std=["core", "compiler_builtins"],
    rustflags=["-Crelocation-model=static", "-Ctarget-feature=+crt-static"],
    entry="_start",
    install={"redox-hello": "/usr/bin/redox-hello"},
)
redox_cargo_package(
    name="wrong-install",
    build_std=["core", "compiler_builtins"],
    rustflags=["-Crelocation-model=static", "-Ctarget-feature=+crt-static"],
    install={"no-such-binary": "/usr/bin/x"},
)
redox_cargo_package(name="no-install", build_std=["core"])
redox_cargo_package(name="bad-std", build_std=["no_such_std_crate"], install={"redox-hello": "/usr/bin/x"})
redox_cargo_package(name="no-build-std", install={"redox-hello": "/usr/bin/x"})
redox_rust_std(name="std", package=":redox-hello")
redox_rust_std(name="std-of-c", package="//packages/fixtures/c-object")
redox_rust_std(name="std-of-no-build-std", package=":no-build-std")
""",
    "packages/fixtures/bios-shaped/BUILD": """
redox_cargo_package(
    name="stage3",
    sources=["Cargo.toml", "Cargo.lock", "src/**/*.rs", "x86-unknown-none.json"],
    target_spec="x86-unknown-none.json",
    build_std=["core"],
    lib_only=True,
    install={"libbios_shaped.a": "/usr/lib/libbios_shaped.a"},
)
redox_flat_binary(
    name="bios-shaped",
    sources=["linker.ld", "asm/**/*.asm"],
    input=":stage3=usr/lib/libbios_shaped.a",
    linker_script="linker.ld",
    link_args=["-m", "elf_i386", "--gc-sections", "-z", "max-page-size=0x1000"],
    split_debug=True,
    nasm_source="asm/bootloader.asm",
    nasm_include_dirs=["asm/include"],
    install={"image": "/usr/lib/boot/bios-shaped.bios", "elf": "/usr/lib/boot/bios-shaped.elf"},
)
redox_flat_binary(
    name="missing-nasm-source",
    sources=["linker.ld", "asm/**/*.asm"],
    input=":stage3=usr/lib/libbios_shaped.a",
    linker_script="linker.ld",
    nasm_source="asm/missing.asm",
    install={"image": "/x.bios"},
)
redox_flat_binary(
    name="missing-stage3",
    sources=["linker.ld", "asm/**/*.asm"],
    input=":stage3=usr/lib/libbootloader.a",
    linker_script="linker.ld",
    nasm_source="asm/bootloader.asm",
    install={"image": "/x.bios"},
)
""",
    "packages/broken/BUILD": 'redox_cargo_package(name="no-crate", sources=["*.txt"], install={"x": "/x"})\n',
    "packages/broken/README.txt": "not a crate\n",
}


@pytest.fixture(scope="module")
def rule_runner() -> RuleRunner:
    rr = redox_rule_runner(
        QueryRule(BuiltPackage, [CargoPackageFieldSet]),
        QueryRule(BuiltPackage, [CPackageFieldSet]),
        QueryRule(BuiltPackage, [FlatBinaryFieldSet]),
        QueryRule(BuiltPackage, [RustStdFieldSet]),
    )
    rr.write_files({**build_root_files(), **BUILD_FILES})
    configure(rr, search_path=["/usr/bin"])
    return rr


def configure(rr: RuleRunner, *, search_path: List[str], extra: Sequence[str] = ()) -> None:
    rr.set_options(
        [
            "--source-root-patterns=['/pants-plugins']",
            "--python-enable-resolves",
            "--python-default-resolve=redox-tools",
            "--python-resolves={'redox-tools': '3rdparty/python/redox-tools.lock'}",
            "--python-interpreter-constraints=['CPython==3.11.*']",
            "--python-bootstrap-search-path=['<PYENV>', '<PATH>']",
            "--pex-cli-version=v2.1.137",
            "--pex-cli-known-versions=['v2.1.137|linux_x86_64|"
            "4d9441e1672e636527ea430e8c59b0884d823dd8ce61ba3f8ecaa443a215087f|4098294']",
            f"--pex-cli-url-template=file://{PEX}",
            "--subprocess-environment-env-vars=['PIP_CONFIG_FILE=/dev/null']",
            "--ca-certs-path=/etc/ssl/certs/ca-certificates.crt",
            "--redox-toolchain-provider=system",
            f"--redox-toolchain-search-path={search_path!r}",
            *extra,
        ],
        env_inherit={"PATH", "PYENV_ROOT", "HOME"},
    )


def package(rr: RuleRunner, address: Address, field_set_type) -> BuiltPackage:
    target = rr.request(WrappedTarget, [WrappedTargetRequest(address, description_of_origin="test")]).target
    return rr.request(BuiltPackage, [field_set_type.create(target)])


def materialize(rr: RuleRunner, built: BuiltPackage, dest: Path) -> Path:
    rr.write_digest(built.digest, path_prefix=str(dest.relative_to(rr.build_root)))
    return dest


def readelf(path: Path, *flags: str) -> str:
    return subprocess.run([READELF, *flags, str(path)], check=True, capture_output=True, text=True).stdout


def test_cargo_package_builds_a_static_redox_binary(rule_runner: RuleRunner) -> None:
    built = package(rule_runner, Address("packages/fixtures/redox-hello", target_name="redox-hello"), CargoPackageFieldSet)
    assert [a.relpath for a in built.artifacts] == ["packages.fixtures.redox-hello/redox-hello/usr/bin/redox-hello"]
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-hello")
    binary = out / "packages.fixtures.redox-hello/redox-hello/usr/bin/redox-hello"
    assert os.access(binary, os.X_OK)
    header = readelf(binary, "-h")
    assert "ELF64" in header and "EXEC (Executable file)" in header and "X86-64" in header
    symbols = readelf(binary, "-s")
    entry = int(header.split("Entry point address:")[1].split()[0], 16)
    start = next(line.split()[1] for line in symbols.splitlines() if line.endswith(" _start"))
    assert entry == int(start, 16) != 0
    assert "redox_hello_marker" in symbols
    assert "INTERP" not in readelf(binary, "-l")


def test_rust_std_packages_the_std_the_package_links_against(rule_runner: RuleRunner) -> None:
    hello = Address("packages/fixtures/redox-hello", target_name="redox-hello")
    package(rule_runner, hello, CargoPackageFieldSet)
    built = package(rule_runner, Address("packages/fixtures/redox-hello", target_name="std"), RustStdFieldSet)
    lib = "packages.fixtures.redox-hello/std/lib/rustlib/x86_64-unknown-redox/lib/"
    paths = sorted(a.relpath or "" for a in built.artifacts)
    assert [p[len(lib):].split("-")[0] for p in paths if p.startswith(lib)] == ["libcompiler_builtins", "libcore"]
    assert len(paths) == 2
    # Cached like any process: a new session packages it again without building.
    rule_runner.new_session("std-again")
    configure(rule_runner, search_path=["/usr/bin"])
    assert package(rule_runner, Address("packages/fixtures/redox-hello", target_name="std"), RustStdFieldSet).digest == built.digest


@pytest.mark.parametrize(
    "name, expected",
    [
        ("std-of-c", ["the `package` field of packages/fixtures/redox-hello:std-of-c", "`redox_c_package`"]),
        ("std-of-no-build-std", ["packages/fixtures/redox-hello:no-build-std has no `build_std`"]),
    ],
)
def test_rust_std_of_a_package_without_one_is_one_clear_error(rule_runner: RuleRunner, name: str, expected: List[str]) -> None:
    with pytest.raises(ExecutionError) as excinfo:
        package(rule_runner, Address("packages/fixtures/redox-hello", target_name=name), RustStdFieldSet)
    message = str(excinfo.value)
    for part in expected:
        assert part in message, message
    assert "Traceback" not in message.split("PackageBuildError")[-1]


def test_c_package_and_process_cache(rule_runner: RuleRunner, tmp_path: Path) -> None:
    # Wrap clang so every real invocation leaves a line in a log outside the sandbox.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "clang-runs.log"
    (bindir / "clang-22").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec /usr/bin/clang-22 "$@"\n')
    (bindir / "clang-22").chmod(0o755)
    for tool in ("rustc", "cargo", "ld.lld-22", "llvm-ar-22"):
        os.symlink(f"/usr/bin/{tool}", bindir / tool)
    configure(rule_runner, search_path=[str(bindir)])
    try:
        address = Address("packages/fixtures/c-object", target_name="c-object")
        built = package(rule_runner, address, CPackageFieldSet)
        relpath = built.artifacts[0].relpath
        assert relpath is not None
        obj = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-c") / relpath
        assert "REL (Relocatable file)" in readelf(obj, "-h")
        assert "redox_c_hello" in readelf(obj, "-s")
        compiles = [line for line in log.read_text().splitlines() if " -c " in f" {line} "]
        assert len(compiles) == 1
        # A new session asks again: the compile process is a cache hit, clang does not run.
        rule_runner.new_session("second")
        configure(rule_runner, search_path=[str(bindir)])
        again = package(rule_runner, address, CPackageFieldSet)
        assert again.digest == built.digest
        assert len([line for line in log.read_text().splitlines() if " -c " in f" {line} "]) == 1
    finally:
        configure(rule_runner, search_path=["/usr/bin"])


@pytest.mark.parametrize(
    "address, expected",
    [
        (
            Address("packages/fixtures/redox-hello", target_name="wrong-install"),
            ["packages/fixtures/redox-hello:wrong-install", "no-such-binary", "it builds: redox-hello"],
        ),
        (
            Address("packages/fixtures/redox-hello", target_name="no-install"),
            ["packages/fixtures/redox-hello:no-install", "`install` is empty"],
        ),
        (Address("packages/broken", target_name="no-crate"), ["packages/broken:no-crate", "no Cargo.toml"]),
        (
            # The std is its own (shared) process; its failure still names the package.
            Address("packages/fixtures/redox-hello", target_name="bad-std"),
            ["packages/fixtures/redox-hello:bad-std", "`build_std` failed to build", "no_such_std_crate"],
        ),
    ],
)
def test_bad_packages_fail_with_one_clear_error(rule_runner: RuleRunner, address: Address, expected: List[str]) -> None:
    with pytest.raises(ExecutionError) as excinfo:
        package(rule_runner, address, CargoPackageFieldSet)
    message = str(excinfo.value)
    for part in expected:
        assert part in message
    assert "Traceback" not in message.split("PackageBuildError")[-1]


def test_flat_binary_wraps_the_linked_i386_elf(rule_runner: RuleRunner) -> None:
    # The Rust staticlib for the i686 target JSON (core built with build-std), linked by ld.lld
    # -m elf_i386 with linker.ld, stripped, and incbin'ed by nasm after the 512-byte stage.
    address = Address("packages/fixtures/bios-shaped", target_name="bios-shaped")
    built = package(rule_runner, address, FlatBinaryFieldSet)
    out = materialize(rule_runner, built, Path(rule_runner.build_root) / "dist-bios")
    boot = out / "packages.fixtures.bios-shaped/bios-shaped/usr/lib/boot"
    image = (boot / "bios-shaped.bios").read_bytes()
    elf = (boot / "bios-shaped.elf").read_bytes()
    assert image[2:10] == b"BIOSSHAP" and image[510:512] == b"\x55\xaa"
    assert image[512 : 512 + len(elf)] == elf and len(image) % 512 == 0
    header = readelf(boot / "bios-shaped.elf", "-h")
    assert "ELF32" in header and "Intel 80386" in header
    assert int(header.split("Entry point address:")[1].split()[0], 16) == 0x103000  # STAGE3_BASE in linker.ld
    symbols = readelf(boot / "bios-shaped.elf", "-s")
    assert " kstart" in symbols and ".debug_info" not in readelf(boot / "bios-shaped.elf", "-S")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("missing-nasm-source", ["packages/fixtures/bios-shaped:missing-nasm-source", "nasm_source 'asm/missing.asm' is not a file"]),
        (
            "missing-stage3",
            [
                "the `input` field of packages/fixtures/bios-shaped:missing-stage3",
                "installs no usr/lib/libbootloader.a (it installs: usr/lib/libbios_shaped.a)",
            ],
        ),
    ],
)
def test_bad_flat_binaries_fail_with_one_clear_error(rule_runner: RuleRunner, name: str, expected: List[str]) -> None:
    with pytest.raises(ExecutionError) as excinfo:
        package(rule_runner, Address("packages/fixtures/bios-shaped", target_name=name), FlatBinaryFieldSet)
    message = str(excinfo.value)
    for part in expected:
        assert part in message
    assert "Traceback" not in message.split("Error: ")[-1]
