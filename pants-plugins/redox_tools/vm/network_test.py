"""Pure tests of `network`: command lists, probe parsing, idempotency decisions, errors.

Nothing here runs a real command: a fake runner serves canned `ip`/`nft`/`iptables` output.
"""
from __future__ import annotations

import ipaddress
import json
import os
from typing import List, Optional, Sequence

import pytest

from redox_tools.errors import run_main
from redox_tools.vm import network as net
from redox_tools.vm.network import (
    MARK,
    NOT_ROOT,
    CmdResult,
    NatRule,
    NetConfig,
    NetworkError,
    State,
    TapState,
    plan_setup,
    plan_teardown,
)

CIDR = "172.30.0.1/24"
FULL_COMMENT = f"{MARK} tap=tap0 src=172.30.0.0/24 out=eth0"


def link(name: str, *, kind: Optional[str] = None, tap_type: str = "tap", user: Optional[str] = None,
         up: bool = True, addrs: Sequence[str] = (), alias: str = "") -> dict:
    d: dict = {"ifname": name, "flags": ["BROADCAST", "MULTICAST"] + (["UP"] if up else []),
               "addr_info": [{"family": "inet", "local": a.split("/")[0], "prefixlen": int(a.split("/")[1])}
                             for a in addrs]}
    if kind:
        data: dict = {"type": tap_type, "persist": True}
        if user is not None:
            data["user"] = user
        d["linkinfo"] = {"info_kind": kind, "info_data": data}
    if alias:
        d["ifalias"] = alias
    return d


class FakeHost:
    """Answers the read-only probe commands from canned state; records every argv."""

    def __init__(self, links=(), default_dev: Optional[str] = "eth0", ip_forward: int = 0,
                 nft_items=(), ipt_nat: str = "-P POSTROUTING ACCEPT\n", ipt_forward: str = "-P FORWARD ACCEPT\n"):
        self.links = [link("lo")] + list(links)
        self.default_dev = default_dev
        self.ip_forward = ip_forward
        self.nft_items = list(nft_items)
        self.ipt_nat = ipt_nat
        self.ipt_forward = ipt_forward
        self.calls: List[List[str]] = []

    def __call__(self, argv: Sequence[str], check: bool = True) -> CmdResult:
        argv = list(argv)
        self.calls.append(argv)
        a = argv[4:] if argv[:3] == ["ip", "netns", "exec"] else argv
        if a[0] == "ip" and a[1] == "-n":
            a = ["ip"] + a[3:]
        out = ""
        if a == ["ip", "-d", "-j", "addr", "show"]:
            out = json.dumps(self.links)
        elif a == ["ip", "-j", "-4", "route", "show", "default"]:
            out = json.dumps([{"dst": "default", "dev": self.default_dev}] if self.default_dev else [])
        elif a == ["sysctl", "-n", "net.ipv4.ip_forward"]:
            out = f"{self.ip_forward}\n"
        elif a == ["nft", "-j", "list", "ruleset"]:
            out = json.dumps({"nftables": [{"metainfo": {"version": "1.0.6"}}] + self.nft_items})
        elif a[:5] == ["iptables", "-w", "-t", "nat", "-S"]:
            out = self.ipt_nat
        elif a == ["iptables", "-w", "-S", "FORWARD"]:
            out = self.ipt_forward
        else:
            raise AssertionError(f"fake host: unexpected command {argv}")
        return CmdResult(tuple(argv), 0, out, "")


def nft_table(comments: Sequence[str] = (FULL_COMMENT,), chain: bool = True) -> list:
    items: list = [{"table": {"family": "ip", "name": "redox_pants", "handle": 1}}]
    if chain:
        items.append({"chain": {"family": "ip", "table": "redox_pants", "name": "postrouting", "handle": 1,
                                "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}})
    for i, c in enumerate(comments):
        items.append({"rule": {"family": "ip", "table": "redox_pants", "chain": "postrouting",
                               "handle": 2 + i, "comment": c, "expr": []}})
    return items


def our_tap(**kw) -> dict:
    kw.setdefault("kind", "tun")
    kw.setdefault("addrs", [CIDR])
    kw.setdefault("alias", f"{MARK} fwd-was-0")
    return link("tap0", **kw)


def always(_name: str) -> Optional[str]:
    return "/usr/sbin/x"


def run(capsys, argv, host, euid=0, which=always, netns_exists=lambda n: True):
    code = net.main(argv, run=host, which=which, geteuid=lambda: euid, netns_exists=netns_exists)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def no_sudo(monkeypatch):
    monkeypatch.delenv("SUDO_UID", raising=False)


# --- dry run: the exact command lists -------------------------------------------------

FRESH_DEFAULT_NS = [
    "ip tuntap add dev tap0 mode tap",
    "ip link set dev tap0 alias 'redox-pants fwd-was-0'",
    "ip addr add 172.30.0.1/24 dev tap0",
    "ip link set dev tap0 up",
    "sysctl -q -w net.ipv4.ip_forward=1",
    "nft 'add table ip redox_pants'",
    "nft 'add chain ip redox_pants postrouting { type nat hook postrouting priority srcnat; policy accept; }'",
    "nft 'add rule ip redox_pants postrouting ip saddr 172.30.0.0/24 oifname \"eth0\" masquerade "
    "comment \"redox-pants tap=tap0 src=172.30.0.0/24 out=eth0\"'",
]


def test_dry_run_fresh_setup_as_root(capsys):
    host = FakeHost()
    code, out, _ = run(capsys, ["setup", "--dry-run"], host)
    assert code == 0
    assert out.splitlines() == FRESH_DEFAULT_NS
    # only the read-only probes ran
    assert all(c[-1] in ("show", "default", "net.ipv4.ip_forward", "ruleset") for c in host.calls)


def test_dry_run_without_root_shows_a_fresh_setup(capsys):
    host = FakeHost()
    code, out, err = run(capsys, ["setup", "--dry-run"], host, euid=1000)
    assert code == 0
    assert out.splitlines() == FRESH_DEFAULT_NS
    assert "not root" in err
    assert host.calls == [["ip", "-j", "-4", "route", "show", "default"]]


def test_dry_run_in_a_netns_prefixes_every_command(capsys):
    host = FakeHost(default_dev=None)
    code, out, _ = run(capsys, ["setup", "--dry-run", "--netns", "t1", "--tap", "vm1",
                                "--bridge-cidr", "10.99.0.1/28"], host)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "ip -n t1 tuntap add dev vm1 mode tap"
    assert "ip -n t1 addr add 10.99.0.1/28 dev vm1" in lines
    assert "ip netns exec t1 sysctl -q -w net.ipv4.ip_forward=1" in lines
    assert lines[-1] == ("ip netns exec t1 nft 'add rule ip redox_pants postrouting ip saddr 10.99.0.0/28 "
                         "oifname != \"vm1\" masquerade comment \"redox-pants tap=vm1 src=10.99.0.0/28 out=*\"'")
    assert all(c.startswith(("ip -n t1 ", "ip netns exec t1 ")) for c in lines)
    assert all(c[:3] == ["ip", "-n", "t1"] or c[:4] == ["ip", "netns", "exec", "t1"] for c in host.calls)


def test_dry_run_teardown(capsys):
    host = FakeHost(links=[our_tap()], ip_forward=1, nft_items=nft_table())
    code, out, err = run(capsys, ["teardown", "--dry-run"], host)
    assert code == 0
    assert out.splitlines() == ["nft 'delete table ip redox_pants'", "ip link del dev tap0"]
    assert "ip_forward left at 1" in err


def test_sudo_uid_owns_the_tap(capsys, monkeypatch):
    monkeypatch.setenv("SUDO_UID", "1234")
    code, out, _ = run(capsys, ["setup", "--dry-run"], FakeHost())
    assert out.splitlines()[0] == "ip tuntap add dev tap0 mode tap user 1234"


def test_iptables_backend_commands(capsys):
    host = FakeHost(links=[link("eth0")])
    code, out, _ = run(capsys, ["setup", "--dry-run", "--backend", "iptables", "--uplink", "eth0"], host)
    lines = out.splitlines()
    assert not any("nft" in c for c in lines)
    assert lines[-1] == ("iptables -w -t nat -A POSTROUTING -s 172.30.0.0/24 -o eth0 -m comment --comment "
                         "'redox-pants tap=tap0 src=172.30.0.0/24 out=eth0' -j MASQUERADE")


def test_auto_backend_falls_back_to_iptables(capsys):
    which = lambda t: None if t == "nft" else "/usr/sbin/" + t  # noqa: E731
    code, out, _ = run(capsys, ["setup", "--dry-run"], FakeHost(), which=which)
    assert "iptables -w -t nat -A POSTROUTING" in out.splitlines()[-1]


# --- idempotency decisions ------------------------------------------------------------

def cfg(**kw) -> NetConfig:
    return NetConfig(**kw)


def full_state(**kw) -> State:
    st = State(
        tap=TapState(is_tap=True, kind="tap", owner_uid=None, up=True, addrs=[CIDR], alias=MARK),
        links=["lo", "eth0", "tap0"], default_dev="eth0", ip_forward=1, table=True, chain=True,
        rules=[NatRule("2", FULL_COMMENT)],
    )
    for k, v in kw.items():
        setattr(st, k, v)
    return st


def test_setup_on_a_set_up_host_does_nothing():
    assert plan_setup(cfg(), full_state()).commands == []


def test_setup_twice_through_main_runs_nothing(capsys):
    host = FakeHost(links=[link("eth0", addrs=["192.0.2.5/24"]), our_tap()], ip_forward=1, nft_items=nft_table())
    code, out, _ = run(capsys, ["setup"], host)
    assert code == 0
    assert "setup: nothing to do" in out
    assert len(host.calls) == 4  # the four probes, nothing else


def test_teardown_twice_through_main_runs_nothing(capsys):
    host = FakeHost(links=[link("eth0")])
    code, out, _ = run(capsys, ["teardown"], host)
    assert code == 0 and "teardown: nothing to do" in out
    assert len(host.calls) == 4


@pytest.mark.parametrize("change,expected", [
    (dict(ip_forward=0), [["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]]),
    ("down", [["ip", "link", "set", "dev", "tap0", "up"]]),
    ("noaddr", [["ip", "addr", "add", CIDR, "dev", "tap0"]]),
    (dict(rules=[]), [net.nat_add(cfg(), "eth0")]),
])
def test_setup_repairs_only_what_is_missing(change, expected):
    st = full_state()
    if change == "down":
        st.tap.up = False
    elif change == "noaddr":
        st.tap.addrs = []
    else:
        for k, v in change.items():
            setattr(st, k, v)
    assert plan_setup(cfg(), st).commands == expected


def test_setup_replaces_a_rule_for_another_uplink():
    st = full_state(rules=[NatRule("7", f"{MARK} tap=tap0 src=172.30.0.0/24 out=wlan0")])
    plan = plan_setup(cfg(), st)
    assert plan.commands == [["nft", "delete rule ip redox_pants postrouting handle 7"], net.nat_add(cfg(), "eth0")]


def test_setup_keeps_rules_of_other_taps():
    other = NatRule("9", f"{MARK} tap=tap1 src=172.31.0.0/24 out=eth0")
    assert plan_setup(cfg(), full_state(rules=[NatRule("2", FULL_COMMENT), other])).commands == []


def test_teardown_plans():
    assert plan_teardown(cfg(), State()).commands == []
    assert plan_teardown(cfg(), full_state()).commands == [
        ["nft", "delete table ip redox_pants"], ["ip", "link", "del", "dev", "tap0"]]
    other = NatRule("9", f"{MARK} tap=tap1 src=172.31.0.0/24 out=eth0")
    st = full_state(rules=[NatRule("2", FULL_COMMENT), other], tap=None)
    assert plan_teardown(cfg(), st).commands == [["nft", "delete rule ip redox_pants postrouting handle 2"]]
    # a half-made table (setup interrupted) goes too
    assert plan_teardown(cfg(), full_state(rules=[], tap=None)).commands == [["nft", "delete table ip redox_pants"]]


def test_teardown_leaves_a_foreign_tap_alone():
    st = full_state()
    st.tap.alias = ""
    plan = plan_teardown(cfg(), st)
    assert ["ip", "link", "del", "dev", "tap0"] not in plan.commands
    assert any("left alone" in n for n in plan.notes)


def test_iptables_probe_and_teardown():
    spec = ('-A POSTROUTING -s 172.30.0.0/24 -o eth0 -m comment --comment '
            '"redox-pants tap=tap0 src=172.30.0.0/24 out=eth0" -j MASQUERADE')
    host = FakeHost(ipt_nat=f"-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.0.0.0/8 -j MASQUERADE\n{spec}\n",
                    ipt_forward="-P FORWARD DROP\n")
    c = cfg(backend="iptables", netns="t1")
    st = net.probe(c, host)
    assert [r.comment for r in st.rules] == [FULL_COMMENT]
    assert st.forward_drop == ["iptables chain FORWARD"]
    assert plan_teardown(c, st).commands == [[
        "ip", "netns", "exec", "t1", "iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", "172.30.0.0/24",
        "-o", "eth0", "-m", "comment", "--comment", FULL_COMMENT, "-j", "MASQUERADE"]]
    assert plan_setup(c, st).warnings  # FORWARD policy DROP is reported


def test_probe_parses_ip_and_nft_json():
    drop = {"chain": {"family": "inet", "table": "filter", "name": "forward", "type": "filter",
                      "hook": "forward", "prio": 0, "policy": "drop"}}
    host = FakeHost(links=[link("eth0", addrs=["192.0.2.5/24"]), our_tap(user="0")], ip_forward=1,
                    nft_items=nft_table() + [drop])
    st = net.probe(cfg(), host)
    assert st.tap is not None and st.tap.is_tap and st.tap.ours and st.tap.up
    assert st.tap.owner_uid == 0 and st.tap.addrs == [CIDR]
    assert st.other_addrs == [("eth0", "192.0.2.5/24")]
    assert st.default_dev == "eth0" and st.ip_forward == 1
    assert st.table and st.chain and [r.ref for r in st.rules] == ["2"]
    assert st.forward_drop == ["nft table inet filter chain forward"]


# --- refusals -------------------------------------------------------------------------

def test_not_root_is_one_line_exit_2_nothing_run(capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    host = FakeHost()
    for action in ("setup", "teardown"):
        with pytest.raises(SystemExit) as e:
            run_main(lambda argv: net.main(argv, run=host), [action])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err == f"error: {NOT_ROOT}\n"
    assert host.calls == []


def test_missing_tools_name_the_debian_package(capsys):
    with pytest.raises(NetworkError, match="Debian package iproute2"):
        run(capsys, ["setup"], FakeHost(), which=lambda t: None if t == "ip" else "/x")
    with pytest.raises(NetworkError, match="Debian package nftables"):
        run(capsys, ["setup"], FakeHost(), which=lambda t: None if t in ("nft", "iptables") else "/x")
    with pytest.raises(NetworkError, match="Debian package procps"):
        run(capsys, ["teardown"], FakeHost(), which=lambda t: None if t == "sysctl" else "/x")


def test_missing_netns(capsys):
    with pytest.raises(NetworkError, match="ip netns add nope"):
        run(capsys, ["status", "--netns", "nope"], FakeHost(), netns_exists=lambda n: False)


@pytest.mark.parametrize("text", ["172.30.0.1", "172.30.0.0/24", "172.30.0.1/31", "8.8.8.1/24",
                                  "fd00::1/64", "nonsense"])
def test_bad_cidr(text):
    with pytest.raises(NetworkError, match="--bridge-cidr"):
        net.parse_cidr(text)


def test_good_cidr():
    assert net.parse_cidr("10.99.0.1/28") == ipaddress.IPv4Interface("10.99.0.1/28")


@pytest.mark.parametrize("name", ["", "a" * 16, "tap/0", "tap 0", "ta:p"])
def test_bad_tap_name(capsys, name):
    with pytest.raises(NetworkError, match="--tap"):
        run(capsys, ["setup", "--dry-run", "--tap", name], FakeHost())


def test_setup_refusals():
    st = full_state()
    st.tap.is_tap, st.tap.kind = False, "veth"
    with pytest.raises(NetworkError, match="is a veth device"):
        plan_setup(cfg(), st)
    st = full_state()
    st.tap.alias = "someone else's"
    with pytest.raises(NetworkError, match="not made by this tool"):
        plan_setup(cfg(), st)
    with pytest.raises(NetworkError, match="owned by root-only.*not uid 1000: run teardown"):
        plan_setup(cfg(owner_uid=1000), full_state())
    with pytest.raises(NetworkError, match="overlaps 172.30.5.1/16 on br-x.*--bridge-cidr"):
        plan_setup(cfg(), full_state(other_addrs=[("br-x", "172.30.5.1/16")]))
    with pytest.raises(NetworkError, match="--uplink eth9: no such interface"):
        plan_setup(cfg(uplink="eth9"), full_state())


def test_status_without_root_reads_what_it_can(capsys):
    host = FakeHost(links=[our_tap(user="0")])
    code, out, _ = run(capsys, ["status"], host, euid=1000)
    assert code == 0
    assert "tap tap0: present (tap; owner uid 0" in out
    assert "unknown (reading the rules needs root)" in out
    assert not any("nft" in c for c in host.calls)


@pytest.mark.parametrize("backend,expected", [
    ("nft", ["ip netns exec t1 nft 'delete table ip redox_pants'", "ip -n t1 link del dev tap0"]),
    ("iptables", ["ip netns exec t1 iptables -w -t nat -D POSTROUTING -s 172.30.0.0/24 '!' -o tap0 -m comment "
                  "--comment 'redox-pants tap=tap0 src=172.30.0.0/24 out=*' -j MASQUERADE",
                  "ip -n t1 link del dev tap0"]),
])
def test_dry_run_teardown_without_root_shows_a_complete_teardown(capsys, backend, expected):
    host = FakeHost()
    code, out, err = run(capsys, ["teardown", "--dry-run", "--netns", "t1", "--backend", backend], host, euid=1000)
    assert code == 0 and out.splitlines() == expected
    assert host.calls == []


def test_dry_run_in_a_netns_without_root_says_the_uplink_is_unknown(capsys):
    code, out, err = run(capsys, ["setup", "--dry-run", "--netns", "t1"], FakeHost(), euid=1000)
    assert "unknown without root: pass --uplink" in err
