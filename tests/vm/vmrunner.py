#!/usr/bin/env python3
"""Run one command as root in a QEMU VM that boots Debian's own kernel (which has openvswitch.ko),
so the lab can be proved on Open vSwitch's kernel datapath on a host that has no OVS module.

Everything comes from Debian packages: qemu-system-x86 (installed by ``run-in-vm``), and the
``linux-image-*`` and ``busybox-static`` packages, fetched with ``apt-get download`` and unpacked
with ``dpkg-deb -x`` into a cache directory (never installed on the host). The guest:

- boots a tiny initramfs (busybox-static and the few modules that 9p and overlayfs need,
  decompressed here when the package ships them compressed);
- sees the host's root filesystem read-only over 9p under a tmpfs overlay (so the installed
  packages, the project and its .venv are there) and writes only to one output directory,
  shared read-write at /vm-out;
- has no network card (``-nic none``);
- runs ``guest_init.py`` as PID 1: it loads openvswitch and br_netfilter, runs the command,
  reaps every orphan, writes the exit status to /vm-out/status and powers off.

Standard library only: it runs with the host's python3 before anything else is installed.
Exit status: the command's, or 3 with one line saying which step failed (package, module,
boot timeout, run timeout, no status).
"""

from __future__ import annotations

import argparse
import codecs
import gzip
import io
import json
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_CACHE = Path(os.environ.get("LAB_VM_CACHE", "/var/cache/neutron-lab-vm"))
KERNEL_META = "linux-image-amd64"
# what the initramfs must load before it can mount the host's root (with their dependencies)
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
READY_MARK = "nlab-vm: command starting"
STATUS_FILE = "status"
EXIT_SETUP = 3


class VmError(Exception):
    """A step of the runner failed; the message says which and why."""


# --------------------------------------------------------------------------- packages

def run(argv: list[str], *, cwd: Path | None = None, timeout: float = 600) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise VmError(f"program not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise VmError(f"timed out after {timeout:g}s: {' '.join(argv)}") from None
    if proc.returncode != 0:
        raise VmError(f"failed ({proc.returncode}): {' '.join(argv)}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def kernel_package(meta: str = KERNEL_META) -> str:
    """The linux-image-<version> package the metapackage points at."""
    out = run(["apt-cache", "depends", meta])
    for line in out.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
        if m:
            return m.group(1)
    raise VmError(f"kernel package not found: `apt-cache depends {meta}` names no linux-image "
                  "(run `apt-get update` first)")


def download(package: str, debs: Path) -> Path:
    """The package's .deb in DEBS, downloaded with `apt-get download` unless it is there."""
    debs.mkdir(parents=True, exist_ok=True)
    name = package.split("=")[0]
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        try:
            run(["apt-get", "download", package], cwd=debs)
        except VmError as exc:
            raise VmError(f"package not found: {package} ({exc})") from None
        found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        raise VmError(f"package not found: apt-get download {package} left no .deb in {debs}")
    return found[-1]


def extract(deb: Path, dest: Path) -> Path:
    """dpkg-deb -x DEB DEST once (a marker file says it is complete)."""
    done = dest / ".extracted"
    if done.exists() and done.read_text() == deb.name:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    run(["dpkg-deb", "-x", str(deb), str(dest)])
    done.write_text(deb.name)
    return dest


@dataclass
class Kernel:
    version: str
    vmlinuz: Path
    modules: Path          # .../lib/modules/<version>


def prepare_kernel(cache: Path, package: str | None = None) -> Kernel:
    package = package or kernel_package()
    try:
        deb = download(package, cache / "debs")
    except VmError as exc:
        raise VmError(f"kernel {exc}") from None
    root = extract(deb, cache / "kernel")
    images = sorted((root / "boot").glob("vmlinuz-*"))
    if not images:
        raise VmError(f"no vmlinuz-* in {package} (unpacked in {root})")
    version = images[-1].name.removeprefix("vmlinuz-")
    modules = root / "lib" / "modules" / version
    if not (modules / "modules.dep").exists():
        # the package leaves modules.dep to its postinst; make it in the cache, not the host
        run(["depmod", "-b", str(root), version])
    for name in ("openvswitch", "br_netfilter", "ip_set", "ip_set_hash_net", "xt_set"):
        if not module_path(modules, name):
            raise VmError(f"module missing: {name}.ko is not in {package}")
    return Kernel(version, images[-1], modules)


def prepare_busybox(cache: Path) -> Path:
    root = extract(download("busybox-static", cache / "debs"), cache / "busybox-static")
    for candidate in ("bin/busybox", "usr/bin/busybox"):
        if (root / candidate).exists():
            return root / candidate
    raise VmError(f"busybox-static unpacked in {root} has no bin/busybox")


# --------------------------------------------------------------------------- modules

def read_modules_dep(modules: Path) -> dict[str, list[str]]:
    """modules.dep as {relative path: [dependency paths]}."""
    deps: dict[str, list[str]] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        if ":" in line:
            mod, rest = line.split(":", 1)
            deps[mod] = rest.split()
    return deps


def module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base).replace("-", "_")


def module_path(modules: Path, name: str) -> str | None:
    want = name.replace("-", "_")
    for mod in read_modules_dep(modules):
        if module_name(mod) == want:
            return mod
    return None


def load_order(deps: dict[str, list[str]], names: tuple[str, ...]) -> list[str]:
    """Module paths to insmod, dependencies first, each once."""
    by_name = {module_name(m): m for m in deps}
    order: list[str] = []

    def visit(mod: str, stack: tuple[str, ...]) -> None:
        if mod in order:
            return
        if mod in stack:
            raise VmError(f"module dependency cycle: {' -> '.join(stack + (mod,))}")
        for dep in deps.get(mod, []):
            visit(dep, stack + (mod,))
        order.append(mod)

    for name in names:
        mod = by_name.get(name.replace("-", "_"))
        if mod is None:
            raise VmError(f"module missing: {name} is not in modules.dep")
        visit(mod, ())
    return order


def module_bytes(path: Path) -> bytes:
    """A module's ELF, decompressed (busybox insmod reads plain .ko files only)."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data


# --------------------------------------------------------------------------- initramfs

@dataclass
class Cpio:
    """A newc cpio archive (what the kernel unpacks as an initramfs), built in memory."""
    buf: io.BytesIO = field(default_factory=io.BytesIO)
    ino: int = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.buf.write(name.encode() + b"\0")
        self._pad()
        self.buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


# the host's directories the guest gets an empty tmpfs of its own on (labs' state, namespaces,
# locks and sockets of the host stay out of sight)...
HIDDEN = ("/run", "/tmp", "/var/tmp", "/mnt", "/media")


def hidden_dirs(keep: list[Path]) -> list[str]:
    """...except one that holds something the guest needs (a checkout under /tmp, say): that
    one stays visible, writable through the overlay."""
    return [d for d in HIDDEN if not any(str(k) == d or str(k).startswith(d + "/") for k in keep)]


def stage1_script(kernel: Kernel, modules: list[str], repo: Path, python: str, keep: list[Path] = ()) -> str:
    """/init of the initramfs: mount the host's root read-only under a tmpfs overlay, share the
    kernel's modules and the output directory, then hand over to guest_init.py as PID 1."""
    template = (HERE / "stage1.sh").read_text()
    keep = [repo, Path(python), kernel.modules, *keep]
    return (template.replace("@MODULES@", " ".join(m.rsplit("/", 1)[-1].split(".ko")[0] + ".ko" for m in modules))
            .replace("@HIDDEN@", " ".join(hidden_dirs(keep)))
            .replace("@KMODULES@", str(kernel.modules))
            .replace("@KVER@", kernel.version)
            .replace("@PYTHON@", python)
            .replace("@GUEST_INIT@", str(repo / "tests" / "vm" / "guest_init.py")))


def build_initramfs(kernel: Kernel, busybox: Path, repo: Path, python: str, keep: list[Path] = ()) -> bytes:
    deps = read_modules_dep(kernel.modules)
    order = load_order(deps, BOOT_MODULES)
    cpio = Cpio()
    for d in ("bin", "dev", "proc", "sys", "modules", "lower", "rw", "newroot"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    for mod in order:
        name = mod.rsplit("/", 1)[-1].split(".ko")[0] + ".ko"
        cpio.file(f"modules/{name}", module_bytes(kernel.modules / mod))
    cpio.file("init", stage1_script(kernel, order, repo, python, keep).encode(), 0o755)
    return gzip.compress(cpio.finish(), compresslevel=1)


# --------------------------------------------------------------------------- qemu

def kvm_verdict(dev_kvm: bool, cpuinfo: str, pvm: bool) -> tuple[bool, str]:
    """KVM only where /dev/kvm can run a stock kernel: VMX or SVM in the CPU flags and not the
    PVM flavour (kvm_pvm), under which a stock Debian kernel hangs."""
    if not dev_kvm:
        return False, "no usable /dev/kvm"
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    if not flags & {"vmx", "svm"}:
        return False, "no vmx/svm CPU flag"
    if pvm:
        return False, "/dev/kvm is PVM (kvm_pvm)"
    return True, "vmx/svm and /dev/kvm"


def kvm_usable() -> tuple[bool, str]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    pvm = Path("/sys/module/kvm_pvm").exists() or "kvm_pvm " in _read("/proc/modules")
    return kvm_verdict(os.access("/dev/kvm", os.R_OK | os.W_OK), cpuinfo, pvm)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def qemu_argv(kernel: Kernel, initrd: Path, out: Path, *, accel: str, memory: int, cpus: int) -> list[str]:
    share = "security_model=none,multidevs=remap"
    argv = ["qemu-system-x86_64", "-accel", "kvm" if accel == "kvm" else "tcg,thread=multi",
            "-m", str(memory), "-smp", str(cpus), "-nodefaults", "-no-reboot", "-nographic",
            "-nic", "none", "-serial", "stdio", "-monitor", "none",
            "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd),
            "-append", "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init",
            "-virtfs", f"local,path=/,mount_tag=hostroot,{share},readonly=on",
            "-virtfs", f"local,path={out},mount_tag=vmout,{share}"]
    if accel == "kvm":
        argv[1:1] = ["-cpu", "host"]
    return argv


@dataclass
class Options:
    argv: list[str]
    out: Path
    cwd: Path
    env: dict[str, str]
    accel: str = "auto"
    memory: int = 3072
    cpus: int = 2
    boot_timeout: float = 600
    timeout: float = 3600
    cache: Path = DEFAULT_CACHE
    kernel_package: str | None = None
    nice: int = 10
    quiet: bool = False


def pick_accel(asked: str) -> str:
    ok, why = kvm_usable()
    if asked == "kvm" and not ok:
        raise VmError(f"--accel kvm asked for, but KVM cannot run a stock kernel here: {why}")
    if asked == "auto":
        return "kvm" if ok else "tcg"
    return asked


def prepare(opts: Options) -> tuple[list[str], str]:
    """Everything up to the qemu command line; returns it and the accelerator."""
    if shutil.which("qemu-system-x86_64") is None:
        raise VmError("program not found: qemu-system-x86_64 (tests/vm/run-in-vm installs qemu-system-x86)")
    kernel = prepare_kernel(opts.cache, opts.kernel_package)
    busybox = prepare_busybox(opts.cache)
    accel = pick_accel(opts.accel)
    opts.out.mkdir(parents=True, exist_ok=True)
    for stale in (STATUS_FILE, "job.json", "console.log", "ps.txt", "results.json"):
        (opts.out / stale).unlink(missing_ok=True)
    python = shutil.which("python3") or "/usr/bin/python3"
    initrd = opts.out / "initramfs.gz"
    keep = [opts.cwd] + [Path(a) for a in opts.argv[:1] if a.startswith("/")]
    initrd.write_bytes(build_initramfs(kernel, busybox, REPO, os.path.realpath(python), keep))
    job = {"argv": opts.argv, "cwd": str(opts.cwd), "env": opts.env, "accel": accel}
    (opts.out / "job.json").write_text(json.dumps(job, indent=1))
    argv = qemu_argv(kernel, initrd, opts.out, accel=accel, memory=opts.memory, cpus=opts.cpus)
    if opts.nice:
        argv = ["nice", "-n", str(opts.nice), *argv]
    return argv, accel


def watch(proc: subprocess.Popen, log: Path, quiet: bool, ready: threading.Event) -> None:
    """Copy the serial console to LOG (and stdout) as it comes, not line by line: pytest's
    progress dots have no newline."""
    seen, decoder = "", codecs.getincrementaldecoder("utf-8")(errors="replace")
    with log.open("w") as f:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            text = decoder.decode(chunk).replace("\r", "")
            f.write(text)
            f.flush()
            if not ready.is_set():
                seen = (seen + text)[-4096:]
                if READY_MARK in seen:
                    ready.set()
            if not quiet:
                sys.stdout.write(text)
                sys.stdout.flush()


def boot_and_wait(argv: list[str], opts: Options) -> int:
    """Run qemu; bound the boot and the whole run; return the guest command's exit status."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    ready = threading.Event()
    reader = threading.Thread(target=watch, args=(proc, opts.out / "console.log", opts.quiet, ready), daemon=True)
    reader.start()
    try:
        if not _wait_ready(proc, ready, opts.boot_timeout):
            if proc.poll() is None:
                raise VmError(f"boot timeout: the guest did not start the command within "
                              f"{opts.boot_timeout:g}s (console: {opts.out / 'console.log'})")
        left = opts.timeout - (time.monotonic() - started)
        try:
            proc.wait(timeout=max(1.0, left))
        except subprocess.TimeoutExpired:
            raise VmError(f"run timeout: the VM was still running after {opts.timeout:g}s "
                          f"(console: {opts.out / 'console.log'}); its processes then:\n"
                          + _read(str(opts.out / "ps.txt"))) from None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)   # our own qemu, by its Popen handle
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)
    return read_status(opts.out, proc.returncode)


def _wait_ready(proc: subprocess.Popen, ready: threading.Event, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.wait(timeout=1.0) or proc.poll() is not None:
            return ready.is_set()
    return False


def read_status(out: Path, qemu_rc: int | None) -> int:
    status = out / STATUS_FILE
    try:
        return int(status.read_text().strip())
    except (OSError, ValueError):
        tail = ""
        try:
            tail = "".join((out / "console.log").read_text(errors="replace").splitlines(True)[-15:])
        except OSError:
            pass
        raise VmError(f"the guest reported no exit status (qemu exited {qemu_rc}); "
                      f"console: {out / 'console.log'}; last lines:\n{tail}") from None


def failures(console: Path) -> list[str]:
    """The guest's own 'FAILED:' lines (a module that would not load, a mount that failed)."""
    try:
        text = console.read_text(errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.startswith("nlab-vm: FAILED:")]


def parse_args(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(prog="run-in-vm", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / ".vm-out",
                   help="output directory, the only one the guest can write (default .vm-out)")
    p.add_argument("--cwd", type=Path, default=Path.cwd(), help="the command's directory in the guest")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="environment for the command (LAB_TIME_SCALE is measured in the guest unless given)")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    p.add_argument("--memory", type=int, default=3072, help="MiB")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--boot-timeout", type=float, default=600, help="seconds until the command starts")
    p.add_argument("--timeout", type=float, default=3600, help="seconds for the whole run")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where packages are unpacked")
    p.add_argument("--kernel-package", help="linux-image-<version> (default: what linux-image-amd64 names)")
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--quiet", action="store_true", help="console only in OUT/console.log")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("no command given: run-in-vm [options] -- COMMAND [ARGS...]")
    env = {}
    for item in a.env:
        if "=" not in item:
            p.error(f"--env {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        env[k] = v
    return Options(argv=command, out=a.out.resolve(), cwd=a.cwd.resolve(), env=env, accel=a.accel,
                   memory=a.memory, cpus=a.cpus, boot_timeout=a.boot_timeout, timeout=a.timeout,
                   cache=a.cache.resolve(), kernel_package=a.kernel_package, nice=a.nice, quiet=a.quiet)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("run-in-vm: run as root (it uses apt-get and shares / with the guest)", file=sys.stderr)
        return EXIT_SETUP
    try:
        qemu, accel = prepare(opts)
        print(f"run-in-vm: {accel.upper()}, {opts.cpus} CPUs, {opts.memory} MiB; console in "
              f"{opts.out / 'console.log'}", file=sys.stderr, flush=True)
        started = time.monotonic()
        rc = boot_and_wait(qemu, opts)
        for line in failures(opts.out / "console.log"):
            print(f"run-in-vm: guest said: {line}", file=sys.stderr)
        print(f"run-in-vm: exit status {rc} after {time.monotonic() - started:.0f} s", file=sys.stderr)
        return rc
    except VmError as exc:
        print(f"run-in-vm: {exc}", file=sys.stderr)
        return EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main())
