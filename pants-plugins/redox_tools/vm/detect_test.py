from __future__ import annotations

import stat

import pytest

from redox_tools.vm.detect import choose_hypervisor, find_cloud_hypervisor, real_kvm

CPUINFO_VMX = "processor\t: 0\nflags\t\t: fpu vme vmx sse2\n"
CPUINFO_PLAIN = "processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor\n"


def write(path, text):
    path.write_text(text)
    return str(path)


def ok_open(_path):
    return None


def denied(_path):
    raise PermissionError(13, "Permission denied")


def test_real_kvm_needs_device_rw_and_flags(tmp_path):
    kvm = write(tmp_path / "kvm", "")
    vmx = write(tmp_path / "vmx", CPUINFO_VMX)
    plain = write(tmp_path / "plain", CPUINFO_PLAIN)
    assert real_kvm(kvm, vmx, ok_open)[0] is True
    ok, why = real_kvm(kvm, plain, ok_open)
    assert not ok and "no vmx/svm" in why
    ok, why = real_kvm(kvm, vmx, denied)
    assert not ok and "read-write" in why
    ok, why = real_kvm(str(tmp_path / "absent"), vmx, ok_open)
    assert not ok and "does not exist" in why
    svm = write(tmp_path / "svm", "flags : svm\n")
    assert real_kvm(kvm, svm, ok_open)[0] is True


def test_real_kvm_on_this_host_says_why():
    ok, why = real_kvm()
    assert isinstance(ok, bool) and why


def make_exe(path):
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_find_cloud_hypervisor(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fwdir = tmp_path / "fw"
    fwdir.mkdir()
    env = {"PATH": str(bindir)}
    b, f, why = find_cloud_hypervisor(environ=env, firmware_dirs=[str(fwdir)])
    assert (b, f) == (None, None)
    assert "cloud-hypervisor not found on PATH" in why and "firmware" in why
    exe = make_exe(bindir / "cloud-hypervisor")
    fw = write(fwdir / "CLOUDHV.fd", "x")
    b, f, why = find_cloud_hypervisor(environ=env, firmware_dirs=[str(fwdir)])
    assert (b, f, why) == (exe, fw, "")
    # Explicit options and env beat discovery; a wrong explicit path is reported.
    b, f, why = find_cloud_hypervisor(binary=str(tmp_path / "nope"), firmware=fw, environ=env)
    assert b is None and "nope" in why
    hfw = write(tmp_path / "hypervisor-fw", "x")
    b, f, why = find_cloud_hypervisor(environ={"PATH": "", "CH_BINARY": exe, "CH_FIRMWARE": hfw})
    assert (b, f) == (exe, hfw)


KVM_OK = (True, "/dev/kvm is usable and the CPU has vmx")
KVM_BAD = (False, "/dev/kvm has no vmx/svm (CPU flags lack hardware virtualisation)")
CH_OK = ("/usr/bin/cloud-hypervisor", "/fw/CLOUDHV.fd", "")
CH_NOBIN = (None, "/fw/CLOUDHV.fd", "cloud-hypervisor not found on PATH")
CH_NOFW = ("/usr/bin/cloud-hypervisor", None, "no CLOUDHV.fd/hypervisor-fw firmware found")


@pytest.mark.parametrize("kvm,ch,prefer,kind,accel,words", [
    (KVM_OK, CH_OK, "cloud-hypervisor", "cloud-hypervisor", "kvm", ["Cloud Hypervisor", "CLOUDHV.fd"]),
    (KVM_BAD, CH_OK, "cloud-hypervisor", "qemu", "tcg", ["QEMU+TCG", "needs real KVM", "no vmx/svm"]),
    (KVM_OK, CH_NOBIN, "cloud-hypervisor", "qemu", "kvm", ["QEMU+KVM", "not found on PATH"]),
    (KVM_OK, CH_NOFW, "cloud-hypervisor", "qemu", "kvm", ["QEMU+KVM", "firmware"]),
    (KVM_BAD, CH_NOBIN, "cloud-hypervisor", "qemu", "tcg", ["QEMU+TCG", "not found on PATH", "no vmx/svm"]),
    (KVM_OK, CH_OK, "qemu", "qemu", "kvm", ["QEMU+KVM"]),
    (KVM_BAD, CH_OK, "qemu", "qemu", "tcg", ["QEMU+TCG"]),
])
def test_choice_matrix(kvm, ch, prefer, kind, accel, words):
    c = choose_hypervisor(prefer, kvm=kvm, ch=ch)
    assert (c.kind, c.accel) == (kind, accel)
    assert "\n" not in c.reason and c.reason.startswith("using ")
    for w in words:
        assert w in c.reason
    if kind == "cloud-hypervisor":
        assert (c.binary, c.firmware) == CH_OK[:2]


def test_choice_reason_example():
    c = choose_hypervisor(kvm=KVM_BAD, ch=CH_NOBIN)
    assert c.reason == ("using QEMU+TCG: cloud-hypervisor not found on PATH; "
                        "/dev/kvm has no vmx/svm (CPU flags lack hardware virtualisation)")
    c = choose_hypervisor("qemu", kvm=KVM_BAD, why_not_ch="isa-debug-exit needs QEMU")
    assert "isa-debug-exit needs QEMU" in c.reason


def test_bad_prefer():
    with pytest.raises(ValueError):
        choose_hypervisor("bochs", kvm=KVM_BAD, ch=CH_NOBIN)
