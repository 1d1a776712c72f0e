"""Running Redox images in a VM: hypervisor choice, QEMU / Cloud Hypervisor command lines,
serial boot milestones, boot tests and dev-mode control (QMP / CH REST API).

Modules: `config` (VmSpec, CH_* knobs), `detect` (choose_hypervisor), `qemu` / `cloudhv`
(command lines), `serial` (log follower, milestones), `boottest`, `control`, `cli`
(`python -m redox_tools.vm ...`), `network` (TAP + NAT for `--net tap`:
`python -m redox_tools.vm.network {setup,teardown,status}`).
"""
