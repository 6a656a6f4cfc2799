"""Stand-ins for the programs lab/tools runs, for unit tests without root (imported as
`fakes`). `install_tcpdump` makes gateway.spawn run fake_tcpdump.py, which behaves like
`tcpdump -w -` replaying a pcap from tests/data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
FAKE_TCPDUMP = HERE / "fake_tcpdump.py"
SERVER = "import time; print('listening', flush=True); time.sleep(30)"


def install_tcpdump(monkeypatch, modes: dict[str, tuple[str, str]]) -> list[tuple[list[str], str | None]]:
    """MODES: "netns:iface", "iface" or "*" -> (pcap path or "-", fake_tcpdump mode).
    Returns the (argv, netns) of every tcpdump started."""
    from lab.tools import capture
    calls: list[tuple[list[str], str | None]] = []

    def spawn(argv, *, netns=None, env=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True):
        calls.append((list(argv), netns))
        if argv[0] != "tcpdump":     # the TCP probe's server: says it listens, then waits
            return subprocess.Popen([sys.executable, "-c", SERVER], stdout=stdout, stderr=stderr,
                                    stdin=subprocess.DEVNULL, text=text)
        iface = argv[argv.index("-i") + 1]
        pcap, mode = modes.get(f"{netns}:{iface}", modes.get(iface, modes.get("*", ("-", "normal"))))
        return subprocess.Popen([sys.executable, str(FAKE_TCPDUMP), pcap, mode], stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL, text=text)
    monkeypatch.setattr(capture.gateway, "spawn", spawn)
    monkeypatch.setattr(capture, "LISTEN_TIMEOUT", 1.0)
    monkeypatch.setattr(capture, "STOP_TIMEOUT", 1.0)
    monkeypatch.setattr(capture, "SETTLE_LIMIT", 0.3)
    return calls
