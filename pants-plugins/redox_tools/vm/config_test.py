from __future__ import annotations

import pytest

from redox_tools.errors import ToolError
from redox_tools.vm.config import (
    VmConfigError,
    VmSpec,
    apply_env,
    parse_forward,
    parse_memory_mib,
)


def spec(**kw):
    return VmSpec(image="/img/disk.img", work_dir="/tmp/w", **kw)


def test_defaults():
    s = spec()
    assert (s.cpus, s.memory_mib, s.hugepages, s.direct_io) == (4, 2048, False, False)
    assert apply_env(s, {}) == s
    assert s.serial_log_path == "/tmp/w/serial.log"
    assert s.control_socket_path == "/tmp/w/control.sock"


@pytest.mark.parametrize("value,mib", [("2048", 2048), ("2048M", 2048), ("2G", 2048), ("512m", 512),
                                       ("1GiB", 1024), (" 3072MiB ", 3072), ("4gb", 4096)])
def test_memory_forms(value, mib):
    assert apply_env(spec(), {"CH_MEMORY": value}).memory_mib == mib


@pytest.mark.parametrize("value,expected", [("1", True), ("0", False), ("true", True), ("FALSE", False),
                                            ("yes", True), ("no", False), ("on", True), ("off", False)])
def test_booleans(value, expected):
    s = apply_env(spec(), {"CH_HUGEPAGES": value, "CH_DIRECT_IO": value})
    assert s.hugepages is expected and s.direct_io is expected


def test_cpus_and_empty_values():
    assert apply_env(spec(), {"CH_CPUS": "2"}).cpus == 2
    assert apply_env(spec(), {"CH_CPUS": "", "CH_MEMORY": " "}) == spec()


@pytest.mark.parametrize("var,value", [
    ("CH_CPUS", "four"), ("CH_CPUS", "0"), ("CH_CPUS", "-1"), ("CH_CPUS", "300"),
    ("CH_MEMORY", "2T"), ("CH_MEMORY", "lots"), ("CH_MEMORY", "0"), ("CH_MEMORY", "1.5G"),
    ("CH_HUGEPAGES", "maybe"), ("CH_DIRECT_IO", "2"),
])
def test_bad_knobs_name_variable_and_value(var, value):
    with pytest.raises(VmConfigError) as e:
        apply_env(spec(), {var: value})
    assert var in str(e.value) and repr(value) in str(e.value)
    assert isinstance(e.value, ToolError)


def test_parse_memory_direct():
    assert parse_memory_mib("X", "1g") == 1024


def test_forwards():
    assert parse_forward("2222:22") == (2222, 22)
    assert parse_forward("8080") == (8080, 8080)
    for bad in ("a:b", "1:2:3", "0:22", "70000:22"):
        with pytest.raises(VmConfigError):
            parse_forward(bad)


def test_validate():
    spec(network="user", forwards=((2222, 22),)).validate()
    with pytest.raises(VmConfigError, match="user-mode"):
        spec(network="none", forwards=((2222, 22),)).validate()
    with pytest.raises(VmConfigError, match="tap device name"):
        spec(network="tap").validate()
    with pytest.raises(VmConfigError, match="network must be"):
        spec(network="bridge").validate()
    with pytest.raises(VmConfigError, match="unix socket"):
        spec(control_socket="/tmp/" + "x" * 120).validate()


@pytest.mark.parametrize("value", ["²", "1²", "٣", "³2", "⁴"])
def test_non_ascii_digits_are_a_config_error_not_a_traceback(value):
    # str.isdigit() accepts superscripts, int() does not (issue 11 #4)
    for var in ("CH_CPUS", "CH_MEMORY"):
        with pytest.raises(VmConfigError) as e:
            apply_env(spec(), {var: value})
        assert var in str(e.value)


@pytest.mark.parametrize("value", ["1", "1M", "64"])
def test_too_little_guest_ram_is_refused_naming_the_minimum(value):
    with pytest.raises(VmConfigError, match=r"CH_MEMORY=.*at least 128 MiB"):
        apply_env(spec(), {"CH_MEMORY": value})
    with pytest.raises(VmConfigError, match="at least 128 MiB"):
        spec(memory_mib=1).validate()
    spec(memory_mib=128).validate()
