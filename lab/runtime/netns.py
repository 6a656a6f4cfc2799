"""Network namespaces: create, enter (per thread), delete, list. No processes spawned.

Namespaces are made the way ``ip netns add`` makes them (a bind mount of the namespace file
on /run/netns/NAME), but from a short-lived thread that unshares itself, so making hundreds
costs no fork. ``entered(name)`` moves only the calling thread into a namespace: a pyroute2
socket or an ioctl socket opened there belongs to that namespace, and the rest of the program
is not affected. Only names starting with naming.NETNS_PREFIX are ever created or deleted.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from lab.errors import LabError
from lab.core.naming import NETNS_PREFIX

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_dir_lock = threading.Lock()
# the namespace this program started in: never written to (see write_sysctl)
_st = os.stat("/proc/self/ns/net")
_HOST_NETNS = (_st.st_dev, _st.st_ino)
_dir_ready = False


class NetnsError(LabError):
    pass


def _check_ours(name: str) -> None:
    if not name.startswith(NETNS_PREFIX) or "/" in name:
        raise NetnsError(f"refusing to touch namespace {name!r}: not made by neutron-lab")


def path(name: str) -> Path:
    return NETNS_DIR / name


def _prepare_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does before its first namespace."""
    global _dir_ready
    with _dir_lock:
        if _dir_ready:
            return
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        target = str(NETNS_DIR).encode()
        if _libc.mount(b"", target, b"none", MS_SHARED | MS_REC, None) != 0:
            if _libc.mount(target, target, b"none", MS_BIND | MS_REC, None) != 0:
                err = ctypes.get_errno()
                raise NetnsError(f"cannot bind-mount {NETNS_DIR}: {os.strerror(err)}")
            if _libc.mount(b"", target, b"none", MS_SHARED | MS_REC, None) != 0:
                err = ctypes.get_errno()
                raise NetnsError(f"cannot make {NETNS_DIR} shared: {os.strerror(err)}")
        _dir_ready = True


def create(name: str) -> None:
    """Create namespace NAME; raise if it already exists."""
    _check_ours(name)
    _prepare_dir()
    p = path(name)
    try:
        os.close(os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    except FileExistsError:
        raise NetnsError(f"namespace {name} already exists") from None
    failure: list[str] = []

    def unshare_and_bind() -> None:
        # This thread gets a new network namespace; the bind mount keeps it alive after the
        # thread ends. The rest of the process stays where it was.
        if _libc.unshare(CLONE_NEWNET) != 0:
            failure.append(f"unshare: {os.strerror(ctypes.get_errno())}")
            return
        src = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
        if _libc.mount(src, str(p).encode(), b"none", MS_BIND, None) != 0:
            failure.append(f"bind mount: {os.strerror(ctypes.get_errno())}")

    t = threading.Thread(target=unshare_and_bind, name=f"netns-create-{name}")
    t.start()
    t.join()
    if failure:
        try:
            p.unlink()
        except OSError:
            pass
        raise NetnsError(f"cannot create namespace {name}: {failure[0]}")


def create_many(names: list[str], made: Callable[[str], None],
                prepare: Callable[[str], None] | None = None) -> None:
    """Create namespaces NAMES (each must not exist) from one short-lived thread that
    unshares once per namespace: no fork and no thread per namespace. MADE(name) runs as
    soon as one exists (before the next is made: the ledger), PREPARE(name) right after,
    inside it, in that thread (sysctls, lo up). A failure or an interrupt stops the thread
    before the next namespace; what exists by then was handed to MADE."""
    for name in names:
        _check_ours(name)
    _prepare_dir()
    failure: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            for name in names:
                if stop.is_set():
                    return
                _unshare_into(name)
                made(name)
                if prepare is not None:
                    prepare(name)
        except BaseException as exc:   # handed to the caller's thread
            failure.append(exc)

    t = threading.Thread(target=work, name="netns-create")
    t.start()
    try:
        t.join()
    except BaseException:
        stop.set()
        t.join()
        raise
    if failure:
        raise failure[0]


def _unshare_into(name: str) -> None:
    """Move the calling thread into a new network namespace, bound at /run/netns/NAME."""
    p = path(name)
    try:
        os.close(os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
    except FileExistsError:
        raise NetnsError(f"namespace {name} already exists") from None
    if _libc.unshare(CLONE_NEWNET) != 0:
        why = f"unshare: {os.strerror(ctypes.get_errno())}"
    elif _libc.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net".encode(),
                     str(p).encode(), b"none", MS_BIND, None) != 0:
        why = f"bind mount: {os.strerror(ctypes.get_errno())}"
    else:
        return
    try:
        p.unlink()
    except OSError:
        pass
    raise NetnsError(f"cannot create namespace {name}: {why}")


def delete(name: str) -> bool:
    """Delete namespace NAME. Returns False when it was already gone."""
    _check_ours(name)
    p = path(name)
    if not p.exists():
        return False
    if _libc.umount2(str(p).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise NetnsError(f"cannot unmount {p}: {os.strerror(err)}")
    try:
        p.unlink()
    except FileNotFoundError:
        return False
    return True


def exists(name: str) -> bool:
    return path(name).exists()


def list_ours() -> list[str]:
    """Every namespace that carries our prefix, whatever lab made it."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(NETNS_PREFIX))


def inode(name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path(name))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


@contextmanager
def entered(name: str):
    """Run the body with the calling thread inside namespace NAME, then come back."""
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        try:
            target = os.open(path(name), os.O_RDONLY)
        except FileNotFoundError:
            raise NetnsError(f"namespace {name} does not exist") from None
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise NetnsError(f"cannot enter namespace {name}: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:  # pragma: no cover - would be a kernel bug
                raise NetnsError(f"cannot return from namespace {name}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(own)


def write_sysctl(key: str, value: str) -> None:
    """Write a net.* sysctl of the namespace the calling thread is in (see entered())."""
    if not key.startswith("net."):
        raise NetnsError(f"only per-namespace net.* sysctls may be written, not {key}")
    here = os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net")
    if (here.st_dev, here.st_ino) == _HOST_NETNS:
        raise NetnsError(f"refusing to write {key} in the host's network namespace")
    try:
        Path("/proc/sys", *key.split(".")).write_text(value)
    except OSError as exc:
        raise NetnsError(f"cannot set {key}={value} in a lab namespace: {exc.strerror}") from None
