"""tests/vm/vmrunner.py's pure parts: module order, the initramfs archive, /init, KVM or TCG,
qemu's command line, argument and status handling. (The VM itself runs in tests/vm/suite.)"""

import gzip
import importlib.util
import lzma
import re
import sys
from pathlib import Path

import pytest

VM = Path(__file__).resolve().parents[1] / "vm"
spec = importlib.util.spec_from_file_location("vmrunner", VM / "vmrunner.py")
vmrunner = importlib.util.module_from_spec(spec)
sys.modules["vmrunner"] = vmrunner
spec.loader.exec_module(vmrunner)

DEP = """\
kernel/fs/overlayfs/overlay.ko:
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/fs/netfs/netfs.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_ring.ko
kernel/net/openvswitch/openvswitch.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/net/bridge/br_netfilter.ko:
"""


@pytest.fixture
def modules(tmp_path):
    (tmp_path / "modules.dep").write_text(DEP)
    return tmp_path


def test_load_order_puts_dependencies_first_once(modules):
    order = vmrunner.load_order(vmrunner.read_modules_dep(modules), vmrunner.BOOT_MODULES)
    names = [vmrunner.module_name(m) for m in order]
    assert sorted(names) == sorted(set(names))
    for mod, dep in [("9p", "9pnet"), ("9p", "netfs"), ("9pnet_virtio", "virtio_ring"), ("virtio_pci", "virtio_ring")]:
        assert names.index(dep) < names.index(mod)
    assert "openvswitch" not in names     # loaded later by the guest, not by the initramfs


def test_a_missing_module_is_named(modules):
    with pytest.raises(vmrunner.VmError, match="module missing: nosuch"):
        vmrunner.load_order(vmrunner.read_modules_dep(modules), ("nosuch",))


def test_module_lookup_by_name(modules):
    assert vmrunner.module_path(modules, "br_netfilter") == "kernel/net/bridge/br_netfilter.ko"
    assert vmrunner.module_path(modules, "virtio_pci") == "kernel/drivers/virtio/virtio_pci.ko.xz"
    assert vmrunner.module_path(modules, "nosuch") is None


def test_compressed_modules_are_decompressed(tmp_path):
    elf = b"\x7fELF" + bytes(range(200))
    (tmp_path / "a.ko.xz").write_bytes(lzma.compress(elf))
    (tmp_path / "b.ko.gz").write_bytes(gzip.compress(elf))
    (tmp_path / "c.ko").write_bytes(elf)
    for name in ("a.ko.xz", "b.ko.gz", "c.ko"):
        assert vmrunner.module_bytes(tmp_path / name) == elf


def read_newc(data: bytes) -> dict[str, tuple[int, bytes, int]]:
    """A newc reader independent of the writer: {name: (mode, data, rdev major)}."""
    out, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, namesize = f[1], f[6], f[9], f[11]
        pos += 110
        name = data[pos:pos + namesize - 1].decode()
        pos = (pos + namesize + 3) & ~3
        body = data[pos:pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body, rmaj)


def test_host_dirs_are_hidden_unless_the_guest_needs_them():
    assert vmrunner.hidden_dirs([Path("/work/repo")]) == list(vmrunner.HIDDEN)
    assert "/run" in vmrunner.hidden_dirs([Path("/work/repo")])
    assert "/tmp" not in vmrunner.hidden_dirs([Path("/tmp/ci/clone"), Path("/usr/bin/python3")])
    assert "/tmp" in vmrunner.hidden_dirs([Path("/tmpfoo/clone")])


def test_cpio_is_valid_newc():
    c = vmrunner.Cpio()
    c.dir("bin")
    c.file("bin/busybox", b"x" * 5, 0o755)
    c.symlink("bin/sh", "busybox")
    c.chardev("dev/console", 5, 1)
    c.file("init", b"#!/bin/sh\n", 0o755)
    entries = read_newc(c.finish())
    assert entries["bin"][0] == 0o040755
    assert entries["bin/busybox"] == (0o100755, b"xxxxx", 0)
    assert entries["bin/sh"] == (0o120777, b"busybox", 0)
    assert entries["dev/console"][0] == 0o020600 and entries["dev/console"][2] == 5
    assert entries["init"][1] == b"#!/bin/sh\n"


def test_initramfs_holds_busybox_modules_and_init(modules, tmp_path):
    for mod in vmrunner.read_modules_dep(modules):
        path = modules / mod
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(lzma.compress(b"\x7fELF" + mod.encode()) if mod.endswith(".xz") else b"\x7fELF" + mod.encode())
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"BB")
    kernel = vmrunner.Kernel("6.1.0-test", tmp_path / "vmlinuz", modules)
    entries = read_newc(gzip.decompress(vmrunner.build_initramfs(kernel, busybox, Path("/src/repo"), "/usr/bin/python3")))
    assert entries["modules/virtio_pci.ko"][1] == b"\x7fELFkernel/drivers/virtio/virtio_pci.ko.xz"
    assert "modules/openvswitch.ko" not in entries
    init = entries["init"][1].decode()
    assert not re.search(r"@[A-Z_]+@", init)
    assert "exec switch_root $n /usr/bin/python3 -I /src/repo/tests/vm/guest_init.py" in init
    hide = next(li for li in init.splitlines() if li.startswith("for d in "))
    assert "/run" in hide.split() and ("/tmp" in hide.split()) == (not str(modules).startswith("/tmp/"))
    assert f"mount --bind \"$n{modules}\" $n/lib/modules/6.1.0-test" in init
    # modules are loaded in dependency order
    line = next(li for li in init.splitlines() if li.startswith("for m in "))
    loaded = line.removeprefix("for m in ").removesuffix("; do").split()
    assert loaded.index("virtio_ring.ko") < loaded.index("virtio_pci.ko")


CPU_VMX = "processor : 0\nflags\t\t: fpu vme vmx sse\n"
CPU_NONE = "processor : 0\nflags\t\t: fpu vme sse hypervisor\n"


@pytest.mark.parametrize("dev, cpuinfo, pvm, ok, why", [
    (True, CPU_VMX, False, True, "vmx/svm"),
    (False, CPU_VMX, False, False, "no usable /dev/kvm"),
    (True, CPU_NONE, False, False, "no vmx/svm"),
    (True, CPU_VMX, True, False, "PVM"),
    (True, CPU_NONE.replace("sse", "sse svm"), False, True, "vmx/svm"),
])
def test_kvm_only_where_a_stock_kernel_runs(dev, cpuinfo, pvm, ok, why):
    verdict, reason = vmrunner.kvm_verdict(dev, cpuinfo, pvm)
    assert verdict is ok and why in reason


def test_asking_for_kvm_where_it_cannot_work_is_an_error(monkeypatch):
    monkeypatch.setattr(vmrunner, "kvm_usable", lambda: (False, "/dev/kvm is PVM (kvm_pvm)"))
    with pytest.raises(vmrunner.VmError, match="PVM"):
        vmrunner.pick_accel("kvm")
    assert vmrunner.pick_accel("auto") == "tcg"
    monkeypatch.setattr(vmrunner, "kvm_usable", lambda: (True, "vmx"))
    assert vmrunner.pick_accel("auto") == "kvm"


def test_qemu_has_no_nic_and_a_read_only_root(tmp_path):
    kernel = vmrunner.Kernel("v", Path("/k/vmlinuz"), Path("/k/mods"))
    argv = vmrunner.qemu_argv(kernel, tmp_path / "i.gz", tmp_path, accel="tcg", memory=2048, cpus=2)
    joined = " ".join(argv)
    assert argv[argv.index("-nic") + 1] == "none"
    assert "-nodefaults" in argv and "-no-reboot" in argv
    assert "local,path=/,mount_tag=hostroot" in joined
    root = next(a for a in argv if "mount_tag=hostroot" in a)
    out = next(a for a in argv if "mount_tag=vmout" in a)
    assert "readonly=on" in root and "readonly" not in out and f"path={tmp_path}," in out
    assert argv[argv.index("-accel") + 1].startswith("tcg")
    kvm = vmrunner.qemu_argv(kernel, tmp_path / "i.gz", tmp_path, accel="kvm", memory=2048, cpus=2)
    assert kvm[kvm.index("-accel") + 1] == "kvm"


def test_arguments(tmp_path):
    opts = vmrunner.parse_args(["--out", str(tmp_path), "--env", "A=1=2", "--", "lab", "up", "x"])
    assert opts.argv == ["lab", "up", "x"] and opts.env == {"A": "1=2"} and opts.out == tmp_path
    with pytest.raises(SystemExit):
        vmrunner.parse_args(["--out", str(tmp_path)])            # no command
    with pytest.raises(SystemExit):
        vmrunner.parse_args(["--env", "NOEQUALS", "--", "true"])


def test_status_and_failures(tmp_path):
    (tmp_path / "status").write_text("7\n")
    assert vmrunner.read_status(tmp_path, 0) == 7
    (tmp_path / "status").unlink()
    (tmp_path / "console.log").write_text("boot\nnlab-vm: FAILED: module missing: modprobe openvswitch\n")
    with pytest.raises(vmrunner.VmError, match="(?s)no exit status.*module missing"):
        vmrunner.read_status(tmp_path, 1)
    assert vmrunner.failures(tmp_path / "console.log") == ["nlab-vm: FAILED: module missing: modprobe openvswitch"]


def test_kernel_package_comes_from_the_metapackage(monkeypatch):
    monkeypatch.setattr(vmrunner, "run", lambda argv, **kw: "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n")
    assert vmrunner.kernel_package() == "linux-image-6.1.0-57-amd64"
    monkeypatch.setattr(vmrunner, "run", lambda argv, **kw: "linux-image-amd64\n")
    with pytest.raises(vmrunner.VmError, match="kernel package not found"):
        vmrunner.kernel_package()


# --------------------------------------------------------------------------- kernel_suite.py

spec2 = importlib.util.spec_from_file_location("kernel_suite", VM / "kernel_suite.py")
kernel_suite = importlib.util.module_from_spec(spec2)
sys.modules["kernel_suite"] = kernel_suite
spec2.loader.exec_module(kernel_suite)


def test_suite_reads_check_results_and_the_tcp_time(monkeypatch):
    report = {"lab": "x", "passed": False, "results": [
        {"name": "TCP across hosts, full-size segments", "expected": "reach", "passed": True, "evidence": [],
         "seen": "reached: 1048576 bytes echoed intact, MSS 1398, 0.2159 s"},
        {"name": "different projects", "expected": "blocked", "passed": False, "seen": "reached",
         "evidence": ["FAIL probe packets reach alt-vm1"]}]}
    import json
    monkeypatch.setattr(kernel_suite, "lab", lambda *a, **k: (1, "progress\n" + json.dumps(report), 2.5))
    s = kernel_suite.Scenario("x")
    s.check()
    assert s.checks == {"passed": 1, "failed": 1}
    assert s.tcp_seconds == 0.2159 and s.times["check"] == 2.5
    assert any("different projects" in f and "reach alt-vm1" in f for f in s.failures)
    assert "lab check exited 1" in s.failures


def test_suite_wants_the_kernel_datapath_in_status(monkeypatch):
    monkeypatch.setattr(kernel_suite, "lab", lambda *a, **k: (0, '{"datapath": "netdev", "problems": []}', 1.0))
    s = kernel_suite.Scenario("x")
    s.status()
    assert s.failures == ["lab status says datapath 'netdev', not 'system'"]


def test_suite_finds_the_shipped_scenarios():
    names = kernel_suite.shipped_scenarios()
    assert {"classic-vlan", "classic-vxlan", "classic-gre"} <= set(names)
    assert "include" not in names
