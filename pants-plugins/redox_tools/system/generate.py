"""The files an evaluated configuration puts into the root filesystem, in the formats Redox reads
(../shared/data/redox-packages.toml: `users_output`, `[networking]`, `[init]`, `[shell]`):

* /etc/passwd `user;uid;gid;name;home;shell`, /etc/shadow `user;hash` (0600; argon2id, empty
  field = no password), /etc/group `name;x;gid;member,member` (0600); every user has a group
  named after it; homes 0700 owned by the user, for uid >= 1000 with the XDG directories and
  ~/.config/user-dirs.dirs as upstream's installer makes them;
* /etc/hostname; /etc/net/{dns,ip,ip_router,ip_subnet}; init units in /etc/init.d (which
  overrides /usr/lib/init.d entries of the same name): DHCP (auto), a static-address unit and
  DHCP switched off (static), no-op network units (none); the remote shell;
* /etc/ion/initrc and every home's ~/.config/ion/initrc (aliases, exported variables),
  /etc/environment.d/50_system (KEY=VALUE for every unit);
* /usr/lib/os-release (+ /etc/os-release -> ../usr/lib/os-release) whose BUILD_ID is a hash of
  everything else generated, of the package list and of the drivers left out;
* `files.*` entries.

Passwords: a plaintext `password` is hashed here and goes nowhere else (not to config.json,
the manifest or any message).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from redox_tools.errors import ToolError
from redox_tools.manifest import DIR, FILE, SYMLINK, Entry, Manifest
from redox_tools.system.options.hardware import drop_drivers
from redox_tools.system.options.users import resolve

XDG_DIRS = ("Desktop", "Documents", "Downloads", "Music", "Pictures", "Public", "Templates", "Videos")
# rust-argon2's default Config (what Redox's redox_users uses) apart from the variant: argon2id.
ARGON2_TIME_COST = 3
ARGON2_MEMORY_KIB = 4096
ARGON2_PARALLELISM = 1
ARGON2_HASH_LEN = 32


class GenerateError(ToolError):
    pass


@dataclass(frozen=True)
class GenFile:
    path: str  # absolute image path
    kind: str  # FILE | DIR | SYMLINK
    mode: int
    uid: int = 0
    gid: int = 0
    data: bytes = b""
    target: str = ""
    origin: str = ""  # the option that made it


def derived_salt(system: str, user: str) -> bytes:
    return hashlib.sha256(f"redox-pants/shadow\0{system}\0{user}".encode()).digest()[:16]


def hash_password(password: str, salt: bytes) -> str:
    from argon2.low_level import Type, hash_secret

    return hash_secret(
        password.encode(), salt, time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
        parallelism=ARGON2_PARALLELISM, hash_len=ARGON2_HASH_LEN, type=Type.ID,
    ).decode()


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def service_unit(description: Optional[str], requires: List[str], cmd: str, args: List[str], type_: str,
                 envs: Optional[Dict[str, str]] = None) -> str:
    """A `.service` unit in init's TOML ([unit], [service]; deny_unknown_fields: only known keys)."""
    lines = ["[unit]"]
    if description:
        lines.append(f"description = {_toml_str(description)}")
    if requires:
        lines.append("requires_weak = [")
        lines += [f"    {_toml_str(r)}," for r in requires]
        lines.append("]")
    lines += ["", "[service]", f"cmd = {_toml_str(cmd)}"]
    if args:
        lines.append("args = [" + ", ".join(_toml_str(a) for a in args) + "]")
    if envs:
        lines.append("envs = { " + ", ".join(f"{_toml_str(k)} = {_toml_str(v)}" for k, v in sorted(envs.items())) + " }")
    lines.append(f"type = {_toml_str(type_)}")
    return "\n".join(lines) + "\n"


def target_unit(description: str, requires: List[str]) -> str:
    lines = ["[unit]", f"description = {_toml_str(description)}"]
    if requires:
        lines.append("requires_weak = [")
        lines += [f"    {_toml_str(r)}," for r in requires]
        lines.append("]")
    return "\n".join(lines) + "\n"


DHCPD_UNIT = service_unit("Network configuration using DHCP", ["10_smolnetd.service"], "dhcpd", [], "oneshot_async")


def _ion_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Generator:
    def __init__(self, config: Dict[str, Any], system: str, root: str = ".", packages: Optional[List[str]] = None) -> None:
        self.config = config
        self.system = system
        self.root = root
        self.packages = packages if packages is not None else list(config["environment"]["system_packages"])
        self.out: Dict[str, GenFile] = {}

    def add(self, f: GenFile) -> None:
        prev = self.out.get(f.path)
        if prev is not None and prev != f:
            raise GenerateError(f"{f.path} is written by option `{prev.origin}` and by option `{f.origin}`; set it in one place")
        self.out[f.path] = f

    def text(self, path: str, text: str, origin: str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        self.add(GenFile(path, FILE, mode, uid, gid, text.encode(), origin=origin))

    def dir(self, path: str, origin: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self.add(GenFile(path, DIR, mode, uid, gid, origin=origin))

    def run(self) -> List[GenFile]:
        self.users()
        self.networking()
        self.services()
        self.environment()
        self.files()
        self.os_release()
        return [self.out[p] for p in sorted(self.out)]

    # --- users -------------------------------------------------------------------------------
    def users(self) -> None:
        users, groups = resolve(self.config)
        passwd, shadow = [], []
        for u in users:
            passwd.append(f"{u.name};{u.uid};{u.gid};{u.description};{u.home};{u.shell}\n")
            if u.hashed_password is not None:
                h = u.hashed_password
            elif u.password:
                salt = os.urandom(16) if u.random_salt else derived_salt(self.system, u.name)
                h = hash_password(u.password, salt)
            else:
                h = ""
            shadow.append(f"{u.name};{h}\n")
        self.text("/etc/passwd", "".join(passwd), "users.users")
        self.text("/etc/shadow", "".join(shadow), "users.users", mode=0o600)
        self.text("/etc/group", "".join(f"{g.name};x;{g.gid};{','.join(g.members)}\n" for g in groups), "users.groups", mode=0o600)
        initrc = self.ion_initrc()
        for u in users:
            if not u.create_home:
                continue
            origin = f"users.users.{u.name}.home"
            self.dir(u.home, origin, 0o700, u.uid, u.gid)
            if u.uid >= 1000:
                for d in XDG_DIRS:
                    self.dir(f"{u.home}/{d}", origin, 0o755, u.uid, u.gid)
                self.dir(f"{u.home}/.config", origin, 0o755, u.uid, u.gid)
                # unverified: the exact text upstream's installer writes (format of xdg-user-dirs).
                self.text(
                    f"{u.home}/.config/user-dirs.dirs",
                    "".join(f'XDG_{d.upper()}_DIR="$HOME/{d}"\n' for d in XDG_DIRS),
                    origin, 0o644, u.uid, u.gid,
                )
            if initrc is not None:
                self.dir(f"{u.home}/.config", origin, 0o755, u.uid, u.gid)
                self.dir(f"{u.home}/.config/ion", "environment.shell_aliases", 0o755, u.uid, u.gid)
                self.text(f"{u.home}/.config/ion/initrc", initrc, "environment.shell_aliases", 0o644, u.uid, u.gid)

    # --- networking --------------------------------------------------------------------------
    def networking(self) -> None:
        net = self.config["networking"]
        self.text("/etc/hostname", net["hostname"], "networking.hostname")
        mode = net["mode"]
        if mode == "none":
            for unit, what in (("10_smolnetd.service", "netstack"), ("10_dhcpd.service", "DHCP")):
                self.text(f"/etc/init.d/{unit}", service_unit(f"{what} disabled (networking.mode = none)", [], "true", [], "oneshot"),
                          "networking.mode")
            self.text("/etc/init.d/10_net.target", target_unit("Network (disabled: networking.mode = none)", ["00_base.target"]),
                      "networking.mode")
            return
        dns = net["dns"][0] if net["dns"] else "9.9.9.9"
        self.text("/etc/net/dns", dns + "\n", "networking.dns")
        if mode == "auto":
            fb = net["fallback"]
            self.text("/etc/net/ip", fb["address"] + "\n", "networking.fallback")
            self.text("/etc/net/ip_subnet", fb["netmask"] + "\n", "networking.fallback")
            self.text("/etc/net/ip_router", fb["gateway"] + "\n", "networking.fallback")
            self.text("/etc/init.d/10_dhcpd.service", DHCPD_UNIT, "networking.mode")
        else:
            eth0 = net["interfaces"]["eth0"]
            if not eth0.get("gateway"):
                raise GenerateError(
                    "option `networking.interfaces.eth0.gateway`: static networking needs a gateway "
                    "(netstack reads /etc/net/ip_router at start and stops without it)"
                )
            prefix = eth0["prefix"]
            netmask = ".".join(str((((1 << 32) - 1) << (32 - prefix) >> s) & 255) for s in (24, 16, 8, 0))
            self.text("/etc/net/ip", eth0["address"] + "\n", "networking.interfaces.eth0.address")
            self.text("/etc/net/ip_subnet", netmask + "\n", "networking.interfaces.eth0.prefix")
            self.text("/etc/net/ip_router", eth0["gateway"] + "\n", "networking.interfaces.eth0.gateway")
            self.text(
                "/etc/net/static.ion",
                f"echo {eth0['address']}/{prefix} > /scheme/netcfg/ifaces/eth0/addr/set\n"
                f"echo default via {eth0['gateway']} > /scheme/netcfg/route/add\n"
                f"echo {dns} > /scheme/netcfg/resolv/nameserver\n",
                "networking.interfaces.eth0",
            )
            self.text("/etc/init.d/10_dhcpd.service",
                      service_unit("DHCP disabled (networking.mode = static)", [], "true", [], "oneshot"), "networking.mode")
            self.text("/etc/init.d/11_static_net.service",
                      service_unit("Static IPv4 address of eth0", ["10_smolnetd.service"], "ion", ["/etc/net/static.ion"], "oneshot"),
                      "networking.interfaces.eth0")
            self.text("/etc/init.d/10_net.target",
                      target_unit("Network", ["00_base.target", "10_smolnetd.service", "11_static_net.service"]), "networking.mode")
        rs = net["remote_shell"]
        if rs["enable"]:
            self.text("/etc/init.d/17_remote_shell.service",
                      service_unit("Remote shell (networking.remote_shell)", ["10_net.target"], "nc",
                                   ["-l", "-e", "/bin/ion", f"0.0.0.0:{rs['port']}"], "oneshot_async"),
                      "networking.remote_shell")

    # --- init units ----------------------------------------------------------------------------
    def services(self) -> None:
        for name, u in sorted(self.config["services"]["units"].items()):
            if not u["enable"]:
                continue
            origin = f"services.units.{name}"
            base = f"/etc/init.d/{u['order']:02d}_{name}"
            if u["script"] is not None:
                lines = ([f"requires_weak {' '.join(u['requires'])}"] if u["requires"] else []) + list(u["script"])
                self.text(base, "\n".join(lines) + "\n", origin)
            else:
                self.text(f"{base}.service",
                          service_unit(u["description"], u["requires"], u["command"], u["args"], u["type"], u["envs"]), origin)

    # --- environment ---------------------------------------------------------------------------
    def ion_initrc(self) -> Optional[str]:
        env = self.config["environment"]
        if not env["shell_aliases"] and not env["variables"]:
            return None
        lines = ["# Written by redox-pants from environment.variables and environment.shell_aliases."]
        lines += [f"export {k} = {_ion_quote(v)}" for k, v in sorted(env["variables"].items())]
        lines += [f"alias {k} = {_ion_quote(v)}" for k, v in sorted(env["shell_aliases"].items())]
        return "\n".join(lines) + "\n"

    def environment(self) -> None:
        initrc = self.ion_initrc()
        if initrc is not None:
            self.text("/etc/ion/initrc", initrc, "environment.shell_aliases")
        variables = dict(self.config["environment"]["variables"])
        variables.setdefault("TZ", self.config["time"]["timezone"])
        self.text("/etc/environment.d/50_system", "".join(f"{k}={v}\n" for k, v in sorted(variables.items())),
                  "environment.variables")

    # --- files -----------------------------------------------------------------------------------
    def files(self) -> None:
        for path, f in sorted(self.config["files"].items()):
            origin = f"files.{path}"
            p = "/" + "/".join(x for x in path.split("/") if x not in ("", "."))
            if f["directory"]:
                self.dir(p, origin, f["mode"] if f["mode"] is not None else 0o755, f["uid"], f["gid"])
            elif f["symlink"] is not None:
                self.add(GenFile(p, SYMLINK, 0o777, f["uid"], f["gid"], target=f["symlink"], origin=origin))
            else:
                if f["text"] is not None:
                    data = f["text"].encode()
                else:
                    src = os.path.join(self.root, f["source"])
                    try:
                        with open(src, "rb") as fh:
                            data = fh.read()
                    except OSError as e:
                        raise GenerateError(f"option `files.{path}.source`: cannot read {f['source']}: {e.strerror}") from None
                self.add(GenFile(p, FILE, f["mode"] if f["mode"] is not None else 0o644, f["uid"], f["gid"], data, origin=origin))

    # --- identity ----------------------------------------------------------------------------------
    def os_release(self) -> None:
        h = hashlib.sha256()
        for p in sorted(self.out):
            f = self.out[p]
            h.update(json.dumps([f.path, f.kind, f.mode, f.uid, f.gid, f.target]).encode())
            h.update(hashlib.sha256(f.data).digest())
        h.update(json.dumps(sorted(self.packages)).encode())
        dropped = drop_drivers(self.config)
        if dropped:  # a driver subset is another system (`all` keeps the hash it always had)
            h.update(json.dumps(["drop_drivers", dropped]).encode())
        sysc = self.config["system"]
        text = (
            f'PRETTY_NAME="{sysc["name"]} {sysc["version"]}"\n'
            f'NAME="{sysc["name"]}"\n'
            f"VERSION_ID={sysc['version']}\n"
            "ID=redox-os\n"
            'HOME_URL="https://www.redox-os.org/"\n'
            'DOCUMENTATION_URL="https://doc.redox-os.org/"\n'
            'SUPPORT_URL="https://www.redox-os.org/community/"\n'
            f'VARIANT="{sysc["variant"]}"\n'
            f"BUILD_ID={h.hexdigest()[:16]}\n"
        )
        self.text("/usr/lib/os-release", text, "system")
        self.add(GenFile("/etc/os-release", SYMLINK, 0o777, target="../usr/lib/os-release", origin="system"))


def generate(config: Dict[str, Any], system: str, root: str = ".") -> List[GenFile]:
    return Generator(config, system, root).run()


def write_tree(files: List[GenFile], out_dir: str, mtime: int = 0) -> Manifest:
    """Write the generated files under `out_dir/files/` and return their manifest (sources
    relative to `out_dir`); `out_dir/overlay.json` is written by the caller."""
    entries = []
    for f in files:
        rel = f.path.lstrip("/")
        origin = f"module system: {f.origin}"
        if f.kind == FILE:
            src = os.path.join("files", rel)
            host = os.path.join(out_dir, src)
            os.makedirs(os.path.dirname(host), exist_ok=True)
            with open(host, "wb") as fh:
                fh.write(f.data)
            entries.append(Entry(rel, FILE, f.mode, f.uid, f.gid, mtime, source=src,
                                 sha256=hashlib.sha256(f.data).hexdigest(), size=len(f.data), origin=origin))
        elif f.kind == DIR:
            entries.append(Entry(rel, DIR, f.mode, f.uid, f.gid, mtime, origin=origin))
        else:
            entries.append(Entry(rel, SYMLINK, 0o777, f.uid, f.gid, mtime, target=f.target, origin=origin))
    return Manifest(entries, out_dir)
