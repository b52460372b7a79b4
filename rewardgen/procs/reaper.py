"""A command returns only after every process it started is gone, whatever the reward did.

Each command's processes form a tree under it: the zygote, the workers it forks, each worker's
namespace parent and jail, the evaluator, the video renderer. They die with their parents
(parent-death signals), but a death takes time and nobody waited for the grandchildren: a killed
worker's jail could still be alive seconds after ``rewardgen check`` printed its verdict. So the CLI
makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``) when it starts: every descendant
whose parent dies becomes its child, at any depth and across the jail's PID namespace. When the
command is done, ``reap_descendants`` stops the zygote, then waits until this process has no child
left, killing (SIGKILL) any still alive after a grace period, and reaps them all.
"""

from __future__ import annotations

import os
import signal
import time

from rewardgen.sandbox.oslevel import LIBC as _LIBC

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children (so it can wait for them); False when the
    kernel refuses."""
    return _LIBC is not None and _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def children(pid: int | None = None) -> list[int]:
    """Pids of the living (not zombie) children of ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _reap_zombies() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def reap_descendants(grace: float = 5.0, limit: float = 20.0) -> list[int]:
    """Stop this command's zygote, then wait until no child of this process is alive: those still alive
    after ``grace`` seconds are killed (SIGKILL). Returns the pids that had to be killed. Gives up after
    ``limit`` seconds (a process stuck in the kernel cannot be waited for forever)."""
    from rewardgen.procs import zygote

    zygote.reset_shared()
    killed: list[int] = []
    start = time.monotonic()
    while True:
        _reap_zombies()
        alive = children()
        if not alive:
            return killed
        waited = time.monotonic() - start
        if waited > limit:
            return killed
        if waited > grace:
            for pid in alive:
                if pid in killed:
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
        time.sleep(0.02)
