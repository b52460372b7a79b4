"""What else the machine is running, read from the kernel in one place.

Benchmarks print the load average beside every figure (a figure taken on a busy machine says so),
and the time forecast samples the threads runnable right now to know how many cores other processes
want (``rewardgen.run.forecast.OtherDemand``). Both come from ``/proc/loadavg``; where the kernel has
no such file the load is "unknown" and the forecast assumes an idle machine.
"""

from __future__ import annotations

import os


def load_average() -> tuple[float, float, float] | None:
    """The 1-, 5- and 15-minute load averages; None where the system does not keep them."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def load_text() -> str:
    """The three load averages as benchmarks print them ("1.03 2.67 3.14"), or "unknown"."""
    load = load_average()
    return "unknown" if load is None else " ".join(f"{x:.2f}" for x in load)


def runnable_now() -> int | None:
    """Threads runnable on the machine at this instant, the reader included (``/proc/loadavg``'s
    fourth field, "running/total"); None where the kernel does not say."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
