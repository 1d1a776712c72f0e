"""`python -m redox_tools.vm.network` for real, as root, inside a throwaway network namespace.

Everything happens in a namespace the test creates (`ip netns add`) and deletes in the fixture's
teardown, even on failure; the host's own interfaces and firewall are never touched and no packet
is sent anywhere. The namespace gets a veth pair (both ends inside it) with a default route, so
the uplink detection has something to find.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from redox_tools.vm.network import MARK, NFT_TABLE

PLUGINS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (creates a network namespace, TAP and NAT rules)"),
    pytest.mark.skipif(not shutil.which("ip"), reason="ip not installed (Debian package iproute2)"),
    pytest.mark.skipif(not shutil.which("sysctl"), reason="sysctl not installed (Debian package procps)"),
]
need_nft = pytest.mark.skipif(not shutil.which("nft"), reason="nft not installed (Debian package nftables)")
need_iptables = pytest.mark.skipif(not shutil.which("iptables"), reason="iptables not installed (Debian package iptables)")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


@pytest.fixture
def netns():
    name = f"rpnet-{uuid.uuid4().hex[:8]}"
    made = sh("ip", "netns", "add", name, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        if not os.path.exists("/dev/net/tun"):
            pytest.skip("/dev/net/tun missing: no TAP devices on this machine")
        # an uplink inside the namespace: veth pair up0/up1, default route via up0 (TEST-NET-1)
        sh("ip", "-n", name, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
        sh("ip", "-n", name, "link", "set", "up0", "up")
        sh("ip", "-n", name, "link", "set", "up1", "up")
        sh("ip", "-n", name, "addr", "add", "192.0.2.2/24", "dev", "up0")
        sh("ip", "-n", name, "route", "add", "default", "via", "192.0.2.1", "dev", "up0")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)
        assert name not in sh("ip", "netns", "list").stdout


def tool(*args: str, sudo_uid: str = "65534") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=PLUGINS, SUDO_UID=sudo_uid)
    return subprocess.run([sys.executable, "-m", "redox_tools.vm.network", *args],
                          capture_output=True, text=True, env=env)


def ok(*args: str) -> str:
    p = tool(*args)
    assert p.returncode == 0, f"{args}: status {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


def tap_info(ns: str):
    links = json.loads(sh("ip", "-n", ns, "-d", "-j", "addr").stdout)
    return next((link for link in links if link["ifname"] == "tap0"), None)


def nft_ruleset(ns: str) -> list:
    return json.loads(sh("ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset").stdout)["nftables"]


def nat_rules(ns: str) -> list:
    return [line for line in sh("ip", "netns", "exec", ns, "iptables", "-w", "-t", "nat", "-S").stdout.splitlines()
            if MARK in line]


def check_tap(ns: str) -> None:
    tap = tap_info(ns)
    assert tap is not None, "tap0 missing"
    assert tap["linkinfo"]["info_kind"] == "tun" and tap["linkinfo"]["info_data"]["type"] == "tap"
    assert tap["linkinfo"]["info_data"]["user"] in ("65534", "nobody")
    assert "UP" in tap["flags"]
    assert tap["ifalias"].startswith(MARK)
    assert [(a["local"], a["prefixlen"]) for a in tap["addr_info"] if a["family"] == "inet"] == [("172.30.0.1", 24)]
    assert sh("ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"


@need_nft
def test_setup_teardown_nft(netns):
    out = ok("setup", "--netns", netns, "--tap", "tap0")
    assert "setup: done" in out and "NAT via up0" in out
    check_tap(netns)
    items = nft_ruleset(netns)
    assert {"family": "ip", "name": NFT_TABLE} in [
        {k: t["table"][k] for k in ("family", "name")} for t in items if "table" in t]
    rules = [i["rule"] for i in items if "rule" in i]
    assert [r["comment"] for r in rules] == [f"{MARK} tap=tap0 src=172.30.0.0/24 out=up0"]
    assert {"masquerade": None} in rules[0]["expr"]

    before = (tap_info(netns), nft_ruleset(netns))
    out = ok("setup", "--netns", netns)
    assert "setup: nothing to do" in out and "+ " not in out
    assert (tap_info(netns), nft_ruleset(netns)) == before

    status = ok("status", "--netns", netns)
    assert "tap tap0: present" in status and f"nft table ip {NFT_TABLE}): present" in status

    out = ok("teardown", "--netns", netns)
    assert "teardown: done" in out
    assert tap_info(netns) is None
    assert not any("table" in i for i in nft_ruleset(netns))

    out = ok("teardown", "--netns", netns)
    assert "teardown: nothing to do" in out


@need_iptables
def test_setup_teardown_iptables_fallback(netns):
    ok("setup", "--netns", netns, "--backend", "iptables")
    check_tap(netns)
    assert nat_rules(netns) == [
        f'-A POSTROUTING -s 172.30.0.0/24 -o up0 -m comment --comment "{MARK} tap=tap0 src=172.30.0.0/24 out=up0" '
        "-j MASQUERADE"]
    assert "setup: nothing to do" in ok("setup", "--netns", netns, "--backend", "iptables")
    assert len(nat_rules(netns)) == 1
    ok("teardown", "--netns", netns, "--backend", "iptables")
    assert tap_info(netns) is None and nat_rules(netns) == []
    assert "nothing to do" in ok("teardown", "--netns", netns, "--backend", "iptables")


@need_nft
def test_teardown_leaves_foreign_things_alone(netns):
    # a TAP someone else made, and another table: neither is setup's, so neither goes
    sh("ip", "-n", netns, "tuntap", "add", "dev", "tap0", "mode", "tap")
    sh("ip", "netns", "exec", netns, "nft", "add table ip other")
    p = tool("setup", "--netns", netns)
    assert p.returncode == 2 and "not made by this tool" in p.stderr
    out = tool("teardown", "--netns", netns)
    assert out.returncode == 0 and "left alone" in out.stderr
    assert tap_info(netns) is not None
    assert any(i.get("table", {}).get("name") == "other" for i in nft_ruleset(netns))
