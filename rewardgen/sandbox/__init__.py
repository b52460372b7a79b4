"""Running untrusted reward code: the isolation story of rewardgen.

Candidate code is untrusted: it may be wrong, and it may be written to cheat. It runs in exactly
one place, a **jail** (``jail.py``): a process forked from a trusted worker after the imports,
holding nothing of value, locked by the kernel (user/PID/IPC/mount/network namespaces, an empty
root, an allowlist seccomp filter, rlimits, no capabilities) and talking to its worker only through
shared memory and a pipe whose every message the worker validates.

The worker (``process.py``: ``run_worker``) is trusted code (trainer, simulator, policy) in its own
process with a scrubbed environment, rlimits, a wall-clock limit and bounded output; its results
reach the orchestrator only as frames on a pipe (``ipc.py``), each checked against a schema. The
worker is forked from this command's **zygote** (``zygote.py``: a trusted fork server started from
a scrubbed environment that has paid the imports) and locked as a fresh process was; without a
zygote it is a fresh process.

``guard.py`` (audit hook, restricted builtins) and ``rewardgen.sandbox.validate`` (static checks) give
honest mistakes clear messages; they are not the boundary. ``check.py`` is the candidate check
(static, then a smoke run in a worker). ``trusted.py`` runs the *trusted* children that read what a
worker produced (the evaluator, the video renderer) with limits of their own. ``standalone.py``
(``JailedReward``) gives an exported reward the same jail, for code outside rewardgen. See docs/sandbox.md.

The names below are imported on first use, so ``rewardgen.sandbox.zygote`` can be started before
torch is imported here (the zygote's imports then overlap the command's own).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Jail", "JailError", "JailOptions", "WorkerLimits", "WorkerResult", "run_worker", "worker_env",
           "run_trusted_evaluation", "render_video", "render_in_child", "JailedReward"]
_FROM = {"Jail": "jail", "JailError": "jail", "JailOptions": "jail", "WorkerLimits": "process",
         "WorkerResult": "process", "run_worker": "process", "worker_env": "process",
         "run_trusted_evaluation": "trusted", "render_video": "trusted", "render_in_child": "trusted",
         "JailedReward": "standalone"}


def __getattr__(name: str) -> Any:
    if name in _FROM:
        import importlib

        value = getattr(importlib.import_module(f"rewardgen.sandbox.{_FROM[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rewardgen.sandbox' has no attribute {name!r}")
