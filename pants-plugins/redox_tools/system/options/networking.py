"""`networking`: host name, addressing (DHCP, static, none), DNS, remote shell."""
from __future__ import annotations

import ipaddress
from typing import Any, Dict

from redox_tools.system.evaluator import Evaluator
from redox_tools.system.types import BOOL, STR, Int, OptionType, TypeMismatch, attrs_of, enum, list_of, null_or, option, sub


class IPv4(OptionType):
    name = "IPv4 address"

    def check(self, value: Any, where: str) -> Any:
        try:
            return str(ipaddress.IPv4Address(value))
        except (ValueError, TypeError):
            raise TypeMismatch(f"expected an IPv4 address like '10.0.0.5', got {value!r}") from None


IPV4 = IPv4()

INTERFACE = sub(
    "interface",
    address=option(null_or(IPV4), "Static IPv4 address (mode = static).", default=None),
    prefix=option(Int(0, 32), "Prefix length of the address (24 = 255.255.255.0).", default=24),
    gateway=option(null_or(IPV4), "Default gateway through this interface.", default=None),
)

OPTIONS = {
    "networking": {
        "mode": option(
            enum("auto", "static", "none"),
            """`auto`: DHCP on eth0 (unit 10_dhcpd.service), /etc/net/ip_router and /etc/net/dns as
            fallback; `static`: the address of `interfaces.eth0` is set by 11_static_net.service and
            DHCP is off; `none`: netstack and DHCP are replaced by no-op units, no /etc/net files.""",
            default="auto",
        ),
        "hostname": option(STR, "Written to /etc/hostname (relibc's uname nodename).", default="redox"),
        "dns": option(
            list_of(IPV4, unique=True),
            "Name servers; relibc reads exactly one from /etc/net/dns (the first).",
            default=["9.9.9.9"],
        ),
        "interfaces": option(
            attrs_of(INTERFACE),
            "Interfaces by name. Redox's netstack drives one adapter, `eth0`.",
            default={},
            example={"eth0": {"address": "10.0.0.5", "prefix": 24, "gateway": "10.0.0.1"}},
        ),
        "fallback": option(
            sub("fallback", address=option(IPV4, "/etc/net/ip."), netmask=option(IPV4, "/etc/net/ip_subnet."),
                gateway=option(IPV4, "/etc/net/ip_router (netstack's default gateway).")),
            "mode = auto: the files base.toml writes for QEMU user networking, used until DHCP answers.",
            default={"address": "10.0.2.15", "netmask": "255.255.255.0", "gateway": "10.0.2.2"},
        ),
        "remote_shell": {
            "enable": option(BOOL, "Start a TCP shell (unit 17_remote_shell: `nc -l -e /bin/ion 0.0.0.0:PORT`).", default=False),
            "port": option(Int(1, 65535), "Its port.", default=8023),
        },
    }
}


def check(ev: Evaluator, config: Dict[str, Any]) -> None:
    net = config["networking"]
    if net["mode"] == "static":
        ifaces = net["interfaces"]
        with_address = [n for n, i in ifaces.items() if i["address"]]
        if not with_address:
            raise ev.fail(
                "networking.interfaces",
                "networking.mode is `static` but no interface has an `address`: set "
                "networking.interfaces.eth0.address (and .gateway)",
            )
        for name in with_address:
            if name != "eth0":
                raise ev.fail(
                    f"networking.interfaces.{name}",
                    f"static address on `{name}`: Redox's netstack configures one adapter, `eth0`",
                )
        if not net["dns"]:
            raise ev.fail("networking.dns", "static networking needs a name server (relibc reads /etc/net/dns)")
    if len(net["dns"]) > 1:
        ev.warnings.append(f"networking.dns: relibc reads one name server; only {net['dns'][0]} is written to /etc/net/dns")
    if net["remote_shell"]["enable"] and net["mode"] == "none":
        raise ev.fail("networking.remote_shell.enable", "a remote shell needs networking.mode auto or static, not none")


CHECKS = [check]
