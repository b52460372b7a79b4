"""Python-level guards inside the reward jail: clear messages for honest mistakes, not a boundary.

The boundary is the jail process and the kernel (``rewardgen.sandbox.jail``); reflection tricks can
reach past anything here, and what they reach is a locked process holding nothing. What these give
is a precise message ("sandbox refused open('/etc/passwd') (reward.py line 7)") where the kernel
would only say EPERM. Installed in the jail after it is locked, before the candidate runs:

1. ``Guard.install()``: a ``sys.addaudithook`` hook that refuses, from then on, process creation,
   sockets, ctypes, signals, file access, and, when the candidate's own code is the caller, imports
   outside torch/math, exec/compile and frame introspection.
2. ``load_candidate()``: runs the reward with restricted builtins (no exec/eval/open/getattr...,
   an ``__import__`` that only admits torch and math) and returns a wrapper that turns any refused
   operation, even one the reward caught and swallowed, into a ``SandboxViolation``, and notices
   monkeypatching of torch/math/builtins.
"""

from __future__ import annotations

import builtins
import os
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from rewardgen.sandbox.validate import BANNED_BUILTINS, module_allowed

CANDIDATE_FILENAME = "reward.py"
MAX_VIOLATIONS = 20


class SandboxViolation(PermissionError):
    """The reward attempted an operation the sandbox refuses; the message says which and where."""


# ---------------------------------------------------------------------------------------------
# audit hook
# ---------------------------------------------------------------------------------------------

# Events refused whenever the guard is armed, whoever the caller.
_ALWAYS_DENY_PREFIXES = (
    "subprocess.", "_posixsubprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "pty.", "socket.", "os.kill", "os.killpg", "signal.pthread_kill", "os.remove",
    "os.unlink", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.symlink",
    "os.link", "os.utime", "os.putenv", "os.unsetenv", "os.chflags", "os.lchflags", "os.setxattr",
    "os.removexattr", "os.chdir", "os.chroot", "os.startfile", "os.add_dll_directory", "shutil.",
    "resource.setrlimit", "resource.prlimit", "webbrowser.", "urllib.", "http.", "ftplib.", "smtplib.",
    "poplib.", "imaplib.", "nntplib.", "telnetlib.", "sys.remote_exec", "ctypes.dlopen",
)
# Events refused when the candidate's own code is the innermost (non-import-machinery) caller.
_CANDIDATE_DENY_PREFIXES = (
    "exec", "compile", "sys._getframe", "sys._current_frames", "sys.settrace", "sys.setprofile",
    "sys._setprofileallthreads", "sys._settraceallthreads", "sys.addaudithook", "object.__getattr__",
    "object.__setattr__", "object.__delattr__", "function.__new__", "code.__new__", "marshal.", "pickle.",
    "ctypes.", "mmap.", "gc.", "os.listdir", "os.scandir", "os.walk", "glob.", "os.getxattr", "os.listxattr",
    "sys.setrecursionlimit", "cpython.",
)
_WATCHED_HEADS = frozenset(p.split(".")[0].rstrip(".") for p in (*_ALWAYS_DENY_PREFIXES, *_CANDIDATE_DENY_PREFIXES)) \
    | {"open", "import"}
_WRITE_MASK = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def default_read_roots() -> list[str]:
    """Where a worker may read once the reward is loaded: Python itself, installed packages, rewardgen."""
    import site
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(p for p in sysconfig.get_paths().values() if p)
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:
        pass
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the rewardgen package
    from rewardgen.resources import ENVIRONMENTS_DIR
    roots.update({here, str(ENVIRONMENTS_DIR)})
    roots.update({f"/proc/{os.getpid()}/", "/sys/devices/system/cpu", "/sys/fs/cgroup", "/dev/null",
                  "/dev/urandom", "/dev/random", "/usr/share/zoneinfo", "/etc/localtime", "/proc/cpuinfo",
                  "/proc/meminfo", "/dev/shm"})
    return sorted({os.path.realpath(r) for r in roots if r})


class Guard:
    """The audit-hook policy. ``install()`` arms it for the rest of the process (hooks cannot be removed)."""

    def __init__(self, read_roots: Iterable[str] | None = None, candidate_filename: str = CANDIDATE_FILENAME):
        self.candidate_filename = candidate_filename
        roots = [os.path.realpath(r) for r in (read_roots if read_roots is not None else default_read_roots())]
        self._roots = tuple(r.rstrip("/") + "/" for r in roots) + tuple(roots)
        self.violations: list[str] = []
        self.armed = False
        self._tls = threading.local()

    def install(self) -> None:
        sys.addaudithook(self._hook)
        self.armed = True

    # -- stack helpers ------------------------------------------------------------------------
    def candidate_line(self) -> int | None:
        """Line of the innermost candidate frame on the current stack, or None."""
        tls = self._tls
        was, tls.busy = getattr(tls, "busy", False), True  # sys._getframe is itself an audit event
        try:
            f: FrameType | None = sys._getframe(1)
            while f is not None:
                if f.f_code.co_filename == self.candidate_filename:
                    return f.f_lineno
                f = f.f_back
            return None
        finally:
            tls.busy = was

    def _innermost_is_candidate(self) -> bool:
        """Whether the innermost frame that is neither this module nor import machinery is the reward's."""
        f: FrameType | None = sys._getframe(1)
        here = __file__
        while f is not None:
            name = f.f_code.co_filename
            if name == here or name.startswith("<frozen importlib") or "/importlib/" in name:
                f = f.f_back
                continue
            return name == self.candidate_filename
        return False

    # -- the hook -----------------------------------------------------------------------------
    def _hook(self, event: str, args: tuple) -> None:
        if event.partition(".")[0] not in _WATCHED_HEADS or not self.armed:
            return
        tls = self._tls
        if getattr(tls, "busy", False):
            return
        tls.busy = True
        try:
            why = self._judge(event, args)
        finally:
            tls.busy = False
        if why:
            line = self.candidate_line()
            where = f" ({self.candidate_filename} line {line})" if line else ""
            message = f"sandbox refused {why}{where}"
            # Refusals with the reward on the stack reject it even if it swallows the exception;
            # refusals of trusted code alone are reported but do not blame the reward.
            if line and len(self.violations) < MAX_VIOLATIONS:
                self.violations.append(message)
            raise SandboxViolation(message)

    def _judge(self, event: str, args: tuple) -> str | None:
        if event == "open":
            return self._judge_open(args)
        if event == "import":
            name = str(args[0]) if args else "?"
            if self._innermost_is_candidate():
                why = module_allowed(name)
                if why:
                    return f"import {name!r}: {why}"
            return None
        if event.startswith(_ALWAYS_DENY_PREFIXES):
            return f"{event}{_short(args)}: processes, network, signals, native code and file changes are not allowed"
        if event.startswith(_CANDIDATE_DENY_PREFIXES) and self._innermost_is_candidate():
            return f"{event}{_short(args)}: not allowed from reward code"
        return None

    def _judge_open(self, args: tuple) -> str | None:
        path, mode, flags = [*args, None, None, None][:3]
        if isinstance(path, int):
            return None  # an already-open descriptor (os.fdopen)
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                  (isinstance(flags, int) and flags & _WRITE_MASK)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if writing:
            return f"open({str(path)!r}) for writing: the reward may not write files"
        try:
            real = os.path.realpath(str(path))
        except (OSError, ValueError):
            return f"open({str(path)!r}): unresolvable path"
        if real.startswith(self._roots) or real in self._roots:
            return None
        return f"open({str(path)!r}) for reading: outside the allowed paths"


def _short(args: tuple) -> str:
    text = ", ".join(repr(a)[:80] for a in args[:3])
    return f"({text})"


# ---------------------------------------------------------------------------------------------
# loading the candidate
# ---------------------------------------------------------------------------------------------

class RefusedImport(ImportError):
    """The reward imported a module outside torch and math (or a refused part of torch)."""


def reward_torch() -> Any:
    """The reward's ``torch`` (``rewardgen.sandbox.allowed.reward_torch``): only the allowlisted names,
    no real submodule reachable."""
    from rewardgen.sandbox.allowed import reward_torch as view

    return view()


def _import_gate(guard: Guard | None) -> Callable[..., Any]:
    torch_view: list[Any] = []

    def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if type(fromlist) is list and not fromlist and not level and isinstance(name, str) \
                and name.startswith("torch."):
            # torch's C++ importing its own modules through PyImport_Import (fromlist: an empty list;
            # an import statement passes None or a tuple) while a reward's frame is current, e.g.
            # ``torch.tensor([1.0])`` reaching torch.storage: torch's business, not the reward's
            return builtins.__import__(name, globals, locals, fromlist, level)
        why = "relative imports are not allowed" if level else module_allowed(name)
        for item in fromlist or ():
            if why:
                break
            if not isinstance(item, str) or item.startswith("_"):
                why = f"importing {item!r} from {name} is not allowed"
            elif name.startswith("torch"):
                why = module_allowed(f"{name}.{item}")
        if why:
            message = f"sandbox refused import {name!r}: {why}"
            if guard is not None:
                line = guard.candidate_line()
                message += f" ({guard.candidate_filename} line {line})" if line else ""
                if len(guard.violations) < MAX_VIOLATIONS:
                    guard.violations.append(message)
            raise RefusedImport(message)
        module = builtins.__import__(name, globals, locals, fromlist, level)
        if name == "torch" or name.startswith("torch."):
            if not torch_view:
                torch_view.append(reward_torch())
            if not fromlist:  # ``import torch.nn.functional as F`` walks down from the top itself
                return torch_view[0]
            view = torch_view[0]
            for part in name.split(".")[1:]:  # ``from torch.nn import functional``: the view's own namespace
                view = getattr(view, part)
            return view
        return module

    return guarded_import


def safe_builtins(guard: Guard | None = None) -> dict[str, Any]:
    """The builtins a reward sees: the usual ones minus code execution, files and reflection by name."""
    safe = {k: v for k, v in builtins.__dict__.items() if k not in BANNED_BUILTINS}
    safe["__import__"] = _import_gate(guard)  # only torch and math
    return safe


class _Snapshot:
    """Identity snapshot of module/class namespaces, to notice monkeypatching."""

    def __init__(self, namespaces: dict[str, Any]):
        self._spaces = {label: (ns, dict(ns)) for label, ns in namespaces.items()}

    def changed(self) -> str | None:
        for label, (ns, before) in self._spaces.items():
            now = dict(ns)
            if len(now) != len(before):
                added = sorted(set(now) - set(before)) or sorted(set(before) - set(now))
                return f"{label}.{added[0] if added else '?'}"
            for k, v in before.items():
                if now.get(k, before) is not v:
                    return f"{label}.{k}"
        return None


def _namespaces() -> dict[str, Any]:
    import math

    import torch

    spaces: dict[str, Any] = {"builtins": builtins.__dict__, "math": math.__dict__, "torch": torch.__dict__,
                              "torch.Tensor": torch.Tensor.__dict__, "torch.linalg": torch.linalg.__dict__,
                              "torch.nn.functional": torch.nn.functional.__dict__}
    try:
        import numpy

        spaces["numpy"] = numpy.__dict__
    except ImportError:
        pass
    return spaces


class GuardedReward:
    """Calls the candidate; raises SandboxViolation if it tried anything refused or monkeypatched."""

    CHECK_EVERY = 64

    def __init__(self, fn: Any, guard: Guard | None, snapshot: _Snapshot):
        """``fn``: whatever the candidate bound to ``compute_reward`` (``load_candidate`` refuses it
        unless it is callable, after ``verify``)."""
        self.fn = fn
        self.guard = guard
        self.snapshot = snapshot
        self.calls = 0

    def verify(self) -> None:
        if self.guard is not None and self.guard.violations:
            raise SandboxViolation(self.guard.violations[0])
        changed = self.snapshot.changed()
        if changed:
            raise SandboxViolation(f"sandbox refused the reward: it modified {changed} (monkeypatching)")

    def __call__(self, state: Any) -> Any:
        out = self.fn(state)
        self.calls += 1
        if self.guard is not None and self.guard.violations:
            raise SandboxViolation(self.guard.violations[0])
        if self.calls == 1 or self.calls % self.CHECK_EVERY == 0:
            self.verify()
        return out


def load_candidate(source: str, guard: Guard | None, filename: str = CANDIDATE_FILENAME) -> GuardedReward:
    """Execute the reward with restricted builtins; return its guarded ``compute_reward``."""
    from rewardgen.contract.reward import ContractError

    snapshot = _Snapshot(_namespaces())
    code = compile(source, filename, "exec")
    namespace: dict[str, Any] = {"__name__": "candidate_reward", "__file__": filename,
                                 "__builtins__": safe_builtins(guard)}
    exec(code, namespace)  # inside the worker, behind the guards
    wrapped = GuardedReward(namespace.get("compute_reward"), guard, snapshot)
    wrapped.verify()
    if not callable(wrapped.fn):
        raise ContractError("the reward file defines no function compute_reward(s)")
    return wrapped
