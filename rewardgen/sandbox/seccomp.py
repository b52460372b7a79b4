"""An allowlist seccomp filter for the reward jail, built with libseccomp through ctypes.

Everything not listed answers EPERM (so an honest mistake becomes a Python exception with a
message rather than a dead process); syscalls of another architecture's ABI kill the process
(libseccomp's bad-architecture action). What the jail may still do once the filter is loaded:
compute in its own memory, read its request pipe, write its reply pipe and stdout/stderr, read the
clock, sleep, and exit. No open of any kind, no new processes or threads, no signals, no sockets,
no scheduling or priority changes, no prctl, no ptrace, no namespace or mount calls.

The library is opened once when this module is imported (in trusted code, before any namespace
or root change), so loading the filter needs no file access.

Counting refusals: with ``handoff_fd`` the filter's default action is a user notification instead of
EPERM. The kernel then suspends each refused call and tells a supervisor (the jail's namespace
parent, trusted code) through the listener descriptor; the supervisor counts it and answers EPERM
(``Supervisor``). So the number of refused calls a reward made is counted outside its process, where
the reward cannot change it. The jail hands the listener over on ``handoff_fd`` (``sendmsg`` is
allowed on that descriptor alone) and closes it; should the supervisor be gone, refused calls fail
with ENOSYS instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import struct

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_NOTIFY = 0x7FC00000
_SCMP_CMP_EQ = 4
_SCMP_FLTATR_CTL_NNP = 3
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_NEW_LISTENER = 8


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


_LIB: ctypes.CDLL | None
try:
    _lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    _lib.seccomp_init.restype = ctypes.c_void_p
    _lib.seccomp_init.argtypes = [ctypes.c_uint32]
    _lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                            ctypes.POINTER(_ArgCmp)]
    _lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    _lib.seccomp_load.argtypes = [ctypes.c_void_p]
    _lib.seccomp_release.argtypes = [ctypes.c_void_p]
    _lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    _lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    _lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    _lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    try:
        _NOTIFY = _lib.seccomp_api_get() >= 5  # the kernel has user notification
    except AttributeError:  # libseccomp older than 2.4
        _NOTIFY = False
    _LIB, _MISSING = _lib, ""
except (OSError, AttributeError) as _exc:  # pragma: no cover - depends on the machine
    _LIB, _MISSING, _NOTIFY = None, f"libseccomp not available ({_exc})", False


def available() -> str | None:
    """None when the filter can be built here, else why not."""
    return _MISSING or None


def load_allowlist(read_fds: tuple[int, ...], write_fds: tuple[int, ...], handoff_fd: int | None = None) -> int | None:
    """Load the jail's filter into this (single-threaded) process: ``ALLOWED``, ``read`` on
    ``read_fds`` only, ``write`` on ``write_fds`` only, ``prlimit64`` only to read. Irreversible.
    With ``handoff_fd`` (and a kernel and libseccomp that can), refused calls go to a supervisor
    (module docstring) and the listener descriptor is returned, to be sent on ``handoff_fd``; else
    they answer EPERM and None is returned. Raises SeccompUnavailable when it cannot load."""
    if _LIB is None:
        raise SeccompUnavailable(_MISSING)
    lib = _LIB
    notify = handoff_fd is not None and _NOTIFY
    ctx = lib.seccomp_init(_SCMP_ACT_NOTIFY if notify else _errno_action(errno.EPERM))
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
        if notify and handoff_fd is not None:
            rule("sendmsg", (0, _SCMP_CMP_EQ, handoff_fd, 0))  # the listener's one way out
            return _load_with_listener(lib, ctx)
        lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 1)
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise SeccompUnavailable(f"seccomp_load failed: {errno.errorcode.get(-rc, -rc)}")
        return None
    finally:
        lib.seccomp_release(ctx)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _load_with_listener(lib, ctx) -> int:
    """Load ``ctx``'s program with ``SECCOMP_FILTER_FLAG_NEW_LISTENER`` and return the listener.
    (libseccomp 2.5 asks for a listener only when a rule, not the default action, notifies: the
    program is exported and loaded with seccomp(2) here.)"""
    r, w = os.pipe()
    try:
        rc = lib.seccomp_export_bpf(ctx, w)
        os.close(w)
        w = -1
        program = b""
        while chunk := os.read(r, 65536):
            program += chunk
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if rc < 0 or not program or len(program) % 8:
        raise SeccompUnavailable(f"seccomp_export_bpf failed: {errno.errorcode.get(-rc, -rc)}")
    code = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(code))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    nr = lib.seccomp_syscall_resolve_name(b"seccomp")
    listener = libc.syscall(nr, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_NEW_LISTENER, ctypes.byref(fprog))
    if listener < 0:
        raise SeccompUnavailable(f"seccomp(NEW_LISTENER) failed: {os.strerror(ctypes.get_errno())}")
    return listener


def syscall_name(nr: int) -> str:
    """The name of system call ``nr`` on this machine's architecture (``"#nr"`` when unknown)."""
    if _LIB is not None:
        ptr = _LIB.seccomp_syscall_resolve_num_arch(0, int(nr))  # 0: the native architecture
        if ptr:
            name = ctypes.string_at(ptr).decode("ascii", "replace")
            _FREE(ptr)
            return name
    return f"#{nr}"


_FREE = ctypes.CDLL(None).free
_FREE.argtypes = [ctypes.c_void_p]

# struct seccomp_notif (80 bytes: id, pid, flags, then seccomp_data: nr, arch, ip, args[6]) and
# struct seccomp_notif_resp (24 bytes: id, val, error, flags); their ioctls are _IOWR('!', 0/1, ...)
_NOTIF = struct.Struct("<QIIiIQ6Q")
_NOTIF_RESP = struct.Struct("<QqiI")
_IOCTL_RECV = 0xC0502100
_IOCTL_SEND = 0xC0182101
#: the counters a supervisor keeps: refused calls in all, then one per system call number below this
COUNTED_SYSCALLS = 512
COUNTS_BYTES = 8 + 4 * COUNTED_SYSCALLS


class Supervisor:
    """Counts and refuses (EPERM) each call the filter sent to the listener ``listener`` (see the
    module docstring), into ``counts`` (a shared mapping of ``COUNTS_BYTES``: a 64-bit total, then a
    32-bit count per system call number) that the jail's owner reads with ``read_counts``."""

    def __init__(self, listener: int, counts) -> None:
        self.listener, self.counts = listener, counts

    def serve_one(self) -> bool:
        """Answer one pending notification; False when the listener is finished (no filter users)."""
        buf = bytearray(_NOTIF.size)
        try:
            fcntl.ioctl(self.listener, _IOCTL_RECV, buf, True)
        except OSError as exc:
            return exc.errno in (errno.ENOENT, errno.EINTR)  # the caller died meanwhile, or a signal
        ident, _pid, _flags, nr, *_ = _NOTIF.unpack(buf)
        total = struct.unpack_from("<Q", self.counts, 0)[0] + 1
        struct.pack_into("<Q", self.counts, 0, total)
        if 0 <= nr < COUNTED_SYSCALLS:
            at = 8 + 4 * nr
            struct.pack_into("<I", self.counts, at, min(2**32 - 1, struct.unpack_from("<I", self.counts, at)[0] + 1))
        try:
            fcntl.ioctl(self.listener, _IOCTL_SEND, bytearray(_NOTIF_RESP.pack(ident, 0, -errno.EPERM, 0)), True)
        except OSError:
            pass  # the caller died meanwhile
        return True


def read_counts(counts) -> tuple[int, dict[str, int]]:
    """``(refused calls in all, {system call name: count})`` from a supervisor's counters."""
    total = struct.unpack_from("<Q", counts, 0)[0]
    by_nr = struct.unpack_from(f"<{COUNTED_SYSCALLS}I", counts, 8)
    return total, {syscall_name(nr): n for nr, n in enumerate(by_nr) if n}
