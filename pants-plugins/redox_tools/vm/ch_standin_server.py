"""A STAND-IN for Cloud Hypervisor's REST API, for tests only.

Cloud Hypervisor cannot run here (no binary in Debian/PyPI, no real KVM), so its control
client is tested against this tiny HTTP server on a unix socket. It implements the
endpoints the client uses, with the status codes of CH's OpenAPI document
(vmm/src/api/openapi/cloud-hypervisor.yaml): 204 on success, 404/405 when the VM is in
the wrong state, and records every call as (method, path, json body).
"""
from __future__ import annotations

import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Dict, List, Optional, Tuple


class ChStandinServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, socket_path: str, cpus: int = 4, memory_mib: int = 2048,
                 hotplug_mib: int = 0) -> None:
        self.socket_path = socket_path
        self.calls: List[Tuple[str, str, Optional[Dict[str, Any]]]] = []
        self.state = "Running"
        self.cpus = cpus
        self.memory = memory_mib << 20
        self.hotplug = hotplug_mib << 20
        self.snapshots: List[str] = []
        self._thread: Optional[threading.Thread] = None
        if os.path.lexists(socket_path):
            os.unlink(socket_path)
        super().__init__(socket_path, _Handler)

    def start(self) -> "ChStandinServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if os.path.lexists(self.socket_path):
            os.unlink(self.socket_path)

    def __enter__(self) -> "ChStandinServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def vm_info(self) -> Dict[str, Any]:
        return {
            "config": {
                "cpus": {"boot_vcpus": self.cpus, "max_vcpus": self.cpus},
                "memory": {"size": self.memory - 0, "hotplug_size": self.hotplug},
                "payload": {"firmware": "/fw/CLOUDHV.fd"},
            },
            "state": self.state,
            "memory_actual_size": self.memory,
        }


class _Handler(BaseHTTPRequestHandler):
    server: ChStandinServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def address_string(self) -> str:
        return "unix"

    def _body(self) -> Optional[Dict[str, Any]]:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n)) if n else None

    def _reply(self, code: int, payload: Any = None) -> None:
        data = b"" if payload is None else (
            json.dumps(payload).encode() if not isinstance(payload, str) else payload.encode())
        self.send_response(code)
        if data:
            self.send_header("Content-Type", "application/json" if not isinstance(payload, str) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        s = self.server
        s.calls.append(("GET", self.path, None))
        if self.path == "/api/v1/vm.info":
            self._reply(200, s.vm_info())
        elif self.path == "/api/v1/vmm.ping":
            self._reply(200, {"version": "standin"})
        else:
            self._reply(404, "no such endpoint")

    def do_PUT(self) -> None:  # noqa: N802
        s = self.server
        body = self._body()
        s.calls.append(("PUT", self.path, body))
        ep = self.path.rsplit("/", 1)[-1]
        if ep == "vm.pause":
            if s.state != "Running":
                return self._reply(405, "VM is not running")
            s.state = "Paused"
        elif ep == "vm.resume":
            if s.state != "Paused":
                return self._reply(405, "VM is not paused")
            s.state = "Running"
        elif ep == "vm.snapshot":
            if s.state != "Paused":
                return self._reply(500, "Error creating snapshot: VM is not paused")
            url = (body or {}).get("destination_url", "")
            if not url.startswith("file://"):
                return self._reply(400, "bad destination_url")
            s.snapshots.append(url)
        elif ep == "vm.resize":
            want = (body or {}).get("desired_ram")
            if want is None:
                return self._reply(400, "missing desired_ram")
            if want > s.memory and want - (s.memory - 0) > s.hotplug:
                return self._reply(500, "Error resizing VM: memory hotplug not configured or too small")
            s.memory = want
        else:
            return self._reply(404, "no such endpoint")
        self._reply(204)
