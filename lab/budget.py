"""Time budgets: every wait in the lab (DHCP leases, OVSDB answers, daemons starting and
stopping, captures and probe servers starting) is a budget in seconds on a quick machine,
times one scale factor for how slow this machine is.

The factor is ``LAB_TIME_SCALE``: a number (``1`` by default; ``20`` means "waits may last 20
times longer"), or ``auto``, which measures it once per process with a short CPU-bound loop
compared against a quick machine (``python -m lab.budget`` prints the measurement). The VM runner
(tests/vm/) measures it in the guest, where QEMU's software CPU is 50-80x slower than native.
A budget is a limit, not a sleep: a fast answer ends the wait at once, so a large factor costs
time only when something is really broken.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

from lab.errors import LabError

ENV = "LAB_TIME_SCALE"
MAX_SCALE = 200.0
# seconds that REFERENCE_LOOPS iterations of _spin() take on a quick machine (measured on the
# project's 2-core CI machine, CPython 3.11, idle: 0.018-0.023 s)
REFERENCE_SECONDS = 0.02
REFERENCE_LOOPS = 400_000


class BudgetError(LabError, ValueError):
    """LAB_TIME_SCALE is not a number from 1 to MAX_SCALE, nor 'auto'."""


def parse_scale(value: str | None) -> float | None:
    """The factor LAB_TIME_SCALE asks for; None for 'auto' (measure). Clear error otherwise."""
    if value is None or value.strip() == "":
        return 1.0
    if value.strip().lower() == "auto":
        return None
    try:
        scale = float(value)
    except ValueError:
        raise BudgetError(f"{ENV}={value!r}: expected a number >= 1 or 'auto'") from None
    if not 1.0 <= scale <= MAX_SCALE:
        raise BudgetError(f"{ENV}={value!r}: expected a number from 1 to {MAX_SCALE:g}, or 'auto'")
    return scale


def _spin(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def measure(loops: int = REFERENCE_LOOPS, rounds: int = 3) -> float:
    """How many times slower than the reference machine this one runs Python now (at least 1;
    the best of ROUNDS, so one scheduling hiccup does not count)."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        _spin(loops)
        best = min(best, time.perf_counter() - t)
    ratio = best / (REFERENCE_SECONDS * loops / REFERENCE_LOOPS)
    return round(min(MAX_SCALE, max(1.0, ratio)), 1)


@lru_cache(maxsize=1)
def scale() -> float:
    """The factor in force for this process (LAB_TIME_SCALE, measured once when 'auto')."""
    asked = parse_scale(os.environ.get(ENV))
    return measure() if asked is None else asked


def budget(seconds: float) -> float:
    """SECONDS on a quick machine, scaled for this one."""
    return seconds * scale()


if __name__ == "__main__":
    print(measure())
