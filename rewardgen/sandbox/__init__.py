"""The untrusted boundary: where candidate reward code runs, and the checks that stand around it.

Candidate code is untrusted: it may be wrong, and it may be written to cheat. It runs in exactly
one place, a **jail** (``jail.py``): a process forked from a trusted worker after the imports,
holding nothing of value, locked by the kernel (namespaces, an empty root, an allowlist seccomp
filter in ``seccomp.py``, rlimits, no capabilities: docs/sandbox.md lists each layer) and talking
to its worker only through shared memory and a pipe whose every message the worker validates.
``oslevel.py`` holds the kernel calls a just-forked child makes (the jail's and the trusted
processes' alike); ``confined.py`` declares what callers use of a jailed reward.

``guard.py`` (audit hook, restricted builtins) and ``validate.py`` with its allowlist ``allowed.py``
(static checks) give honest mistakes clear messages; they are not the boundary.

The trusted processes around the jail (the zygote, the worker launcher, the frames, the evaluator's
and renderer's launch, the reaper) are ``rewardgen.procs``. See docs/sandbox.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Jail", "JailError", "JailOptions"]


def __getattr__(name: str) -> Any:
    """``Jail`` and friends on first use: importing the package must not load torch."""
    if name in __all__:
        from rewardgen.sandbox import jail

        value = getattr(jail, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rewardgen.sandbox' has no attribute {name!r}")
