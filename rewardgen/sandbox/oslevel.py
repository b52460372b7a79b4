"""Kernel calls the sandbox's processes share: done in a just-forked child, before anything else runs.

The jail, the zygote's children and fresh workers all close inherited descriptors, die with their
parent and (workers) leave the network; one copy of each, here, with libc resolved at import time
(a pre-exec child must not ``dlopen``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import time

_PR_SET_PDEATHSIG = 1
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
#: the C library (prctl, unshare), None where it cannot be loaded; the trusted processes use it too
LIBC: ctypes.CDLL | None
try:
    LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    LIBC = None


def close_fds_except(keep: set[int]) -> None:
    """In a just-forked child: close every inherited descriptor not in ``keep`` (a worker's result
    pipe, the orchestrator's files, sockets) so nothing reaches what runs next by number."""
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def set_parent_death_signal() -> None:
    """In a just-forked child: die (SIGKILL) when the process that started it dies."""
    try:
        if LIBC is not None:
            LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def keep_priority_in_session(pid: int | None = None, nice: int | None = None) -> None:
    """After ``setsid``: make the new session's scheduling group ``nice`` (default: as nice as the
    process, this one or ``pid``).

    Where the kernel schedules by session (autogroup, on by default in most Linux distributions),
    niceness orders processes only within their session, and each session competes with every other
    as an equal: a process that starts a session of its own takes a whole session's share of the CPU
    however nice it is. Every process rewardgen starts has a session of its own, so a ``nice rewardgen
    ...`` would otherwise compete with the user's other work as if nobody had lowered it. Writing the
    niceness to ``/proc/PID/autogroup`` keeps it as nice against the rest of the machine. Only
    lowering the priority is asked for, which the process's owner may; the kernel takes one such
    write per 100 ms from unprivileged users, so a busy moment is waited out. Nothing to do at
    niceness 0 or without autogroups. (The jail cannot write its own: its user namespace's root does
    not own its /proc files; its worker writes it.)"""
    try:
        if nice is None:
            nice = os.getpriority(os.PRIO_PROCESS, pid or 0)
    except OSError:
        return
    if nice <= 0:
        return
    path = f"/proc/{'self' if pid is None else pid}/autogroup"
    for _ in range(20):
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError:
            return  # no autogroups here (niceness already counts machine-wide), or the process is gone
        try:
            os.write(fd, str(nice).encode())
            return
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                return
        finally:
            os.close(fd)
        time.sleep(0.03)


def enter_netns() -> None:
    """Move the (pre-exec, single-threaded) child into a fresh network namespace, if allowed."""
    if LIBC is None:
        return
    if LIBC.unshare(_CLONE_NEWNET) == 0:
        return
    uid, gid = os.getuid(), os.getgid()
    if LIBC.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        try:
            fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        except OSError:
            pass


def netns_of(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None
