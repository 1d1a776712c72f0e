"""Dev-mode control of a running VM: pause, resume, info, snapshot, resize-memory.

* QEMU: QMP over the unix socket, with the `qemu.qmp` library (`QMPClient` run on a
  private asyncio loop so that every call has a timeout).
  - snapshot: the `snapshot-save` job (QEMU >= 6.0) with the VM state and the disk snapshot
    in the qcow2 overlay node `disk0-node`. `savevm` (human monitor) does NOT work with our
    layout: it also wants to snapshot the raw OVMF VARS pflash ("Device 'pflash1' is
    writable but does not support snapshots"). Checked with QEMU 7.2.
  - resize-memory: through a virtio-balloon device only (start the VM with `--balloon`);
    QEMU cannot change plain RAM of a running q35 guest. The guest needs a balloon driver
    for the size to actually change.
* Cloud Hypervisor: its REST API on the `--api-socket`, with `requests` +
  `requests-unixsocket`: `PUT /api/v1/vm.pause`, `vm.resume`, `GET vm.info`,
  `PUT vm.snapshot {"destination_url": "file://DIR"}` (the VM must be paused; we pause and
  resume around it), `PUT vm.resize {"desired_ram": BYTES}` (needs memory hotplug
  configured at boot, i.e. `--memory ...,hotplug_size=...`).

`run` writes `<socket>.json` ({"kind": "qemu"|"cloud-hypervisor", ...}); without it the kind
is probed: QEMU greets with `{"QMP": ...}` as soon as a client connects, CH says nothing.
"""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Dict, Optional

from redox_tools.errors import ToolError
from redox_tools.safeio import atomic_text_output

if TYPE_CHECKING:  # imported lazily at run time (only the QEMU path needs them)
    import asyncio

    from qemu.qmp import QMPClient

KINDS = ("qemu", "cloud-hypervisor")
QMP_DISK_NODE = "disk0-node"


class ControlError(ToolError):
    """A control request the VM refused or could not carry out."""


class NoVmError(ControlError):
    """Nothing is listening on the control socket."""


def state_file(socket_path: str) -> str:
    return socket_path + ".json"


def write_state(socket_path: str, kind: str, **extra: Any) -> None:
    data = {"kind": kind, "socket": os.path.abspath(socket_path)}
    data.update(extra)
    with atomic_text_output(state_file(socket_path)) as f:  # never writes through a planted link
        json.dump(data, f, indent=1, sort_keys=True)


def remove_state(socket_path: str) -> None:
    try:
        os.unlink(state_file(socket_path))
    except FileNotFoundError:
        pass


def _no_vm(socket_path: str, why: str) -> NoVmError:
    return NoVmError(f"no VM is running on control socket {socket_path}: {why}")


def check_socket(socket_path: str, start_with: str = "run") -> None:
    """NoVmError unless the socket exists; `start_with` is the command the message suggests."""
    if not os.path.exists(socket_path):
        raise _no_vm(socket_path, f"the socket does not exist (start one with `{start_with}`)")


def detect_kind(socket_path: str, timeout: float = 1.0) -> str:
    """'qemu' or 'cloud-hypervisor', from the state file or by probing the socket."""
    try:
        with open(state_file(socket_path), encoding="utf-8") as f:
            kind = json.load(f).get("kind")
        if kind in KINDS:
            return kind
    except (OSError, ValueError):
        pass
    check_socket(socket_path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        try:
            s.connect(socket_path)
        except OSError as e:
            raise _no_vm(socket_path, e.strerror or str(e)) from None
        try:
            data = s.recv(64)
        except socket.timeout:
            return "cloud-hypervisor"
        return "qemu" if data.lstrip().startswith(b'{"QMP"') else "cloud-hypervisor"
    finally:
        s.close()


class QmpControl:
    """QMP client: `qemu.qmp.QMPClient` driven by a private event loop, every call bounded
    by `timeout` (QEMU serves one QMP client at a time, so a second client would wait for
    its greeting forever)."""

    kind = "qemu"

    def __init__(self, socket_path: str, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._qmp: Optional[QMPClient] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def _run(self, coro: Any) -> Any:
        import asyncio

        assert self._loop is not None, "QmpControl: no event loop (not connected)"
        return self._loop.run_until_complete(asyncio.wait_for(coro, self.timeout))

    def connect(self) -> "QmpControl":
        import asyncio

        from qemu.qmp import ConnectError, QMPClient

        if self._qmp is not None:
            return self
        check_socket(self.socket_path)
        self._loop = asyncio.new_event_loop()
        qmp = QMPClient("redox-vm")
        try:
            self._run(qmp.connect(self.socket_path))
        except (ConnectError, OSError) as e:
            self._close_loop()
            raise _no_vm(self.socket_path, str(e)) from None
        except asyncio.TimeoutError:
            self._close_loop()
            raise ControlError(
                f"QMP on {self.socket_path} did not greet within {self.timeout:g}s "
                "(is another client connected?)"
            ) from None
        self._qmp = qmp
        return self

    def _close_loop(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def close(self) -> None:
        if self._qmp is not None:
            try:
                self._run(self._qmp.disconnect())
            except Exception:  # noqa: BLE001 - the VM may already be gone
                pass
            self._qmp = None
        self._close_loop()

    def __enter__(self) -> "QmpControl":
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cmd(self, name: str, **args: Any) -> Any:
        from qemu.qmp import ExecuteError

        if self._qmp is None:
            self.connect()
        qmp = self._qmp
        assert qmp is not None  # connect() either set it or raised
        try:
            return self._run(qmp.execute(name, args or None))
        except ExecuteError as e:
            raise ControlError(f"QMP {name} failed: {e}") from None
        except Exception as e:  # noqa: BLE001 - disconnects, timeouts
            raise ControlError(f"QMP {name} on {self.socket_path} failed: {e!r}") from None

    def status(self) -> str:
        return self.cmd("query-status")["status"]

    def pause(self) -> Dict[str, Any]:
        self.cmd("stop")
        return {"status": self.status()}

    def resume(self) -> Dict[str, Any]:
        self.cmd("cont")
        return {"status": self.status()}

    def info(self) -> Dict[str, Any]:
        st = self.cmd("query-status")
        cpus = self.cmd("query-cpus-fast")
        mem = self.cmd("query-memory-size-summary")
        out: Dict[str, Any] = {
            "hypervisor": "qemu",
            "status": st["status"],
            "running": st["running"],
            "cpus": len(cpus),
            "memory_mib": (mem.get("base-memory", 0) + mem.get("plugged-memory", 0)) // (1 << 20),
        }
        try:
            out["balloon_mib"] = self.cmd("query-balloon")["actual"] // (1 << 20)
        except ControlError:
            pass
        return out

    def snapshot(self, tag: str, node: str = QMP_DISK_NODE, timeout: float = 120.0) -> Dict[str, Any]:
        job = f"snap-{tag}-{int(time.time() * 1000)}"
        self.cmd("snapshot-save", **{"job-id": job, "tag": tag, "vmstate": node, "devices": [node]})
        deadline = time.monotonic() + timeout
        try:
            while True:
                jobs = [j for j in self.cmd("query-jobs") if j["id"] == job]
                if not jobs:
                    raise ControlError(f"snapshot job {job} vanished")
                j = jobs[0]
                if j["status"] in ("concluded", "null"):
                    if j.get("error"):
                        raise ControlError(f"snapshot {tag!r} failed: {j['error']}")
                    break
                if time.monotonic() > deadline:
                    raise ControlError(f"snapshot {tag!r} did not finish within {timeout:.0f}s")
                time.sleep(0.1)
        finally:
            try:
                self.cmd("job-dismiss", id=job)
            except ControlError:
                pass
        return {"snapshot": tag, "node": node, "status": self.status()}

    def resize_memory(self, mib: int) -> Dict[str, Any]:
        try:
            self.cmd("query-balloon")
        except ControlError as e:
            raise ControlError(
                "resize-memory needs a virtio-balloon device (start the VM with `run --balloon`); "
                f"QEMU said: {e}"
            ) from None
        self.cmd("balloon", value=mib << 20)
        return {"requested_mib": mib, "balloon_mib": self.cmd("query-balloon")["actual"] // (1 << 20)}


class ChControl:
    kind = "cloud-hypervisor"

    def __init__(self, socket_path: str, timeout: float = 10.0) -> None:
        import requests_unixsocket  # type: ignore[import]

        self.socket_path = socket_path
        self.timeout = timeout
        self._session = requests_unixsocket.Session()
        self._base = "http+unix://" + urllib.parse.quote(os.path.abspath(socket_path), safe="") + "/api/v1/"

    def connect(self) -> "ChControl":
        check_socket(self.socket_path)
        return self

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "ChControl":
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, endpoint: str, body: Optional[Dict[str, Any]] = None) -> Any:
        import requests

        check_socket(self.socket_path)
        try:
            r = self._session.request(method, self._base + endpoint, json=body, timeout=self.timeout)
        except requests.ConnectionError as e:
            raise _no_vm(self.socket_path, f"connection failed ({e.__class__.__name__})") from None
        except requests.Timeout:
            raise ControlError(f"{method} {endpoint} on {self.socket_path} timed out") from None
        if r.status_code >= 300:
            text = r.text.strip()
            raise ControlError(
                f"cloud-hypervisor {method} /api/v1/{endpoint} -> HTTP {r.status_code}"
                + (f": {text}" if text else "")
            )
        if r.content:
            try:
                return r.json()
            except ValueError:
                return r.text
        return None

    def _state(self) -> str:
        return self.request("GET", "vm.info")["state"]

    def pause(self) -> Dict[str, Any]:
        self.request("PUT", "vm.pause")
        return {"status": self._state()}

    def resume(self) -> Dict[str, Any]:
        self.request("PUT", "vm.resume")
        return {"status": self._state()}

    def info(self) -> Dict[str, Any]:
        i = self.request("GET", "vm.info")
        cfg = i.get("config", {})
        mem = i.get("memory_actual_size") or cfg.get("memory", {}).get("size", 0)
        return {
            "hypervisor": "cloud-hypervisor",
            "status": i.get("state"),
            "running": i.get("state") == "Running",
            "cpus": cfg.get("cpus", {}).get("boot_vcpus"),
            "memory_mib": mem // (1 << 20),
        }

    def snapshot(self, destination: str) -> Dict[str, Any]:
        dest = os.path.abspath(destination)
        os.makedirs(dest, exist_ok=True)
        was_running = self._state() == "Running"
        if was_running:
            self.request("PUT", "vm.pause")
        try:
            self.request("PUT", "vm.snapshot", {"destination_url": "file://" + dest})
        finally:
            if was_running:
                self.request("PUT", "vm.resume")
        return {"snapshot": dest, "status": self._state()}

    def resize_memory(self, mib: int) -> Dict[str, Any]:
        try:
            self.request("PUT", "vm.resize", {"desired_ram": mib << 20})
        except ControlError as e:
            raise ControlError(
                f"{e} (resizing RAM needs memory hotplug configured at boot: "
                "--memory size=...,hotplug_size=...)"
            ) from None
        return {"requested_mib": mib, "status": self._state()}


def open_control(socket_path: str, kind: Optional[str] = None, timeout: float = 10.0):
    """A connected `QmpControl` or `ChControl` for `socket_path` (kind detected if None)."""
    k = kind or detect_kind(socket_path)
    if k in ("ch", "cloud-hypervisor"):
        return ChControl(socket_path, timeout).connect()
    if k == "qemu":
        return QmpControl(socket_path, timeout).connect()
    raise ControlError(f"unknown VM kind {k!r} (qemu or cloud-hypervisor)")
