"""An allowlist seccomp filter for the reward jail, built with libseccomp through ctypes.

Everything not listed answers EPERM (so an honest mistake becomes a Python exception with a
message rather than a dead process); syscalls of another architecture's ABI kill the process
(libseccomp's bad-architecture action). What the jail may still do once the filter is loaded:
compute in its own memory, read its request pipe, write its reply pipe and stdout/stderr, read the
clock, sleep, and exit. No open of any kind, no new processes or threads, no signals, no sockets,
no scheduling or priority changes, no prctl, no ptrace, no namespace or mount calls.

The library is opened once when this module is imported (in trusted code, before any namespace
or root change), so loading the filter needs no file access.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_EQ = 4
_SCMP_FLTATR_CTL_NNP = 3


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


# Allowed with any arguments. Names unknown on this architecture are skipped.
ALLOWED = (
    # memory
    "mmap", "munmap", "mremap", "mprotect", "madvise", "brk",
    # waiting and time
    "futex", "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
    "sched_yield", "restart_syscall",
    # the process's own signal state (no sending: kill, tgkill, tkill and sigqueue are not here)
    "rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "sigaltstack",
    # facts about itself
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getrusage", "times",
    "sched_getaffinity", "getrandom", "uname", "sysinfo",
    # its own descriptors (no new ones can be made: open, pipe, socket, dup are not here)
    "fstat", "lseek", "close",
    "exit", "exit_group",
)


class SeccompUnavailable(RuntimeError):
    """libseccomp could not be loaded or the kernel refused the filter; the message says which."""


try:
    _LIB: ctypes.CDLL | None = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2",
                                           use_errno=True)
    _LIB.seccomp_init.restype = ctypes.c_void_p
    _LIB.seccomp_init.argtypes = [ctypes.c_uint32]
    _LIB.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                            ctypes.POINTER(_ArgCmp)]
    _LIB.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    _LIB.seccomp_load.argtypes = [ctypes.c_void_p]
    _LIB.seccomp_release.argtypes = [ctypes.c_void_p]
    _LIB.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    _MISSING = ""
except (OSError, AttributeError) as _exc:  # pragma: no cover - depends on the machine
    _LIB, _MISSING = None, f"libseccomp not available ({_exc})"


def available() -> str | None:
    """None when the filter can be built here, else why not."""
    return _MISSING or None


def load_allowlist(read_fds: tuple[int, ...], write_fds: tuple[int, ...]) -> None:
    """Load the jail's filter into this (single-threaded) process: ``ALLOWED``, ``read`` on
    ``read_fds`` only, ``write`` on ``write_fds`` only, ``prlimit64`` only to read. Irreversible.
    Raises SeccompUnavailable when it cannot."""
    if _LIB is None:
        raise SeccompUnavailable(_MISSING)
    lib = _LIB
    ctx = lib.seccomp_init(_errno_action(errno.EPERM))
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")

    def rule(name: str, *cmps: tuple[int, int, int, int]) -> None:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            return  # not a syscall on this architecture
        arr = (_ArgCmp * max(1, len(cmps)))(*[_ArgCmp(*c) for c in cmps])
        rc = lib.seccomp_rule_add_array(ctx, _SCMP_ACT_ALLOW, nr, len(cmps), arr)
        if rc < 0:
            raise SeccompUnavailable(f"seccomp rule for {name} failed: {-rc}")

    try:
        for name in ALLOWED:
            rule(name)
        for fd in read_fds:
            rule("read", (0, _SCMP_CMP_EQ, fd, 0))
        for fd in write_fds:
            rule("write", (0, _SCMP_CMP_EQ, fd, 0))
        rule("prlimit64", (2, _SCMP_CMP_EQ, 0, 0))  # reading a limit (new_limit NULL), never setting one
        lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 1)
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise SeccompUnavailable(f"seccomp_load failed: {errno.errorcode.get(-rc, -rc)}")
    finally:
        lib.seccomp_release(ctx)
