"""The trusted process machinery: how the orchestrator starts, confines, talks to and reaps its processes.

Every process rewardgen starts (a training or debug worker, the trusted evaluator, the video
renderer, the viewer window, an exported reward's host) is started by one call, ``launch.launch``:
forked from this command's **zygote** (``zygote.py``: a trusted fork server that has paid the
imports) when there is one, else a fresh process; and held by one record, ``confine.Confinement``
(environment policy, rlimits, network namespace, priority). The orchestrator and its processes talk
in one protocol, typed frames (``frames.py``), checked field by field on the trusted side.
``process.py`` runs a worker (``run_worker``), ``check.py`` the candidate check, ``trusted.py`` the
evaluator and the renderer (through ``child.py``), ``standalone.py`` an exported reward's jail,
``reaper.py`` waits for every process a command started. The untrusted boundary itself (the jail,
seccomp, the guards, the validator) is ``rewardgen.sandbox``. See docs/sandbox.md.

The names below are imported on first use, so ``rewardgen.procs.zygote`` can be started before torch
is imported here (the zygote's imports then overlap the command's own).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Confinement",
    "JailedReward",
    "WorkerLimits",
    "WorkerResult",
    "launch",
    "render_in_child",
    "render_video",
    "run_trusted_evaluation",
    "run_worker",
    "worker_env",
]
_FROM = {"Confinement": "confine", "WorkerLimits": "process", "WorkerResult": "process", "run_worker": "process",
         "worker_env": "process", "launch": "launch", "run_trusted_evaluation": "trusted",
         "render_video": "trusted", "render_in_child": "trusted", "JailedReward": "standalone"}


def __getattr__(name: str) -> Any:
    if name in _FROM:
        value = getattr(importlib.import_module(f"rewardgen.procs.{_FROM[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rewardgen.procs' has no attribute {name!r}")
