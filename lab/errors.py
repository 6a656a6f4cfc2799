"""Typed errors. Every error says what went wrong and where; only the CLI exits.

Exit codes the CLI maps them to (lab/cli.py EXIT_CODES): ScenarioError, ScenarioNotFound,
UsageError -> 2; LabStateError -> 1; everything else (NotRoot, MissingProgram, CommandError,
ApplyError, LabBusy, StateDirError...) -> 3.
"""

from __future__ import annotations

from dataclasses import dataclass


class LabError(Exception):
    """Base class of every error neutron-lab raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario file, with its location."""

    file: str
    line: int
    where: str  # dotted path in the scenario, e.g. "instances.vm1.ip"
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.where}: {self.message}"


class ScenarioError(LabError):
    """A scenario file is invalid. Holds every problem found, not only the first."""

    def __init__(self, problems: list[Problem], stopped_after: int | None = None):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.where, p.message))
        self.stopped_after = stopped_after   # validation stopped at this many problems
        super().__init__(self._text())

    def _text(self) -> str:
        n = len(self.problems)
        head = f"scenario has {n} problem{'s' if n != 1 else ''}:"
        tail = [f"  (stopped after {self.stopped_after} problems)"] if self.stopped_after else []
        return "\n".join([head] + [f"  {p}" for p in self.problems] + tail)


class ScenarioNotFound(LabError):
    pass


class CommandError(LabError):
    """An external program failed. Carries the command line, exit code and output."""

    def __init__(self, argv: list[str], returncode: int | None, stdout: str, stderr: str,
                 netns: str | None = None, reason: str = ""):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.netns = netns
        where = f" in netns {netns}" if netns else ""
        why = reason or f"exited with {returncode}"
        detail = (stderr or stdout).strip()
        if len(detail) > 2000:
            detail = detail[:2000] + " ..."
        super().__init__(f"command{where} {why}: {' '.join(argv)}" + (f"\n{detail}" if detail else ""))


class MissingProgram(LabError):
    pass


class NotRoot(LabError):
    pass


class LabStateError(LabError):
    """The lab is not in the state a command needs (not up, already up, unknown target...)."""


class UsageError(LabError):
    """Bad input on the command line or to the API (a lab name that is no name, ...)."""


class LabBusy(LabError):
    """Another command holds the lab's lock and did not let go within the wait."""

    def __init__(self, message: str, holder_pid: int | None = None):
        self.holder_pid = holder_pid
        super().__init__(message)


class StateDirError(LabError):
    """A lab's state on disk cannot be used as it is (unwritable root, a symlink or a file where
    its directory should be, a corrupt or foreign plan.json): exit status 3, never a traceback."""


class ApplyError(LabError):
    """Bring-up failed at a named step on a named object; the partial lab was removed."""
