"""The one place that runs external programs.

Every call takes an argv list (never a shell string), has a timeout, and raises CommandError
with the command line, exit code and output when it fails. A command meant for a lab
namespace runs through ``ip netns exec``, which also gives it that namespace's /sys;
``spawn(..., entered=True)`` starts it from this thread inside the namespace instead (no mount
namespace, no /sys: for many short programs that need neither, a thousand DHCP clients).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from lab.budget import budget
from lab.errors import CommandError, LabError, MissingProgram
from lab.runtime import netns as namespaces

DEFAULT_TIMEOUT = 30.0


def in_netns(argv: Sequence[str], netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if not extra:
        return None
    env = dict(os.environ)
    env.update(extra)
    return env


def run(argv: Sequence[str], *, netns: str | None = None, env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT, check: bool = True, input: str | None = None
        ) -> subprocess.CompletedProcess:
    full = in_netns(argv, netns)
    timeout = budget(timeout)      # seconds on a quick machine, scaled for this one
    try:
        proc = subprocess.run(full, input=input, capture_output=True, text=True,
                              timeout=timeout, env=_env(env))
    except subprocess.TimeoutExpired as exc:
        raise CommandError(full, None, _text(exc.stdout), _text(exc.stderr), netns,
                           reason=f"timed out after {timeout:g}s") from None
    except FileNotFoundError:
        raise MissingProgram(f"program not found: {full[0]} (needed for: {' '.join(full)})") from None
    if check and proc.returncode != 0:
        raise CommandError(full, proc.returncode, proc.stdout, proc.stderr, netns)
    return proc


@dataclass(frozen=True)
class Command:
    """One command for `run_together`: as `run` takes it."""

    argv: Sequence[str]
    netns: str | None = None
    env: Mapping[str, str] | None = None


def run_together(commands: Sequence[Command], timeout: float = DEFAULT_TIMEOUT
                 ) -> list[subprocess.CompletedProcess | LabError]:
    """Start every command at once, then wait for each (one TIMEOUT for all, like `run`'s):
    for each, in order, its completed process or the error `run` would have raised. Nothing is
    raised for one command's failure: every command is waited for (or killed at the deadline)
    and the caller decides. For starters of daemons that return once the daemon is ready."""
    seconds = budget(timeout)
    deadline = time.monotonic() + seconds
    started = [_start(c) for c in commands]
    return [_finish(s, c.netns, deadline, seconds) for s, c in zip(started, commands)]


def _start(c: Command) -> tuple[list[str], subprocess.Popen | LabError]:
    full = in_netns(c.argv, c.netns)
    try:
        return full, subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=_env(c.env))
    except FileNotFoundError:
        return full, MissingProgram(f"program not found: {full[0]} (needed for: {' '.join(full)})")
    except OSError as exc:
        return full, CommandError(full, None, "", str(exc), c.netns, reason="could not be started")


def _finish(started: tuple[list[str], subprocess.Popen | LabError], netns: str | None,
            deadline: float, seconds: float) -> subprocess.CompletedProcess | LabError:
    full, proc = started
    if isinstance(proc, LabError):
        return proc
    try:
        out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as exc:    # as `run` does: killed, reaped, its pipes closed
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        return CommandError(full, None, _text(exc.stdout), _text(exc.stderr), netns,
                            reason=f"timed out after {seconds:g}s")
    if proc.returncode != 0:
        return CommandError(full, proc.returncode, out, err, netns)
    return subprocess.CompletedProcess(full, proc.returncode, out, err)


def spawn(argv: Sequence[str], *, netns: str | None = None, env: Mapping[str, str] | None = None,
          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text: bool = True,
          entered: bool = False) -> subprocess.Popen:
    """Start a program in the background (captures, probe servers). The caller ends it.
    TEXT=False gives byte pipes (tcpdump writing a pcap stream to stdout). ENTERED: the child
    is started from this thread inside NETNS (setns) and inherits it, without `ip netns exec`
    and the mount namespace and /sys it makes (about 1 ms of CPU each)."""
    full = list(argv) if entered else in_netns(argv, netns)
    inside = namespaces.entered(netns) if entered and netns else contextlib.nullcontext()
    try:
        with inside:
            return subprocess.Popen(full, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                    text=text, env=_env(env))
    except FileNotFoundError:
        raise MissingProgram(f"program not found: {full[0]} (needed for: {' '.join(full)})") from None


def exec_replace(argv: Sequence[str], *, netns: str | None = None,
                 env: Mapping[str, str] | None = None) -> None:
    """Replace this process with the command (lab exec): the user's terminal goes to it."""
    full = in_netns(argv, netns)
    os.execvpe(full[0], full, _env(env) or dict(os.environ))


def require(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        raise MissingProgram("missing programs: " + ", ".join(missing)
                             + " (install them with the README's set-up command)")


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
