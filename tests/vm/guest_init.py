"""PID 1 of the VM (after the initramfs's stage1.sh): load the kernel modules the lab needs, run
the job's command, reap every process that ends (orphans are re-parented to PID 1, and a dead
daemon that nobody reaps stays a zombie that still answers kill(pid, 0)), write the command's
exit status to /vm-out/status and power off. Runs with the host's python3 (standard library
only) from the host's root, read-only under a tmpfs overlay.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

OUT = Path("/vm-out")
READY_MARK = "nlab-vm: command starting"   # vmrunner.py waits for this line (boot timeout)
# tun: /dev/net/tun, which the userspace datapath's bridges need (devtmpfs makes the node
# only once the module is in; no udev or kmod static-nodes here); ip_set, its hash:net type and
# iptables' set match: the remote groups' ipsets (enable_ipset), loaded up front rather than
# left to the kernel's on-demand loading
MODULES = ("openvswitch", "br_netfilter", "tun", "ip_set", "ip_set_hash_net", "xt_set")
EXIT_SETUP = 3
RB_POWER_OFF = 0x4321FEDC
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "PYTHONUNBUFFERED": "1"}


def say(text: str) -> None:
    print(f"nlab-vm: {text} ({uptime():.1f} s)", flush=True)


def uptime() -> float:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def setup() -> None:
    """The guest's loopback, hostname and kernel modules; raises RuntimeError naming the step."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    Path("/proc/sys/kernel/hostname").write_text("nlab-vm\n")
    for module in MODULES:
        proc = subprocess.run(["modprobe", module], capture_output=True, text=True)
        if proc.returncode != 0 or not Path(f"/sys/module/{module}").exists():
            raise RuntimeError(f"module missing: modprobe {module} failed: {proc.stderr.strip()}")
    say("modules loaded: " + ", ".join(MODULES))


def job_env(job: dict, repo: Path) -> dict[str, str]:
    env = dict(BASE_ENV)
    env.update(job.get("env", {}))
    if "LAB_TIME_SCALE" not in env:
        env["LAB_TIME_SCALE"] = str(measured_scale(repo))
    return env


def measured_scale(repo: Path) -> float:
    sys.path.insert(0, str(repo))
    from lab import budget
    scale = budget.measure()
    say(f"LAB_TIME_SCALE={scale} (measured: this guest runs Python {scale}x slower than the reference)")
    return scale


def snapshot_processes(every: float = 20.0) -> None:
    """Every EVERY seconds, the guest's processes to /vm-out/ps.txt: what a hung run was doing
    (the runner prints it on a run timeout)."""
    while True:
        lines = [f"uptime {uptime():.0f} s"]
        for proc in sorted(Path("/proc").glob("[0-9]*"), key=lambda p: int(p.name)):
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                state = (proc / "stat").read_text().rsplit(") ", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if cmd:
                lines.append(f"{proc.name:>6} {state} {cmd[:300]}")
        try:
            (OUT / "ps.tmp").write_text("\n".join(lines) + "\n")
            os.replace(OUT / "ps.tmp", OUT / "ps.txt")
        except OSError:
            pass
        time.sleep(every)


def run_and_reap(argv: list[str], cwd: str, env: dict[str, str]) -> int:
    """Run the command; reap every child of PID 1 until the command itself has ended."""
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 127
        except InterruptedError:
            continue
        if pid == child.pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return child.returncode if child.returncode >= 0 else 128 - child.returncode


def reap_rest(seconds: float = 5.0) -> None:
    """Let what the command left behind end (SIGTERM), reaping it, before the power goes."""
    try:
        os.kill(-1, 15)
    except OSError:
        pass
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.1)


def write_status(rc: int) -> None:
    with open(OUT / "status", "w") as f:
        f.write(f"{rc}\n")
        f.flush()
        os.fsync(f.fileno())


def power_off() -> None:
    os.sync()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.reboot(RB_POWER_OFF)
    time.sleep(60)   # reboot() does not return when it works


def main() -> None:
    rc = EXIT_SETUP
    os.environ.update(BASE_ENV)
    try:
        repo = Path(__file__).resolve().parent.parent.parent
        job = json.loads((OUT / "job.json").read_text())
        say(f"guest init, kernel {os.uname().release}")
        setup()
        env = job_env(job, repo)
        threading.Thread(target=snapshot_processes, daemon=True).start()
        say(f"{READY_MARK.removeprefix('nlab-vm: ')}: {' '.join(job['argv'])}")
        rc = run_and_reap(job["argv"], job.get("cwd") or str(repo), env)
        say(f"command exited {rc}")
    except Exception as exc:  # PID 1 must never die: say why, hand back a status, power off
        print(f"nlab-vm: FAILED: {exc}", flush=True)
    finally:
        try:
            reap_rest()
            write_status(rc)
        finally:
            power_off()


if __name__ == "__main__":
    main()
