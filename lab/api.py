"""The public Python API of neutron-lab: everything the `lab` command does, as functions that
return typed results and never print. `lab/cli.py` is a thin layer over it (parse arguments,
call one of these, print, choose the exit status); `lab/pytest_plugin.py` builds on it.

    from lab import api
    result = api.up("classic-vlan", name="my-vlan")          # UpResult
    out = api.exec("my-vlan", "vm1", ["ping", "-c1", "192.168.1.12"])
    assert out.ok and "1 received" in out.stdout
    with api.capture("my-vlan", "physnet1", ["icmp"]) as cap:
        api.exec("my-vlan", "vm1", ["ping", "-c1", "192.168.1.12"])
    assert any("vlan 101" in line for line in cap.lines)
    report = api.check("my-vlan")                              # CheckReport
    api.down("my-vlan")

Errors are the typed ones of lab/errors.py (ScenarioError, UsageError, NotRoot, LabBusy...).
docs/api.md documents every function, the JSON schema_version and the exit statuses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from lab.errors import LabError, LabStateError
from lab.paths import check_lab_name

if TYPE_CHECKING:       # imported where used: `lab --help` and `lab list` need no plan
    from lab.core.plan import Plan
    from lab.core.scenario import Check, Scenario

SCHEMA_VERSION = 1      # of every JSON document `lab ... --json` prints (see docs/api.md)
Progress = Callable[[str], None] | None

__all__ = ["SCHEMA_VERSION", "load", "plan", "up", "down", "cleanup", "leftovers", "labs", "state",
           "status", "check", "exec", "target", "capture", "Lab", "LabStatus", "CheckReport",
           "ExecResult", "Capture", "CaptureFailed", "Target"]


def _quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- pure: no root

def load(scenario: str, name: str | None = None) -> Scenario:
    """A validated scenario (built-in name or path), optionally renamed to lab NAME."""
    from lab.core.scenario import load_scenario
    if name is not None:
        check_lab_name(name)
    return load_scenario(scenario, lab_name=name)


def plan(scenario: str, *, name: str | None = None, datapath: str | None = None) -> Plan:
    """What `up` would build (`lab show`). DATAPATH defaults to what this host can do."""
    from lab.core.plan import build_plan
    from lab.runtime.ovs import detect_datapath
    return build_plan(load(scenario, name), datapath=datapath or detect_datapath())


# --------------------------------------------------------------------------- lifecycle

def up(scenario: str, *, name: str | None = None, datapath: str | None = None,
       progress: Progress = None, lock_timeout: float | None = None):
    """Bring a lab up (or find it up and healthy, or repair it): lifecycle.UpResult.
    NAME: the lab's name (default: the scenario's). Holds the lab's lock."""
    from lab.runtime import lifecycle
    return lifecycle.up(scenario, datapath=datapath, progress=progress or _quiet, name=name,
                        lock_timeout=lock_timeout)


@dataclass(frozen=True)
class DownResult:
    lab: str
    elapsed: float


def down(lab: str, *, progress: Progress = None, lock_timeout: float | None = None) -> DownResult:
    """Remove everything lab LAB made. LabStateError if it is not up."""
    from lab.runtime import lifecycle
    return DownResult(lab, lifecycle.down(lab, progress=progress or _quiet, lock_timeout=lock_timeout))


def cleanup(lab: str | None = None, *, progress: Progress = None,
            lock_timeout: float | None = None) -> list[str]:
    """Remove lab LAB whatever its state (half-made, after kill -9); without LAB, every lab
    and stray namespace of ours (see leftovers() first). Returns the labs removed."""
    from lab.runtime import lifecycle
    return lifecycle.cleanup(lab, progress=progress or _quiet, lock_timeout=lock_timeout)


def leftovers():
    """(labs, stray namespaces) that cleanup() without a lab would remove: a list of
    lifecycle.Leftover (lab, up, namespaces, state_dir) and a list of namespace names."""
    from lab.runtime import lifecycle
    return lifecycle.leftovers()


def labs() -> list[str]:
    """Names of the labs that are up."""
    from lab.runtime import lifecycle
    return lifecycle.list_labs()


def state(lab: str):
    """lifecycle.LabState of a lab that is up (its plan, state directory, scenario())."""
    from lab.runtime import lifecycle
    check_lab_name(lab)
    lifecycle.require_root()
    return lifecycle.load_state(lab)


# --------------------------------------------------------------------------- status

@dataclass(frozen=True)
class LabStatus:
    """One lab's health and inventory. `details` is the JSON object `lab status --json` prints."""

    lab: str
    datapath: str
    problems: tuple[str, ...]
    details: dict = field(compare=False, repr=False)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def faults(self) -> tuple[dict, ...]:
        """Each problem as a record (kind, who, netns, what, expected, found, repair, missing,
        unexpected, text: docs/api.md's fault kinds), as `lab status --json` prints them."""
        return tuple(self.details.get("faults", ()))

    def to_json(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, **self.details}


def status(lab: str | None = None) -> list[LabStatus]:
    """Every lab that is up (or only LAB): its problems, nodes, instances, wires..."""
    from lab.runtime import lifecycle
    if lab is not None:
        check_lab_name(lab)
    lifecycle.require_root()   # the nodes' OVSDB sockets are root's
    return [LabStatus(d["lab"], d["datapath"], tuple(d["problems"]), d) for d in lifecycle.status(lab)]


# --------------------------------------------------------------------------- checks

@dataclass
class CheckReport:
    """The checks of a lab: each result (lab.tools.checks.Result) with its duration."""

    lab: str
    results: list
    seconds: list[float]
    elapsed: float

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list:
        return [r for r in self.results if not r.passed]

    def to_json(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "lab": self.lab, "passed": self.passed,
                "elapsed": round(self.elapsed, 3),
                "results": [{**r.to_json(), "seconds": round(s, 3)} for r, s in zip(self.results, self.seconds)]}

    def to_junit(self) -> str:
        from lab import junit
        return junit.from_check_report(self.to_json())


def check(lab: str, *, only: Iterable[str] | None = None, checks: Sequence[Check] | None = None,
          progress: Progress = None) -> CheckReport:
    """Run the lab's scenario checks (ONLY: those names), or the CHECKS given, against the
    live lab. A failed check is a result with passed=False, not an exception."""
    from lab.runtime import gateway
    from lab.tools import checks as checks_mod
    st = state(lab)
    todo = list(checks) if checks is not None else _select(st.scenario().checks, only, lab)
    gateway.require("tcpdump", "ping")
    results, seconds, started = [], [], time.monotonic()
    for c in todo:
        t = time.monotonic()
        r = checks_mod.run_check(st.plan, c)
        seconds.append(time.monotonic() - t)
        results.append(r)
        if progress:
            progress(f"{r.status.upper()}  {c.name}")
    return CheckReport(lab, results, seconds, time.monotonic() - started)


def _select(all_checks: Sequence[Check], only: Iterable[str] | None, lab: str) -> list[Check]:
    if only is None:
        return list(all_checks)
    wanted = list(only)
    names = {c.name for c in all_checks}
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise LabStateError(f"lab {lab} has no check {unknown[0]!r} (its checks: {', '.join(sorted(names))})")
    return [c for c in all_checks if c.name in wanted]


# --------------------------------------------------------------------------- exec

@dataclass(frozen=True)
class Target:
    kind: str                 # instance, node, wire, router, dhcp, external-host
    netns: str
    env: dict[str, str]       # on a node: OVS_RUNDIR and friends, so ovs-* reach its OVS


def target(lab: str, name: str) -> Target:
    """Where TARGET of lab LAB lives (LabStateError naming the targets if it has none)."""
    from lab.runtime import lifecycle
    check_lab_name(lab)
    lifecycle.require_root()
    kind, ns, env = lifecycle.resolve_target(lab, name)
    return Target(kind, ns, env)


@dataclass(frozen=True)
class ExecResult:
    target: str
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def exec(lab: str, target_name: str, argv: Sequence[str], *, timeout: float = 30.0,
         input: str | None = None) -> ExecResult:
    """Run ARGV at a target of the lab (`lab exec`) and return its status and output; a
    non-zero status is a result, not an exception. CommandError on timeout."""
    from lab.runtime import gateway
    if not argv:
        raise LabStateError("nothing to run: give a command (argv list)")
    t = target(lab, target_name)
    proc = gateway.run(list(argv), netns=t.netns, env=t.env, timeout=timeout, check=False, input=input)
    return ExecResult(target_name, tuple(argv), proc.returncode, proc.stdout, proc.stderr)


# --------------------------------------------------------------------------- capture

class CaptureFailed(LabError):
    """tcpdump did not start (a bad filter expression, an unknown interface...)."""


class Capture:
    """tcpdump at a target while a `with` block runs (lab/tools/capture.py's `Tcpdump`, one
    per interface, as `lab capture` does); afterwards `packets` holds the decoded packets of
    every interface by time and `lines` their one-line summaries, each prefixed with [where].
    A wire is watched on every node port, frames entering the wire (each once, labelled with
    its sender)."""

    def __init__(self, points: list[tuple[str, str, str, bool]], expression: Sequence[str]):
        from lab.tools.capture import Tcpdump
        self.caps = [Tcpdump(label, netns, dev, inbound, None, None, tuple(expression))
                     for label, netns, dev, inbound in points]

    def __enter__(self) -> "Capture":
        try:
            for cap in self.caps:
                if not cap.start():
                    raise CaptureFailed(f"capture did not start: {cap.error}")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for cap in self.caps:
            cap.settle()        # the last replies are on their way
        self._stop()

    def _stop(self) -> None:
        for cap in self.caps:
            cap.stop()

    @property
    def packets(self) -> list:
        return sorted((pkt for cap in self.caps for pkt in cap.packets), key=lambda pkt: pkt.ts)

    @property
    def lines(self) -> list[str]:
        from lab.tools.capture import live_line
        return [live_line(pkt, True) for pkt in self.packets]


def capture(lab: str, target_spec: str, expression: Sequence[str] = ()) -> Capture:
    """A Capture at TARGET[:IFACE] of lab LAB with a tcpdump filter EXPRESSION; use it as
    `with api.capture(...) as cap:` and read cap.lines (or cap.packets) after the block."""
    from lab.tools.capture import capture_interfaces
    plan = state(lab).plan
    name, _, iface = target_spec.partition(":")
    targets = plan.targets()
    if name not in targets:
        raise LabStateError(f"lab {plan.lab} has no target {name!r} (its targets: {', '.join(sorted(targets))})")
    return Capture(capture_interfaces(plan, name, iface or None), expression)


# --------------------------------------------------------------------------- a handle

class Lab:
    """A lab by name, with the functions above bound to it (what the pytest fixtures give)."""

    def __init__(self, name: str, scenario: str | None = None):
        self.name = check_lab_name(name)
        self.scenario = scenario

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, scenario={self.scenario!r})"

    @property
    def plan(self) -> Plan:
        return state(self.name).plan

    def exec(self, target_name: str, *argv: str, timeout: float = 30.0, input: str | None = None) -> ExecResult:
        return exec(self.name, target_name, argv, timeout=timeout, input=input)

    def check(self, *only: str, checks: Sequence[Check] | None = None) -> CheckReport:
        return check(self.name, only=only or None, checks=checks)

    def status(self) -> LabStatus:
        return status(self.name)[0]

    def capture(self, target_spec: str, *expression: str) -> Capture:
        return capture(self.name, target_spec, expression)

    def down(self) -> DownResult:
        return down(self.name)
