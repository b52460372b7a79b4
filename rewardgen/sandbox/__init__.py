"""Running untrusted reward code: the isolation story of rewardgen.

Candidate code is untrusted: it may be wrong, and it may be written to cheat. It runs in exactly
one place, a **jail** (``jail.py``): a process forked from a trusted worker after the imports,
holding nothing of value, locked by the kernel (user/PID/IPC/mount/network namespaces, an empty
root, an allowlist seccomp filter, rlimits, no capabilities) and talking to its worker only through
shared memory and a pipe whose every message the worker validates.

The worker (``process.py``: ``run_worker``) is trusted code (trainer, simulator, policy) in a fresh
process with a scrubbed environment, rlimits, a wall-clock limit and bounded output; its results
reach the orchestrator only as frames on a pipe (``ipc.py``), each checked against a schema.

``guard.py`` (audit hook, restricted builtins) and ``rewardgen.validate`` (static checks) give
honest mistakes clear messages; they are not the boundary. See docs/sandbox.md.
"""

from rewardgen.sandbox.jail import Jail, JailError, JailOptions
from rewardgen.sandbox.process import PACKAGE_PARENT, WorkerLimits, WorkerResult, run_worker, worker_env

__all__ = ["Jail", "JailError", "JailOptions", "PACKAGE_PARENT", "WorkerLimits", "WorkerResult", "run_worker",
           "worker_env"]
