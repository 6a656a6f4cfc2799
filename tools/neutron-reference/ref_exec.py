"""Intercept Neutron's command execution: record what would run, run nothing that changes state.

Neutron's agents run iptables-save/-restore, ipset, sysctl and friends through
``neutron.agent.linux.utils.execute``. The reference replaces it (and the alias in
``neutron.agent.common.utils``) with a recorder: ``*-save`` answers empty (a fresh namespace),
``iptables --version`` answers with this host's real iptables version (it decides
``--random-fully``), every other command is recorded with its stdin and answers "".
"""

from __future__ import annotations

import subprocess


class Recorder:
    def __init__(self):
        self.calls: list[tuple[list[str], str | None]] = []
        self._iptables_version = subprocess.run(
            ["iptables", "--version"], capture_output=True, text=True, timeout=10).stdout

    def execute(self, cmd, process_input=None, addl_env=None, check_exit_code=True,
                return_stderr=False, log_fail_as_error=True, extra_ok_codes=None,
                run_as_root=False, privsep_exec=False, **_kw):
        cmd = [str(c) for c in cmd]
        out = ""
        if len(cmd) >= 2 and cmd[-1] == "--version" and cmd[-2].startswith(("iptables", "ip6tables")):
            out = self._iptables_version
        elif not any(c.endswith("-save") for c in cmd):
            self.calls.append((cmd, process_input))
        return (out, "") if return_stderr else out

    def inputs_of(self, program: str) -> list[tuple[list[str], str]]:
        """(argv, stdin) of every recorded call of PROGRAM (e.g. iptables-restore)."""
        return [(c, i or "") for c, i in self.calls if program in c]


def install() -> Recorder:
    from neutron.agent.common import utils as common_utils
    from neutron.agent.linux import utils as linux_utils
    rec = Recorder()
    linux_utils.execute = rec.execute
    common_utils.execute = rec.execute
    return rec
