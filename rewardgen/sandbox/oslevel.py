"""Kernel calls the sandbox's processes share: done in a just-forked child, before anything else runs.

The jail, the zygote's children and fresh workers all close inherited descriptors, die with their
parent and (workers) leave the network; one copy of each, here, with libc resolved at import time
(a pre-exec child must not ``dlopen``).
"""

from __future__ import annotations

import ctypes
import os
import signal

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
