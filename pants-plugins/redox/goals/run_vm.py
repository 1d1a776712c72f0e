"""`redox_vm` and `redox_vm_control`: boot an image and control the running VM with `./pants run`.

The VM work (hypervisor choice, overlay so the built image is never written, serial log, QMP /
Cloud Hypervisor API) is `python -m redox_tools.vm run|ctl`; these rules build the image and
the tools' venv and hand `pants run` that command line (like Pants' go `run_binary`).

Where things live (`<build root>`-relative, `<dir>/<name>` = the target's address):

* serial log of every run: `dist/vm/<dir>/<name>/serial.log` (outside the temporary chroot);
* dev mode: `.redox-vm/<dir>/<name>/` holds the control socket `control.sock` (+ `.json` state)
  and the overlay disk; `redox_vm_control` targets talk to that socket;
* otherwise the overlay, firmware variables and socket live in the run's chroot and vanish.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from pants.backend.python.util_rules.pex_environment import PexEnvironment
from pants.base.build_root import BuildRoot
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.engine.addresses import Address, AddressInput
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import Digest, MergeDigests
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import WrappedTarget, WrappedTargetRequest
from pants.util.logging import LogLevel

from redox.goals.disk_image import DiskImage, DiskImageRequest
from redox.goals.system import EvaluatedSystem, EvaluatedSystemRequest
from redox.subsystems.image import RedoxImageSubsystem
from redox.target_types import (
    HostNetworkActionField,
    HostNetworkCidrField,
    HostNetworkTapField,
    HostNetworkUplinkField,
    RedoxToolArgsField,
    RedoxToolModuleField,
    RedoxVmControlActionField,
    RedoxVmControlArgsField,
    RedoxVmControlVmField,
    RedoxVmCpusField,
    RedoxVmDebugExitField,
    RedoxVmDevModeField,
    RedoxVmExtraArgsField,
    RedoxVmForwardsField,
    RedoxVmGraphicalField,
    RedoxVmHeadlessDisplayField,
    RedoxVmHypervisorField,
    RedoxVmImageField,
    RedoxVmMemoryField,
    RedoxVmNetworkField,
    RedoxVmSerialRepliesField,
    RedoxVmTapField,
    SystemModulesField,
)
from redox.util_rules.redox_tools import RedoxToolsVenv, RedoxToolsVenvRequest
from redox.util_rules.references import parse_reference

VM_MODULE = "redox_tools.vm"
# Read by redox_tools.vm.config.apply_env at run time; they override the target's fields.
ENV_KNOBS = ("CH_CPUS", "CH_MEMORY", "CH_HUGEPAGES", "CH_DIRECT_IO")
STATE_DIR = ".redox-vm"
SERIAL_LOG_DIR = "dist/vm"
CHROOT = "{chroot}"  # replaced by `pants run` with the absolute path of the run's chroot

_MEMORY_RE = re.compile(r"^\d+(|M|MB|MiB|G|GB|GiB)$", re.IGNORECASE)
_PORT_RE = re.compile(r"^\d{1,5}$")


class VmRunnerError(Exception):
    """A `redox_vm` / `redox_vm_control` setting that cannot work, naming the target and field."""


# --- pure helpers (unit-tested in run_vm_test.py) ------------------------------------------


@dataclass(frozen=True)
class VmSettings:
    """The fields of one `redox_vm`, as plain values."""

    spec_path: str
    name: str
    hypervisor: str = "auto"
    graphical: bool = False
    headless_display: bool = False
    cpus: int = 4
    memory: str = "2048M"
    network: str = "none"
    tap: str = ""
    nic_model: str = "e1000"  # QEMU's NIC; a `redox_system` image's `virtualisation.nic_model`
    forwards: Tuple[str, ...] = ()
    dev_mode: bool = False
    debug_exit: bool = False
    extra_args: Tuple[str, ...] = ()
    serial_replies: Tuple[str, ...] = ()

    @property
    def address_spec(self) -> str:
        return f"{self.spec_path}:{self.name}"


def _target_dir(spec_path: str, name: str) -> str:
    return os.path.join(spec_path, name) if spec_path else name


def vm_state_dir(build_root: str, spec_path: str, name: str) -> str:
    """Dev-mode work dir of a `redox_vm`: `<build root>/.redox-vm/<dir>/<name>`."""
    return os.path.join(build_root, STATE_DIR, _target_dir(spec_path, name))


def control_socket_path(build_root: str, spec_path: str, name: str) -> str:
    """The known control socket of a dev-mode `redox_vm` (QMP or Cloud Hypervisor API)."""
    return os.path.join(vm_state_dir(build_root, spec_path, name), "control.sock")


def serial_log_path(build_root: str, spec_path: str, name: str) -> str:
    return os.path.join(build_root, SERIAL_LOG_DIR, _target_dir(spec_path, name), "serial.log")


def parse_forward(value: str, where: str) -> Tuple[int, int]:
    """`HOST:GUEST` -> ports. Forwards always bind 127.0.0.1, so a host address is refused."""
    parts = value.split(":")
    if len(parts) != 2 or not all(_PORT_RE.match(p) for p in parts):
        hint = (
            " (forwards always bind 127.0.0.1; give no host address)"
            if len(parts) == 3 or "." in value or "[" in value
            else ""
        )
        raise VmRunnerError(f"{where}: {value!r} is not HOST_PORT:GUEST_PORT{hint}")
    host, guest = int(parts[0]), int(parts[1])
    for port in (host, guest):
        if not 1 <= port <= 65535:
            raise VmRunnerError(f"{where}: {value!r}: ports must be 1..65535")
    return host, guest


def vm_run_args(
    vm: VmSettings,
    *,
    image_path: str,
    build_root: str,
    ovmf_code: str,
    ovmf_vars: str,
    env: Mapping[str, str],
    image_format: str = "auto",
) -> List[str]:
    """`python -m redox_tools.vm` arguments that boot `vm` (`image_path` may use `{chroot}`).

    `env` holds the caller's `ENV_KNOBS`: a set `CH_CPUS`/`CH_MEMORY` wins over the field, so
    `--cpus`/`--memory` (which would win over the variable in the tool) are left out and the
    tool reads the variable itself. `CH_HUGEPAGES`/`CH_DIRECT_IO` have no field.
    """
    where = f"redox_vm {vm.address_spec}"
    if vm.cpus < 1 or vm.cpus > 255:
        raise VmRunnerError(f"{where}: `cpus` must be 1..255, got {vm.cpus}")
    if not _MEMORY_RE.match(vm.memory.strip()):
        raise VmRunnerError(f"{where}: `memory` {vm.memory!r} is not a size like 2048, 2048M or 2G")
    forwards = [parse_forward(f, f"{where}: `forwards`") for f in vm.forwards]
    network = vm.network
    if forwards:
        if network == "tap":
            raise VmRunnerError(f'{where}: `forwards` need network="user" (QEMU user-mode), not "tap"')
        network = "user"
    if network == "tap" and not vm.tap:
        raise VmRunnerError(f'{where}: network="tap" needs `tap` (the host tap device name)')
    hypervisor = vm.hypervisor
    if hypervisor == "cloud-hypervisor":
        qemu_only = [
            what
            for what, on in (
                ("debug_exit", vm.debug_exit),
                ("graphical", vm.graphical),
                ("headless_display", vm.headless_display),
                ("forwards", bool(forwards)),
                ("serial_replies", bool(vm.serial_replies)),
            )
            if on
        ]
        if qemu_only or network == "user":
            raise VmRunnerError(
                f"{where}: Cloud Hypervisor has no {', '.join(qemu_only) or 'user-mode networking'}; "
                'use hypervisor="qemu" or "auto"'
            )
    if vm.dev_mode:
        work_dir = vm_state_dir(build_root, vm.spec_path, vm.name)
    else:
        work_dir = f"{CHROOT}/__vm"
    args = [
        "run",
        "--image", image_path,
        "--image-format", image_format,
        "--hypervisor", hypervisor,
        "--ovmf-code", ovmf_code,
        "--ovmf-vars", ovmf_vars,
        "--work-dir", work_dir,
        "--serial-log", serial_log_path(build_root, vm.spec_path, vm.name),
        "--net", network,
    ]
    if not env.get("CH_CPUS", "").strip():
        args += ["--cpus", str(vm.cpus)]
    if not env.get("CH_MEMORY", "").strip():
        args += ["--memory", vm.memory.strip()]
    if network == "tap":
        args += ["--tap", vm.tap]
    if network != "none":
        args += ["--nic-model", vm.nic_model]
    for host, guest in forwards:
        args += ["--forward", f"{host}:{guest}"]
    if vm.dev_mode:
        args += ["--socket", control_socket_path(build_root, vm.spec_path, vm.name), "--balloon"]
    if vm.graphical:
        args.append("--graphical")
    if vm.headless_display:
        args.append("--headless-display")
    if vm.debug_exit:
        args.append("--debug-exit")
    for r in vm.serial_replies:
        args.append(f"--serial-reply={r}")  # `=` form: a reply pattern may start with `-`
    # `=` form: the values start with `-`.
    args += [f"--extra-arg={a}" for a in vm.extra_args]
    return args


def vm_control_args(action: str, socket: str, extra: Sequence[str], vm_spec: str) -> List[str]:
    """`python -m redox_tools.vm` arguments for one control action on `socket`, the dev-mode VM
    `vm_spec` (its address: what to run when none is up)."""
    return ["ctl", action, "--socket", socket, f"--start-with=./pants run {vm_spec}", *extra]


# --- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedoxVmFieldSet(RunFieldSet):
    required_fields = (RedoxVmImageField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED  # an interactive VM, not a build step

    image: RedoxVmImageField
    hypervisor: RedoxVmHypervisorField
    graphical: RedoxVmGraphicalField
    headless_display: RedoxVmHeadlessDisplayField
    cpus: RedoxVmCpusField
    memory: RedoxVmMemoryField
    network: RedoxVmNetworkField
    tap: RedoxVmTapField
    forwards: RedoxVmForwardsField
    dev_mode: RedoxVmDevModeField
    debug_exit: RedoxVmDebugExitField
    extra_args: RedoxVmExtraArgsField
    serial_replies: RedoxVmSerialRepliesField

    def settings(self) -> VmSettings:
        return VmSettings(
            spec_path=self.address.spec_path,
            name=self.address.target_name,
            hypervisor=self.hypervisor.value or "auto",
            graphical=self.graphical.value,
            headless_display=self.headless_display.value,
            cpus=self.cpus.value if self.cpus.value is not None else 4,
            memory=self.memory.value or "2048M",
            network=self.network.value or "none",
            tap=self.tap.value or "",
            forwards=tuple(self.forwards.value or ()),
            dev_mode=self.dev_mode.value,
            debug_exit=self.debug_exit.value,
            extra_args=tuple(self.extra_args.value or ()),
            serial_replies=tuple(self.serial_replies.value or ()),
        )


def system_vm_defaults(settings: VmSettings, field_set: RedoxVmFieldSet, virt: Mapping[str, Any]) -> VmSettings:
    """`settings` with every field the target left unset taken from the system's options."""
    network = field_set.network.value or virt["network"]
    return replace(
        settings,
        hypervisor=field_set.hypervisor.value or virt["hypervisor"],
        cpus=field_set.cpus.value if field_set.cpus.value is not None else virt["cpus"],
        memory=field_set.memory.value or virt["memory"],
        network=network,
        tap=field_set.tap.value or (virt["tap"] if network == "tap" else ""),
        nic_model=virt["nic_model"],
    )


@dataclass(frozen=True)
class RedoxVmControlFieldSet(RunFieldSet):
    required_fields = (RedoxVmControlVmField, RedoxVmControlActionField)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED  # talks to a VM outside Pants

    vm: RedoxVmControlVmField
    action: RedoxVmControlActionField
    args: RedoxVmControlArgsField


@dataclass(frozen=True)
class HostNetworkFieldSet(RunFieldSet):
    required_fields = (HostNetworkActionField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED  # changes the host's network

    action: HostNetworkActionField
    tap: HostNetworkTapField
    cidr: HostNetworkCidrField
    uplink: HostNetworkUplinkField


def host_network_args(action: str, tap: str, cidr: str, uplink: Optional[str]) -> List[str]:
    args = [action, "--tap", tap, "--bridge-cidr", cidr]
    return args + (["--uplink", uplink] if uplink else [])


def _tool_run_request(
    venv: RedoxToolsVenv, pex_env: PexEnvironment, digest: Digest, args: Sequence[str], module: str = VM_MODULE
) -> RunRequest:
    """`python -m redox_tools.vm <args>` from the venv in the run's chroot (its PEX_ROOT is the
    named cache, as for a `VenvPexProcess`)."""
    caches = dict(pex_env.in_sandbox(working_directory=None).append_only_caches)
    caches.update(venv.pex.append_only_caches or {})
    return RunRequest(
        digest=digest,
        args=(os.path.join(CHROOT, venv.pex.pex.argv0), "-m", module, *args),
        append_only_caches=caches,
    )


@rule(desc="Prepare a Redox VM run", level=LogLevel.DEBUG)
async def run_redox_vm(
    field_set: RedoxVmFieldSet,
    build_root: BuildRoot,
    image_subsystem: RedoxImageSubsystem,
    pex_env: PexEnvironment,
) -> RunRequest:
    address = field_set.address
    origin = f"the `image` field of {address}"
    image_address = await Get(
        Address,
        AddressInput,
        parse_reference(field_set.image.value or "", relative_to=address.spec_path, origin=origin),
    )
    disk, venv, knobs, image_target = await MultiGet(
        Get(DiskImage, DiskImageRequest(image_address, origin)),
        Get(RedoxToolsVenv, RedoxToolsVenvRequest(VM_MODULE)),
        Get(EnvironmentVars, EnvironmentVarsRequest(ENV_KNOBS)),
        Get(WrappedTarget, WrappedTargetRequest(image_address, description_of_origin=origin)),
    )
    settings = field_set.settings()
    if image_target.target.has_field(SystemModulesField):
        # A redox_system's `virtualisation.*` options are the defaults of the fields left unset.
        system = await Get(EvaluatedSystem, EvaluatedSystemRequest(image_address, image_subsystem.source_date_epoch))
        settings = system_vm_defaults(settings, field_set, system.config["virtualisation"])
    args = vm_run_args(
        settings,
        image_path=os.path.join(CHROOT, disk.path),
        build_root=build_root.path,
        ovmf_code=image_subsystem.ovmf_code,
        ovmf_vars=image_subsystem.ovmf_vars,
        env=knobs,
        image_format=disk.format,
    )
    digest = await Get(Digest, MergeDigests([venv.pex.digest, disk.digest]))
    return _tool_run_request(venv, pex_env, digest, args)


@rule(desc="Prepare a Redox VM control action", level=LogLevel.DEBUG)
async def run_redox_vm_control(
    field_set: RedoxVmControlFieldSet, build_root: BuildRoot, pex_env: PexEnvironment
) -> RunRequest:
    address = field_set.address
    origin = f"the `vm` field of {address}"
    vm_address = await Get(
        Address, AddressInput, parse_reference(field_set.vm.value or "", relative_to=address.spec_path, origin=origin)
    )
    wrapped, venv = await MultiGet(
        Get(WrappedTarget, WrappedTargetRequest(vm_address, description_of_origin=origin)),
        Get(RedoxToolsVenv, RedoxToolsVenvRequest(VM_MODULE)),
    )
    vm = wrapped.target
    if not RedoxVmFieldSet.is_applicable(vm):
        raise VmRunnerError(f"{origin}: {vm_address} is a `{vm.alias}`, not a `redox_vm`")
    if not vm[RedoxVmDevModeField].value:
        raise VmRunnerError(
            f"{origin}: {vm_address} has no control socket at a known path; give it `dev_mode=True`"
        )
    socket = control_socket_path(build_root.path, vm_address.spec_path, vm_address.target_name)
    args = vm_control_args(field_set.action.value or "", socket, field_set.args.value or (), vm_address.spec)
    return _tool_run_request(venv, pex_env, venv.pex.digest, args)


@dataclass(frozen=True)
class RedoxToolFieldSet(RunFieldSet):
    required_fields = (RedoxToolModuleField,)
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED  # tools read/write the workspace

    module: RedoxToolModuleField
    args: RedoxToolArgsField


@rule(desc="Prepare a redox_tools command", level=LogLevel.DEBUG)
async def run_redox_tool(field_set: RedoxToolFieldSet, pex_env: PexEnvironment) -> RunRequest:
    module = field_set.module.value or ""
    if not module.startswith("redox_tools."):
        raise VmRunnerError(f"{field_set.address}: `module` must name a redox_tools module, not {module!r}")
    venv = await Get(RedoxToolsVenv, RedoxToolsVenvRequest(module))
    return _tool_run_request(venv, pex_env, venv.pex.digest, field_set.args.value or (), module=module)


NETWORK_MODULE = "redox_tools.vm.network"


@rule(desc="Prepare host networking for VMs", level=LogLevel.DEBUG)
async def run_host_network(field_set: HostNetworkFieldSet, pex_env: PexEnvironment) -> RunRequest:
    venv = await Get(RedoxToolsVenv, RedoxToolsVenvRequest(NETWORK_MODULE))
    args = host_network_args(
        field_set.action.value or "status", field_set.tap.value or "tap0", field_set.cidr.value or "", field_set.uplink.value
    )
    return _tool_run_request(venv, pex_env, venv.pex.digest, args, module=NETWORK_MODULE)


def rules():
    return [
        *collect_rules(),
        *RedoxVmFieldSet.rules(),
        *RedoxVmControlFieldSet.rules(),
        *HostNetworkFieldSet.rules(),
        *RedoxToolFieldSet.rules(),
    ]
