"""The four profiles and the custom-system example, read from their BUILD files, evaluated and
their generated files checked byte for byte; bad input through the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from redox_tools.system import load_system
from redox_tools.system.evaluator import mk_force
from redox_tools.system.buildfiles import read_build_file, system_description
from redox_tools.system.generate import derived_salt, generate, hash_password
from redox_tools.system.options.hardware import drop_drivers

# The repository root in a checkout and in a Pants sandbox alike; the BUILD files it reads are
# declared inputs (//images:module-build-files).
ROOT = str(Path(__file__).resolve().parents[3])
PLUGINS = os.path.join(ROOT, "pants-plugins")

INITRC_DEV = '# Written by redox-pants from environment.variables and environment.shell_aliases.\nalias grep = "grep --color=auto"\nalias ls = "ls --color=auto"\n'
INITRC_EXAMPLE = (
    '# Written by redox-pants from environment.variables and environment.shell_aliases.\n'
    'alias grep = "grep --color=auto"\nalias ll = "ls -la"\nalias ls = "ls --color=auto"\n'
)
CONSOLE = "requires_weak 10_net.target\ninputd -A 2\nnowait getty 2\nnowait getty /scheme/debug/no-preserve -J\n"
DHCPD = '[unit]\ndescription = "Network configuration using DHCP"\nrequires_weak = [\n    "10_smolnetd.service",\n]\n\n[service]\ncmd = "dhcpd"\ntype = "oneshot_async"\n'
DHCP_OFF = '[unit]\ndescription = "DHCP disabled (networking.mode = static)"\n\n[service]\ncmd = "true"\ntype = "oneshot"\n'
NET_STATIC = '[unit]\ndescription = "Network"\nrequires_weak = [\n    "00_base.target",\n    "10_smolnetd.service",\n    "11_static_net.service",\n]\n'
STATIC_UNIT = '[unit]\ndescription = "Static IPv4 address of eth0"\nrequires_weak = [\n    "10_smolnetd.service",\n]\n\n[service]\ncmd = "ion"\nargs = ["/etc/net/static.ion"]\ntype = "oneshot"\n'
REMOTE = '[unit]\ndescription = "Remote shell (networking.remote_shell)"\nrequires_weak = [\n    "10_net.target",\n]\n\n[service]\ncmd = "nc"\nargs = ["-l", "-e", "/bin/ion", "0.0.0.0:8023"]\ntype = "oneshot_async"\n'
XDG = "".join(f'XDG_{d.upper()}_DIR="$HOME/{d}"\n' for d in ("Desktop", "Documents", "Downloads", "Music", "Pictures", "Public", "Templates", "Videos"))
PASSWD = "root;0;0;root;/root;/usr/bin/ion\nuser;1000;1000;user;/home/user;/usr/bin/ion\n"
GROUP = "root;x;0;\nsudo;x;1;user\nuser;x;1000;\n"


def profile(name):
    modules, _ = read_build_file(ROOT, "images/profiles")
    data = {"system": f"//images:redox-{name}", "roots": [f"//images/profiles:{name}"], "modules": list(modules.values())}
    ev, config = load_system(data)
    return ev, config, {f.path: f for f in generate(config, data["system"])}


def text(files, path):
    return files[path].data.decode()


def check_os_release(files, variant):
    lines = text(files, "/usr/lib/os-release").splitlines()
    assert lines[:8] == [
        'PRETTY_NAME="Redox OS 0.9.0"', 'NAME="Redox OS"', "VERSION_ID=0.9.0", "ID=redox-os",
        'HOME_URL="https://www.redox-os.org/"', 'DOCUMENTATION_URL="https://doc.redox-os.org/"',
        'SUPPORT_URL="https://www.redox-os.org/community/"', f'VARIANT="{variant}"',
    ]
    assert lines[8].startswith("BUILD_ID=") and len(lines[8]) == len("BUILD_ID=") + 16
    assert files["/etc/os-release"].target == "../usr/lib/os-release"


def check_root_password(files, system):
    root, user = text(files, "/etc/shadow").splitlines()
    assert user == "user;"
    name, h = root.split(";")
    assert name == "root" and h == hash_password("password", derived_salt(system, "root"))
    assert PasswordHasher().verify(h, "password")
    assert files["/etc/shadow"].mode == 0o600


def test_minimal():
    ev, config, files = profile("minimal")
    assert config["hardware"]["drivers"] == "all" and drop_drivers(config) == []
    assert config["environment"]["system_packages"] == ["//images:minimal-packages"]
    assert config["filesystem"]["size"] == "196M" and config["networking"]["mode"] == "none"
    assert text(files, "/etc/passwd") == PASSWD and text(files, "/etc/group") == GROUP
    assert files["/etc/group"].mode == 0o600
    check_root_password(files, "//images:redox-minimal")
    assert not any(p.startswith("/etc/net/") for p in files)
    assert text(files, "/etc/init.d/10_smolnetd.service") == (
        '[unit]\ndescription = "netstack disabled (networking.mode = none)"\n\n[service]\ncmd = "true"\ntype = "oneshot"\n'
    )
    assert text(files, "/etc/init.d/10_net.target") == (
        '[unit]\ndescription = "Network (disabled: networking.mode = none)"\nrequires_weak = [\n    "00_base.target",\n]\n'
    )
    assert text(files, "/etc/init.d/30_console") == CONSOLE
    assert "/etc/ion/initrc" not in files and "/etc/init.d/17_remote_shell.service" not in files
    assert text(files, "/etc/hostname") == "redox"
    assert (files["/home/user"].mode, files["/home/user"].uid, files["/home/user"].gid) == (0o700, 1000, 1000)
    assert (files["/root"].mode, files["/root"].uid) == (0o700, 0)
    assert text(files, "/home/user/.config/user-dirs.dirs") == XDG
    check_os_release(files, "minimal")


def test_development():
    ev, config, files = profile("development")
    assert config["environment"]["system_packages"] == ["//images:minimal-packages", "//images:development-packages"]
    assert (config["virtualisation"]["cpus"], config["virtualisation"]["memory"]) == (4, "2048M")
    assert text(files, "/etc/init.d/10_dhcpd.service") == DHCPD
    assert {p: text(files, p) for p in files if p.startswith("/etc/net/")} == {
        "/etc/net/dns": "9.9.9.9\n", "/etc/net/ip": "10.0.2.15\n", "/etc/net/ip_router": "10.0.2.2\n",
        "/etc/net/ip_subnet": "255.255.255.0\n",
    }
    assert text(files, "/etc/init.d/17_remote_shell.service") == REMOTE
    assert text(files, "/etc/ion/initrc") == INITRC_DEV == text(files, "/root/.config/ion/initrc")
    assert files["/home/user/.config/ion/initrc"].uid == 1000
    assert text(files, "/etc/init.d/30_console") == CONSOLE
    check_root_password(files, "//images:redox-development")
    check_os_release(files, "development")


def test_graphical():
    ev, config, files = profile("graphical")
    assert config["graphics"]["enable"] and config["hardware"]["audio"] and config["filesystem"]["size"] == "650M"
    assert config["environment"]["system_packages"][-1] == "//images:graphical-packages"
    # desktop-minimal.toml's units
    assert text(files, "/etc/init.d/20_orbital") == "requires_weak 10_net.target 20_audiod.service\nnowait VT=3 orbital orblogin launcher\n"
    assert text(files, "/etc/init.d/30_console") == "requires_weak 20_orbital\nnowait getty 2\nnowait getty /scheme/debug/no-preserve -J\n"
    assert text(files, "/etc/init.d/10_dhcpd.service") == DHCPD
    check_os_release(files, "graphical")


def test_cloud():
    ev, config, files = profile("cloud")
    assert config["hardware"]["drivers"] == "virtio-only"
    # no graphics (but virtio-gpu), audio, USB, real NICs or real disk controllers
    assert drop_drivers(config) == [
        "ac97d", "ahcid", "e1000d", "ided", "ihdad", "ihdgd", "ixgbed", "nvmed", "rtl8139d", "rtl8168d",
        "sb16d", "usbctl", "usbhidd", "usbhubd", "usbscsid", "vboxd", "xhcid",
    ]
    assert config["virtualisation"]["network"] == "tap" and config["virtualisation"]["tap"] == "tap0"
    assert config["virtualisation"]["nic_model"] == "virtio-net-pci"  # its driver is among virtio-only's
    assert {p: text(files, p) for p in files if p.startswith("/etc/net/")} == {
        "/etc/net/dns": "9.9.9.9\n", "/etc/net/ip": "172.30.0.2\n", "/etc/net/ip_router": "172.30.0.1\n",
        "/etc/net/ip_subnet": "255.255.255.0\n",
        "/etc/net/static.ion": "echo 172.30.0.2/24 > /scheme/netcfg/ifaces/eth0/addr/set\n"
        "echo default via 172.30.0.1 > /scheme/netcfg/route/add\necho 9.9.9.9 > /scheme/netcfg/resolv/nameserver\n",
    }
    assert text(files, "/etc/init.d/10_dhcpd.service") == DHCP_OFF
    assert text(files, "/etc/init.d/11_static_net.service") == STATIC_UNIT
    assert text(files, "/etc/init.d/10_net.target") == NET_STATIC
    check_os_release(files, "cloud")


EXAMPLE = {
    "/etc/environment.d/50_system": ("file", 0o644, 0, 0, "TZ=UTC\n"),
    "/etc/group": ("file", 0o600, 0, 0, "root;x;0;\nsudo;x;1;user\nuser;x;1000;\nadmin;x;1001;\n"),
    "/etc/hostname": ("file", 0o644, 0, 0, "redox"),
    "/etc/init.d/10_dhcpd.service": ("file", 0o644, 0, 0, DHCP_OFF),
    "/etc/init.d/10_net.target": ("file", 0o644, 0, 0, NET_STATIC),
    "/etc/init.d/11_static_net.service": ("file", 0o644, 0, 0, STATIC_UNIT),
    "/etc/init.d/17_remote_shell.service": ("file", 0o644, 0, 0, REMOTE),
    "/etc/init.d/30_console": ("file", 0o644, 0, 0, CONSOLE),
    "/etc/ion/initrc": ("file", 0o644, 0, 0, INITRC_EXAMPLE),
    "/etc/net/dns": ("file", 0o644, 0, 0, "9.9.9.9\n"),
    "/etc/net/ip": ("file", 0o644, 0, 0, "10.0.0.5\n"),
    "/etc/net/ip_router": ("file", 0o644, 0, 0, "10.0.0.1\n"),
    "/etc/net/ip_subnet": ("file", 0o644, 0, 0, "255.255.255.0\n"),
    "/etc/net/static.ion": ("file", 0o644, 0, 0, "echo 10.0.0.5/24 > /scheme/netcfg/ifaces/eth0/addr/set\necho default via 10.0.0.1 > /scheme/netcfg/route/add\necho 9.9.9.9 > /scheme/netcfg/resolv/nameserver\n"),
    "/etc/os-release": ("symlink", 0o777, 0, 0, "../usr/lib/os-release"),
    "/etc/passwd": ("file", 0o644, 0, 0, PASSWD + "admin;1001;1001;admin;/home/admin;/bin/ion\n"),
    "/etc/shadow": ("file", 0o600, 0, 0, "root;$argon2id$v=19$m=4096,t=3,p=1$u+3weTdqFayNk7tZBEOtLQ$8TCzMnppfFr4UX0tblE3ET2T/L0J7pS4rj48LUKZo7c\nuser;\nadmin;\n"),
    "/root": ("dir", 0o700, 0, 0, ""),
    "/root/.config": ("dir", 0o755, 0, 0, ""),
    "/root/.config/ion": ("dir", 0o755, 0, 0, ""),
    "/root/.config/ion/initrc": ("file", 0o644, 0, 0, INITRC_EXAMPLE),
    "/usr/lib/os-release": ("file", 0o644, 0, 0, 'PRETTY_NAME="Redox OS 0.9.0"\nNAME="Redox OS"\nVERSION_ID=0.9.0\nID=redox-os\nHOME_URL="https://www.redox-os.org/"\nDOCUMENTATION_URL="https://doc.redox-os.org/"\nSUPPORT_URL="https://www.redox-os.org/community/"\nVARIANT="development"\nBUILD_ID=a49fe6efa31c7fd5\n'),
}
for _user, _id in (("admin", 1001), ("user", 1000)):
    EXAMPLE[f"/home/{_user}"] = ("dir", 0o700, _id, _id, "")
    for _d in ("Desktop", "Documents", "Downloads", "Music", "Pictures", "Public", "Templates", "Videos", ".config", ".config/ion"):
        EXAMPLE[f"/home/{_user}/{_d}"] = ("dir", 0o755, _id, _id, "")
    EXAMPLE[f"/home/{_user}/.config/ion/initrc"] = ("file", 0o644, _id, _id, INITRC_EXAMPLE)
    EXAMPLE[f"/home/{_user}/.config/user-dirs.dirs"] = ("file", 0o644, _id, _id, XDG)


def test_custom_system_example_byte_for_byte():
    data = system_description(ROOT, "images/examples:custom-system")
    ev, config = load_system(data)
    assert config["environment"]["system_packages"] == [
        "//images:minimal-packages", "//images:development-packages",
        "//packages/userspace:ripgrep", "//packages/userspace:fd", "//packages/userspace:bat",
    ]
    assert config["users"]["users"]["admin"]["uid"] == 1001
    got = {
        f.path: (f.kind, f.mode, f.uid, f.gid, f.data.decode() if f.kind == "file" else f.target)
        for f in generate(config, data["system"])
    }
    assert got == EXAMPLE
    assert ev.modules_setting("networking.mode") == ["//images/examples:custom"]
    assert ev.modules_setting("environment.shell_aliases") == ["//images/profiles:development", "//images/examples:custom"]


def run_cli(tmp_path, config, *extra):
    """A system of the development profile plus one module with `config`, through the CLI."""
    data = system_description(ROOT, "images/examples:custom-system")
    data["modules"].append({"name": "//t:bad", "file": "t/BUILD", "dir": "t", "imports": [], "config": config})
    data["modules"][0]["imports"].append("//t:bad")
    path = tmp_path / "system.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "redox_tools.system", "build", str(path), "--out-dir", str(out), "--root", ROOT, *extra],
        cwd=PLUGINS, capture_output=True, text=True,
    )
    return proc, out


@pytest.mark.parametrize(
    "config, message",
    [
        ({"networking": {"hostnme": "x"}}, "error: unknown option `networking.hostnme` in module //t:bad (did you mean `networking.hostname`?)"),
        ({"filesystem": {"size": 512}}, "error: option `filesystem.size` in module //t:bad: expected a size like '512M' or '1G', got 512"),
        ({"networking": {"hostname": "other"}, "system": {}}, None),
        ({"users": {"users": {"admin": {"shell": "/bin/bash"}}}},
         'error: option `users.users.admin.shell` has conflicting values at the same priority (100): "/bin/ion" in module //images/examples:custom and "/bin/bash" in module //t:bad'),
        ({"users": {"users": {"eve": {"uid": 1001}}}}, "error: option `users.users.eve.uid` (set in //t:bad): uid 1001 is also the uid of user `admin` (set in //images/examples:custom)"),
        ({"networking": {"interfaces": {"eth0": {"address": mk_force(None)}}}}, "error: option `networking.interfaces` (set in //t:bad, //images/examples:custom): networking.mode is `static` but no interface has an `address`"),
        ({"environment": {"system_packages": ["ripgrep"]}}, "error: option `environment.system_packages` in module //t:bad: element 0: expected a package target address like '//packages/userspace:ripgrep', got 'ripgrep'"),
        ({"files": {"/etc/../../x": {"text": "x"}}}, "error: option `files./etc/../../x` (set in //t:bad): path '/etc/../../x' leaves the image root ('..')"),
        ({"users": {"users": {"admin": {"password": 5}}}}, "error: option `users.users.admin.password` in module //t:bad: expected null or str"),
        ({"hardware": {"drivers": ["virtio-blkd", "virtio-net"]}},
         "error: option `hardware.drivers` (set in //t:bad): unknown driver `virtio-net` (did you mean `virtio-netd`?); "
         "known drivers: ac97d, ahcid, e1000d, ided, ihdad, ihdgd, ixgbed, nvmed, rtl8139d, rtl8168d, sb16d, usbctl, "
         "usbhidd, usbhubd, usbscsid, vboxd, virtio-blkd, virtio-gpud, virtio-netd, xhcid"),
        ({"hardware": {"drivers": "virtio-only"}, "virtualisation": {"network": "user"}},
         "error: option `virtualisation.nic_model`: the VM's NIC `e1000` (network `user`) needs the driver e1000d, "
         "which `hardware.drivers` (set in //t:bad) leaves out; set virtualisation.nic_model to one whose driver "
         "is there (virtio-net-pci) or add e1000d"),
        ({"hardware": {"drivers": "virtio"}}, "error: option `hardware.drivers` in module //t:bad: expected one of all | virtio-only or list of str"),
    ],
)
def test_bad_input_one_error_line_nothing_written(tmp_path, config, message):
    proc, out = run_cli(tmp_path, config)
    if message is None:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 2, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".system-")]


def test_import_cycle_through_cli(tmp_path):
    data = {"system": "s", "roots": ["//a:a"], "modules": [
        {"name": "//a:a", "imports": ["//b:b"], "config": {}}, {"name": "//b:b", "imports": ["//a:a"], "config": {}}]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "redox_tools.system", "eval", str(path)], cwd=PLUGINS, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr == "error: import cycle: //a:a -> //b:b -> //a:a; remove one of these imports\n"


def test_build_writes_overlay_and_no_plaintext_password(tmp_path):
    proc, out = run_cli(tmp_path, {"users": {"users": {"admin": {"password": "s3cret-Pa55"}}}})
    assert proc.returncode == 0, proc.stderr
    for p in out.rglob("*"):
        if p.is_file():
            assert b"s3cret-Pa55" not in p.read_bytes(), p
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["users"]["users"]["admin"]["password"] == "<secret>"
    shadow = (out / "files/etc/shadow").read_text().splitlines()
    admin_hash = [line for line in shadow if line.startswith("admin;")][0].split(";", 1)[1]
    assert PasswordHasher().verify(admin_hash, "s3cret-Pa55")
    overlay = json.loads((out / "overlay.json").read_text())
    home = [e for e in overlay["entries"] if e["path"] == "home/admin"][0]
    assert (home["kind"], home["mode"], home["uid"], home["gid"]) == ("dir", 0o700, 1001, 1001)
    # the same input gives the same bytes
    again = tmp_path / "again"
    again.mkdir()
    proc2, out2 = run_cli(again, {"users": {"users": {"admin": {"password": "s3cret-Pa55"}}}})
    assert proc2.returncode == 0, proc2.stderr
    assert (out2 / "files/etc/shadow").read_bytes() == (out / "files/etc/shadow").read_bytes()


def test_options_listing():
    proc = subprocess.run([sys.executable, "-m", "redox_tools.system", "options", "--json"], cwd=PLUGINS, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = {r["path"]: r for r in json.loads(proc.stdout)}
    assert rows["networking.mode"]["type"] == "one of auto | static | none"
    assert rows["networking.mode"]["default"] == "auto"
    assert rows["networking.mode"]["declared_in"] == "pants-plugins/redox_tools/system/options/networking.py"
    assert rows["users.users.<name>.uid"]["declared_in"].endswith("options/users.py")
    for group in ("boot", "users", "networking", "environment", "files", "services", "filesystem", "graphics",
                  "hardware", "virtualisation", "time", "security"):
        assert any(p.startswith(group) for p in rows), group


def test_selftest_drivers_subset_through_cli(tmp_path):
    """images:selftest keeps some of the fixture's drivers: `build` tells the image rules which to
    leave out (config.json `drop_drivers`), and the subset is part of the BUILD_ID."""
    data = system_description(ROOT, "images:selftest")
    path = tmp_path / "system.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "redox_tools.system", "build", str(path), "--out-dir", str(out), "--root", ROOT],
        cwd=PLUGINS, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    written = json.loads((out / "config.json").read_text())
    assert written["config"]["hardware"]["drivers"] == [
        "ahcid", "e1000d", "usbhubd", "usbscsid", "virtio-blkd", "virtio-netd", "xhcid"
    ]
    assert written["drop_drivers"] == [
        "ac97d", "ided", "ihdad", "ihdgd", "ixgbed", "nvmed", "rtl8139d", "rtl8168d", "sb16d", "usbctl", "usbhidd",
        "vboxd", "virtio-gpud",
    ]
    _ev, config = load_system(data)
    build_id = {f.path: f for f in generate(config, data["system"])}["/usr/lib/os-release"].data
    config["hardware"]["drivers"] = "all"
    assert {f.path: f for f in generate(config, data["system"])}["/usr/lib/os-release"].data != build_id


def test_driver_names_are_upstream_bases():
    """`hardware.drivers` knows exactly the drivers base's Makefile builds (the package catalog,
    a declared input: 3rdparty/redox/redox-packages.toml)."""
    import tomllib

    from redox_tools.system.options.hardware import INITFS_DRIVERS, ROOTFS_DRIVERS

    with open(os.path.join(ROOT, "3rdparty/redox/redox-packages.toml"), "rb") as f:
        make = tomllib.load(f)["packages"]["base"]["make_variables"]
    assert list(ROOTFS_DRIVERS) == make["DRIVERS_BINS"]
    assert list(INITFS_DRIVERS) == make["INITFS_DRIVERS_BINS"]
