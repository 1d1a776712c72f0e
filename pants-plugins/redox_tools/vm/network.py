"""Host networking for `--net tap`: a TAP device with NAT to the outside (setup-cloud-hypervisor-network).

    python -m redox_tools.vm.network {setup,teardown,status} [--tap tap0]
        [--bridge-cidr 172.30.0.1/24] [--netns NAME] [--uplink IFACE]
        [--backend auto|nft|iptables] [--dry-run]

`setup` (root only; it makes a TAP device and NAT rules):

1. `ip tuntap add dev TAP mode tap [user $SUDO_UID]` (a non-root QEMU of the invoking user can
   then open it), tagged with the interface alias `redox-pants ...` so teardown only ever
   deletes a TAP this tool made;
2. `ip addr add 172.30.0.1/24 dev TAP` and `ip link set dev TAP up` (the host side; the guest
   takes another address in the subnet, e.g. 172.30.0.2, with gateway 172.30.0.1);
3. `sysctl -w net.ipv4.ip_forward=1` (per network namespace);
4. masquerade from the TAP subnet out via the uplink (default: the interface of the default route,
   else "anything but the TAP"), in the nftables table `ip redox_pants`, or - without `nft` - as an
   iptables rule tagged `-m comment --comment "redox-pants tap=..."`.

Every step is skipped when already in place, so a second `setup` changes nothing (and says so).
`teardown` removes this TAP (only if it carries the alias) and its NAT rule (the whole table when
nothing else is left in it); it leaves `ip_forward` alone: other software (Docker, libvirt) may
have come to depend on it since, and a global sysctl flipped under them breaks them silently.
`status` prints what exists. `--netns NAME` does it all inside that network namespace (`ip -n
NAME`, `ip netns exec NAME ...`), which is how the tests run it. `--dry-run` prints the commands
(as root: exactly those setup/teardown would run now; otherwise: those of a fresh setup).

Why 172.30.0.1/24: a private (RFC 1918) range away from the usual users of private space - home
and office LANs (192.168.0.0/16, 10.0.0.0/8), QEMU user networking (10.0.2.0/24), libvirt
(192.168.122.0/24) and Docker's default bridge (172.17.0.0/16; Docker hands out 172.18-172.31
only as more networks are created). Setup refuses a subnet that overlaps an address already on
another interface, naming it; pick another with `--bridge-cidr`.

Notes for the VM side: QEMU (`--net tap --tap tap0`) opens a TAP owned by its user without any
capability. Cloud Hypervisor also brings the TAP up itself (SIOCSIFFLAGS), so as non-root it
needs `setcap cap_net_admin+ep` on its binary; older releases also put their default
192.168.249.1/24 on the TAP (newer ones leave an existing TAP's addresses alone) unless
`--net tap=tap0,ip=172.30.0.1,mask=255.255.255.0` is given. If the host's
firewall drops forwarded packets (a forward chain with policy drop, e.g. Docker's), setup warns:
NAT alone will not get the guest out.

Commands run only through `run_cmd` (argv list, check, capture); everything else is pure
(`probe` reads, `plan_setup`/`plan_teardown` decide) so tests can inspect the command lists.
Host packages: iproute2 (`ip`), procps (`sysctl`), nftables (`nft`) or iptables.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from redox_tools.errors import ToolError, run_main

DEFAULT_TAP = "tap0"
DEFAULT_CIDR = "172.30.0.1/24"
NFT_TABLE = "redox_pants"
NFT_CHAIN = "postrouting"
MARK = "redox-pants"  # TAP alias prefix and NAT rule comment prefix
NOT_ROOT = "needs root (creates a TAP device and NAT rules): run as root or with sudo"
NETNS_DIR = "/run/netns"
PACKAGES = {"ip": "iproute2", "sysctl": "procps", "nft": "nftables", "iptables": "iptables"}

_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # IFNAMSIZ - 1, no '/', ':' or blanks
_NETNS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class NetworkError(ToolError):
    """Host networking that cannot be set up as asked (bad option, missing tool, conflict)."""


# --- the one command runner -----------------------------------------------------------

@dataclass(frozen=True)
class CmdResult:
    argv: Tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], bool], CmdResult]


def run_cmd(argv: Sequence[str], check: bool = True) -> CmdResult:
    """Run `argv` (no shell), capture its output; with `check` a failure is a `NetworkError`."""
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True)
    except FileNotFoundError:
        raise NetworkError(f"{argv[0]} not found{_package_hint(argv[0])}") from None
    res = CmdResult(tuple(argv), p.returncode, p.stdout, p.stderr)
    if check and p.returncode != 0:
        msg = (p.stderr.strip() or p.stdout.strip()).replace("\n", "; ")
        raise NetworkError(f"`{shlex.join(argv)}` failed (status {p.returncode}): {msg}")
    return res


def _package_hint(tool: str) -> str:
    pkg = PACKAGES.get(tool)
    return f" (install the Debian package {pkg}: apt-get install -y {pkg})" if pkg else ""


# --- configuration --------------------------------------------------------------------

@dataclass(frozen=True)
class NetConfig:
    tap: str = DEFAULT_TAP
    cidr: ipaddress.IPv4Interface = ipaddress.IPv4Interface(DEFAULT_CIDR)
    netns: Optional[str] = None
    uplink: Optional[str] = None  # None: the default route's interface (if any)
    owner_uid: Optional[int] = None  # TAP owner (from SUDO_UID)
    backend: str = "nft"  # "nft" or "iptables"

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self.cidr.network

    def ip(self, *args: str) -> List[str]:
        return ["ip", "-n", self.netns, *args] if self.netns else ["ip", *args]

    def inns(self, *argv: str) -> List[str]:
        """`argv` run inside the namespace (`ip netns exec NAME ...`)."""
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)


def parse_cidr(text: str) -> ipaddress.IPv4Interface:
    try:
        iface = ipaddress.ip_interface(text.strip())
    except ValueError:
        raise NetworkError(f"--bridge-cidr {text!r}: expected an IPv4 address/prefix like {DEFAULT_CIDR}") from None
    if not isinstance(iface, ipaddress.IPv4Interface) or "/" not in text:
        raise NetworkError(f"--bridge-cidr {text!r}: expected an IPv4 address/prefix like {DEFAULT_CIDR}")
    net = iface.network
    if net.prefixlen > 30:
        raise NetworkError(f"--bridge-cidr {text}: prefix /{net.prefixlen} leaves no room for a guest (use /30 or wider)")
    if iface.ip in (net.network_address, net.broadcast_address):
        raise NetworkError(f"--bridge-cidr {text}: {iface.ip} is the subnet's network/broadcast address, not a host address")
    if not (iface.ip.is_private and not iface.ip.is_loopback and not iface.ip.is_link_local):
        raise NetworkError(f"--bridge-cidr {text}: use a private (RFC 1918) range, e.g. {DEFAULT_CIDR}")
    return iface


def check_ifname(what: str, name: str) -> str:
    if not _IFNAME_RE.match(name):
        raise NetworkError(f"{what} {name!r}: an interface name is 1-15 letters, digits, '_', '.' or '-'")
    return name


def owner_from_env(environ: Optional[Dict[str, str]] = None) -> Optional[int]:
    """The uid that ran sudo (SUDO_UID), None for plain root."""
    env = os.environ if environ is None else environ
    v = env.get("SUDO_UID", "").strip()
    if not v:
        return None
    if not v.isdigit():
        raise NetworkError(f"SUDO_UID={v!r} is not a uid")
    return int(v) or None


# --- what exists (probe) --------------------------------------------------------------

@dataclass
class TapState:
    is_tap: bool  # a tun/tap device in tap mode
    kind: str  # for messages: "tap", "tun", "veth", ...
    owner_uid: Optional[int]
    up: bool
    addrs: List[str]  # inet addresses, "a.b.c.d/len"
    alias: str

    @property
    def ours(self) -> bool:
        return self.alias == MARK or self.alias.startswith(MARK + " ")


@dataclass
class NatRule:
    ref: str  # nft: the rule handle; iptables: the `-A POSTROUTING ...` spec
    comment: str


@dataclass
class State:
    tap: Optional[TapState] = None
    links: List[str] = field(default_factory=list)
    other_addrs: List[Tuple[str, str]] = field(default_factory=list)  # (ifname, "a.b.c.d/len")
    default_dev: Optional[str] = None
    ip_forward: Optional[int] = None
    routes_known: bool = True  # False: could not read the namespace's routes (dry run, not root)
    nat_known: bool = True  # False: could not read the NAT rules (not root)
    table: bool = False  # nft table present (always False for iptables)
    chain: bool = False  # nft postrouting chain present
    rules: List[NatRule] = field(default_factory=list)  # all rules in our table / tagged rules
    forward_drop: List[str] = field(default_factory=list)


def _owner_uid(user: object) -> Optional[int]:
    if user is None:
        return None
    s = str(user)
    if s.isdigit():
        return int(s)
    try:
        return pwd.getpwnam(s).pw_uid
    except KeyError:
        return None


def _json(res: CmdResult) -> Any:
    text = res.stdout.strip()
    if not text:
        return []
    try:
        return json.loads(text)
    except ValueError:
        raise NetworkError(f"`{shlex.join(res.argv)}` printed no JSON: {text[:200]!r}") from None


def probe(cfg: NetConfig, run: Runner = run_cmd, read_nat: bool = True) -> State:
    """Read what exists now (read-only commands only)."""
    st = State()
    for link in _json(run(cfg.ip("-d", "-j", "addr", "show"), True)):
        name = link.get("ifname", "")
        st.links.append(name)
        inet = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                if a.get("family") == "inet" and "local" in a]
        if name == cfg.tap:
            info = link.get("linkinfo") or {}
            data = info.get("info_data") or {}
            kind = info.get("info_kind") or link.get("link_type", "?")
            is_tap = kind == "tun" and data.get("type") == "tap"
            st.tap = TapState(
                is_tap=is_tap,
                kind="tap" if is_tap else (data.get("type") or kind),
                owner_uid=_owner_uid(data.get("user")),
                up="UP" in link.get("flags", []),
                addrs=inet,
                alias=link.get("ifalias", "") or "",
            )
        else:
            st.other_addrs += [(name, a) for a in inet]
    routes = _json(run(cfg.ip("-j", "-4", "route", "show", "default"), True))
    if routes:
        best = min(routes, key=lambda r: r.get("metric", 0))
        st.default_dev = best.get("dev")
    res = run(cfg.inns("sysctl", "-n", "net.ipv4.ip_forward"), False)
    st.ip_forward = int(res.stdout.strip()) if res.returncode == 0 and res.stdout.strip().isdigit() else None
    if not read_nat:
        st.nat_known = False
        return st
    if cfg.backend == "nft":
        _probe_nft(cfg, run, st)
    else:
        _probe_iptables(cfg, run, st)
    return st


def _probe_nft(cfg: NetConfig, run: Runner, st: State) -> None:
    data = _json(run(cfg.inns("nft", "-j", "list", "ruleset"), True))
    items = data.get("nftables", []) if isinstance(data, dict) else []
    for item in items:
        if "table" in item:
            t = item["table"]
            if t.get("family") == "ip" and t.get("name") == NFT_TABLE:
                st.table = True
        elif "chain" in item:
            c = item["chain"]
            if c.get("family") == "ip" and c.get("table") == NFT_TABLE and c.get("name") == NFT_CHAIN:
                st.chain = c.get("hook") == "postrouting" and c.get("type") == "nat"
            if c.get("hook") == "forward" and c.get("policy") == "drop":
                st.forward_drop.append(f"nft table {c.get('family')} {c.get('table')} chain {c.get('name')}")
        elif "rule" in item:
            r = item["rule"]
            if r.get("family") == "ip" and r.get("table") == NFT_TABLE:
                st.rules.append(NatRule(str(r.get("handle")), r.get("comment", "") or ""))


def _probe_iptables(cfg: NetConfig, run: Runner, st: State) -> None:
    out = run(cfg.inns("iptables", "-w", "-t", "nat", "-S", "POSTROUTING"), True).stdout
    for line in out.splitlines():
        words = shlex.split(line)
        if words[:2] != ["-A", "POSTROUTING"] or "--comment" not in words:
            continue
        comment = words[words.index("--comment") + 1]
        if comment == MARK or comment.startswith(MARK + " "):
            st.rules.append(NatRule(line, comment))
    out = run(cfg.inns("iptables", "-w", "-S", "FORWARD"), True).stdout
    if "-P FORWARD DROP" in out.splitlines():
        st.forward_drop.append("iptables chain FORWARD")


# --- what to do (pure) ----------------------------------------------------------------

@dataclass
class Plan:
    commands: List[List[str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def uplink_of(cfg: NetConfig, st: State) -> Optional[str]:
    up = cfg.uplink if cfg.uplink is not None else st.default_dev
    return None if up == cfg.tap else up


def rule_comment(cfg: NetConfig, uplink: Optional[str]) -> str:
    return f"{MARK} tap={cfg.tap} src={cfg.subnet} out={uplink or '*'}"


def _is_this_taps(cfg: NetConfig, comment: str) -> bool:
    return comment.startswith(f"{MARK} tap={cfg.tap} ")


def nat_add(cfg: NetConfig, uplink: Optional[str]) -> List[str]:
    comment = rule_comment(cfg, uplink)
    if cfg.backend == "nft":
        out = f'oifname "{uplink}"' if uplink else f'oifname != "{cfg.tap}"'
        return cfg.inns("nft", f'add rule ip {NFT_TABLE} {NFT_CHAIN} ip saddr {cfg.subnet} {out} '
                               f'masquerade comment "{comment}"')
    out_args = ["-o", uplink] if uplink else ["!", "-o", cfg.tap]
    return cfg.inns("iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", str(cfg.subnet), *out_args,
                    "-m", "comment", "--comment", comment, "-j", "MASQUERADE")


def nat_delete(cfg: NetConfig, rule: NatRule) -> List[str]:
    if cfg.backend == "nft":
        return cfg.inns("nft", f"delete rule ip {NFT_TABLE} {NFT_CHAIN} handle {rule.ref}")
    spec = shlex.split(rule.ref)[2:]  # after "-A POSTROUTING"
    return cfg.inns("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", *spec)


def plan_setup(cfg: NetConfig, st: State) -> Plan:
    """The commands that bring `st` to the set-up state (none when already there)."""
    plan = Plan()
    cmds = plan.commands
    tap = st.tap
    if cfg.uplink is not None:
        if cfg.uplink == cfg.tap:
            raise NetworkError(f"--uplink {cfg.uplink} is the TAP itself")
        if st.links and cfg.uplink not in st.links:
            raise NetworkError(f"--uplink {cfg.uplink}: no such interface{_where(cfg)}")
    for name, addr in st.other_addrs:
        if ipaddress.IPv4Interface(addr).network.overlaps(cfg.subnet):
            raise NetworkError(
                f"{cfg.subnet} overlaps {addr} on {name}{_where(cfg)}: pick another --bridge-cidr")
    if tap is not None:
        if not tap.is_tap:
            raise NetworkError(f"{cfg.tap} exists and is a {tap.kind} device, not a TAP: choose another --tap")
        if not tap.ours:
            raise NetworkError(
                f"{cfg.tap} exists but was not made by this tool (alias {tap.alias!r}): choose another --tap, "
                f"or delete it ({shlex.join(cfg.ip('link', 'del', 'dev', cfg.tap))})")
        if cfg.owner_uid is not None and tap.owner_uid != cfg.owner_uid:
            raise NetworkError(
                f"{cfg.tap} exists owned by {_who(tap.owner_uid)}, not uid {cfg.owner_uid}: run teardown first")
    if tap is None:
        add = cfg.ip("tuntap", "add", "dev", cfg.tap, "mode", "tap")
        if cfg.owner_uid is not None:
            add += ["user", str(cfg.owner_uid)]
        cmds.append(add)
        alias = MARK + (" fwd-was-0" if st.ip_forward == 0 else "")
        cmds.append(cfg.ip("link", "set", "dev", cfg.tap, "alias", alias))
    if tap is None or str(cfg.cidr) not in tap.addrs:
        cmds.append(cfg.ip("addr", "add", str(cfg.cidr), "dev", cfg.tap))
    if tap is not None:
        extra = [a for a in tap.addrs if a != str(cfg.cidr)]
        if extra:
            plan.notes.append(f"{cfg.tap} also has {', '.join(extra)} (left alone)")
    if tap is None or not tap.up:
        cmds.append(cfg.ip("link", "set", "dev", cfg.tap, "up"))
    if st.ip_forward != 1:
        cmds.append(cfg.inns("sysctl", "-q", "-w", "net.ipv4.ip_forward=1"))
    uplink = uplink_of(cfg, st)
    if uplink is None and not st.routes_known:
        plan.notes.append(f"default route{_where(cfg)} unknown without root: pass --uplink, or the rule "
                          f"masquerades everything leaving by any interface but {cfg.tap}")
    elif uplink is None:
        plan.notes.append(f"no default route{_where(cfg)}: masquerading everything leaving by any interface but {cfg.tap}")
    if cfg.backend == "nft":
        if not st.table:
            cmds.append(cfg.inns("nft", f"add table ip {NFT_TABLE}"))
        if not st.chain:
            cmds.append(cfg.inns("nft", f"add chain ip {NFT_TABLE} {NFT_CHAIN} "
                                        "{ type nat hook postrouting priority srcnat; policy accept; }"))
    want = rule_comment(cfg, uplink)
    mine = [r for r in st.rules if _is_this_taps(cfg, r.comment)]
    for r in mine:
        if r.comment != want:
            cmds.append(nat_delete(cfg, r))
            plan.notes.append(f"replacing NAT rule {r.comment!r}")
    if not any(r.comment == want for r in mine):
        cmds.append(nat_add(cfg, uplink))
    for where in st.forward_drop:
        plan.warnings.append(
            f"{where} drops forwarded packets by default (e.g. Docker's): the guest will not get out until "
            f"{cfg.tap} traffic is allowed there, e.g. `iptables -I FORWARD -i {cfg.tap} -j ACCEPT` and "
            f"`iptables -I FORWARD -o {cfg.tap} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT` "
            "(with Docker: the DOCKER-USER chain)")
    return plan


def plan_teardown(cfg: NetConfig, st: State) -> Plan:
    """The commands that remove what setup made for `cfg.tap` (none when nothing is left)."""
    plan = Plan()
    mine = [r for r in st.rules if _is_this_taps(cfg, r.comment)]
    if cfg.backend == "nft" and st.table and len(mine) == len(st.rules):
        plan.commands.append(cfg.inns("nft", f"delete table ip {NFT_TABLE}"))
    else:
        plan.commands += [nat_delete(cfg, r) for r in mine]
        if cfg.backend == "nft" and st.table and mine:
            plan.notes.append(f"table ip {NFT_TABLE} kept: it holds rules for other TAPs")
    tap = st.tap
    if tap is not None:
        if tap.is_tap and tap.ours:
            plan.commands.append(cfg.ip("link", "del", "dev", cfg.tap))
            if "fwd-was-0" in tap.alias.split() and st.ip_forward == 1:
                plan.notes.append(
                    "net.ipv4.ip_forward left at 1 (setup turned it on); if nothing else needs it: "
                    + shlex.join(cfg.inns("sysctl", "-w", "net.ipv4.ip_forward=0")))
        else:
            plan.notes.append(f"{cfg.tap} exists but was not made by setup (alias {tap.alias!r}): left alone")
    return plan


def describe(cfg: NetConfig, st: State) -> List[str]:
    """`status` lines."""
    lines = [f"netns: {cfg.netns or '(default)'}"]
    t = st.tap
    if t is None:
        lines.append(f"tap {cfg.tap}: absent")
    else:
        bits = [t.kind, f"owner {_who(t.owner_uid)}", "up" if t.up else "down",
                ", ".join(t.addrs) or "no IPv4 address",
                "made by setup" if t.ours else f"not made by setup (alias {t.alias!r})"]
        lines.append(f"tap {cfg.tap}: present ({'; '.join(bits)})")
    lines.append(f"ip_forward: {st.ip_forward if st.ip_forward is not None else 'unknown'}")
    lines.append(f"uplink: {uplink_of(cfg, st) or 'none (no default route)'}"
                 + (" (--uplink)" if cfg.uplink else " (default route)" if st.default_dev else ""))
    what = f"nft table ip {NFT_TABLE}" if cfg.backend == "nft" else "iptables nat POSTROUTING, tagged"
    if not st.nat_known:
        lines.append(f"nat ({what}): unknown (reading the rules needs root)")
    else:
        if cfg.backend == "nft":
            lines.append(f"nat ({what}): {'present' if st.table else 'absent'}")
        elif not st.rules:
            lines.append(f"nat ({what}): none")
        for r in st.rules:
            lines.append(f"  rule: {r.comment}" + ("" if _is_this_taps(cfg, r.comment) else " (another TAP)"))
    for where in st.forward_drop:
        lines.append(f"warning: {where} drops forwarded packets by default")
    return lines


def _where(cfg: NetConfig) -> str:
    return f" in netns {cfg.netns}" if cfg.netns else ""


def _who(uid: Optional[int]) -> str:
    if uid is None:
        return "root-only (no owner)"
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


# --- command line ---------------------------------------------------------------------

def choose_backend(asked: str, which: Callable[[str], Optional[str]] = shutil.which) -> str:
    if asked != "auto":
        return asked
    if which("nft"):
        return "nft"
    if which("iptables"):
        return "iptables"
    return "nft"


def require_tools(cfg: NetConfig, which: Callable[[str], Optional[str]] = shutil.which) -> None:
    need = ["ip", "sysctl", cfg.backend]
    missing = [t for t in need if not which(t)]
    if missing:
        if cfg.backend == "nft" and missing == ["nft"]:
            raise NetworkError("nft not found and no iptables either: install the Debian package nftables "
                               "(apt-get install -y nftables)")
        raise NetworkError("; ".join(f"{t} not found{_package_hint(t)}" for t in missing))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m redox_tools.vm.network",
                                description="TAP device + NAT for `--net tap` (Cloud Hypervisor / QEMU).")
    p.add_argument("action", choices=("setup", "teardown", "status"))
    p.add_argument("--tap", default=DEFAULT_TAP, help=f"TAP device name (default {DEFAULT_TAP})")
    p.add_argument("--bridge-cidr", default=DEFAULT_CIDR,
                   help=f"host address/prefix on the TAP (default {DEFAULT_CIDR})")
    p.add_argument("--netns", default=None, help="do everything inside this network namespace")
    p.add_argument("--uplink", default=None, help="NAT out via this interface (default: the default route's)")
    p.add_argument("--backend", default="auto", choices=("auto", "nft", "iptables"),
                   help="auto: nftables if `nft` is installed, else iptables")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return p


def main(argv: Optional[Sequence[str]] = None, run: Runner = run_cmd,
         which: Callable[[str], Optional[str]] = shutil.which,
         geteuid: Optional[Callable[[], int]] = None,
         netns_exists: Optional[Callable[[str], bool]] = None) -> int:
    a = build_parser().parse_args(argv)
    root = (geteuid or os.geteuid)() == 0
    if not root and not a.dry_run and (a.action != "status" or a.netns):
        raise NetworkError(NOT_ROOT)
    if a.netns is not None and not _NETNS_RE.match(a.netns):
        raise NetworkError(f"--netns {a.netns!r}: a namespace name is letters, digits, '_', '.' or '-'")
    cfg = NetConfig(
        tap=check_ifname("--tap", a.tap),
        cidr=parse_cidr(a.bridge_cidr),
        netns=a.netns,
        uplink=check_ifname("--uplink", a.uplink) if a.uplink is not None else None,
        owner_uid=owner_from_env(),
        backend=choose_backend(a.backend, which),
    )
    if not a.dry_run or root:
        require_tools(cfg, which)
    if cfg.netns and (root or not a.dry_run):
        exists = netns_exists or (lambda n: os.path.exists(os.path.join(NETNS_DIR, n)))
        if not exists(cfg.netns):
            raise NetworkError(f"network namespace {cfg.netns} does not exist (create it: ip netns add {cfg.netns})")

    if a.action == "status":
        for line in describe(cfg, probe(cfg, run, read_nat=root)):
            print(line)
        return 0

    if root:
        st = probe(cfg, run)
    else:  # dry run without root: cannot read everything, so assume nothing / a full setup exists
        st = State(ip_forward=0, routes_known=cfg.netns is None)
        if not cfg.netns and cfg.uplink is None and which("ip"):
            res = run(cfg.ip("-j", "-4", "route", "show", "default"), False)
            routes = _json(res) if res.returncode == 0 else []
            if routes:
                st.default_dev = routes[0].get("dev")  # type: ignore[index,union-attr]
        if a.action == "setup":
            print("# not root: showing the commands of a fresh setup", file=sys.stderr)
        else:
            st = State(tap=TapState(True, "tap", cfg.owner_uid, True, [str(cfg.cidr)], MARK),
                       table=cfg.backend == "nft", chain=cfg.backend == "nft",
                       rules=[NatRule("HANDLE", rule_comment(cfg, cfg.uplink))])
            if cfg.backend == "iptables":
                add = nat_add(cfg, cfg.uplink)
                st.rules[0].ref = shlex.join(add[add.index("-A"):])  # as `iptables -S` prints it
            print("# not root: showing the commands that tear down a complete setup", file=sys.stderr)
    plan = plan_setup(cfg, st) if a.action == "setup" else plan_teardown(cfg, st)
    for w in plan.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for n in plan.notes:
        print(f"note: {n}", file=sys.stderr)
    if a.dry_run:
        for c in plan.commands:
            print(shlex.join(c))
        return 0
    if not plan.commands:
        print(f"{a.action}: nothing to do ({_summary(cfg, st, a.action)})")
        return 0
    for c in plan.commands:
        print("+ " + shlex.join(c))
        run(c, True)
    print(f"{a.action}: done, {len(plan.commands)} command(s) ({_summary(cfg, st, a.action)})")
    if a.action == "setup":
        guest = next(h for h in cfg.subnet.hosts() if h != cfg.cidr.ip)
        print(f"guest: an address in {cfg.subnet} such as {guest}, gateway {cfg.cidr.ip}; "
              f"VM: --net tap --tap {cfg.tap}")
    return 0


def _summary(cfg: NetConfig, st: State, action: str) -> str:
    if action == "teardown":
        return f"{cfg.tap} and its NAT rule absent{_where(cfg)}"
    up = uplink_of(cfg, st)
    return f"{cfg.tap} {cfg.cidr}, NAT via {up or 'any interface'}{_where(cfg)}"


if __name__ == "__main__":
    run_main(main)
