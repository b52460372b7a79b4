"""What the orchestrator asks a worker process to do: one typed record, checked at both ends.

A job crosses a process boundary as JSON on the worker's stdin. The orchestrator builds a
``WorkerJob``; the worker rebuilds it with ``WorkerJob.from_dict``, which refuses unknown keys and
wrong types, so a misspelt key is an error and not a silently ignored setting.

Modes: ``check`` (smoke-test a reward on random actions), ``train`` (train a policy with it),
``debug`` (record a reward's components on random and policy rollouts, ``rewardgen debug``).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any

MODES = ("check", "train", "debug")


class JobError(ValueError):
    """A job that is not well formed (a bug in whoever built it, or a forged job)."""


@dataclass(frozen=True)
class SmokeCheck:
    """A candidate's smoke check folded into the start of its training (a ``check`` frame says it passed).

    :param steps: env-steps of random actions; :param seed: their seed; :param num_envs: worlds.
    :param seconds: the check's own wall limit (the orchestrator kills the worker when no check frame
        came by then); 0 means none besides the job's.
    """

    steps: int = 256
    seed: int = 0
    num_envs: int = 4
    seconds: float = 0.0


@dataclass(frozen=True)
class WorkerJob:
    """One worker job. Fields marked (train) or (debug) are read in that mode only.

    :param mode: ``check``, ``train`` or ``debug``.
    :param task: the task spec (``Task.to_dict()``), rebuilt and re-checked by the worker.
    :param source: the candidate's reward code; None only for ``env_reward`` training.
    :param steps: env-steps to train (train) or to smoke-test (check).
    :param seed: the seed of the training, the check's actions or the debug episodes.
    :param trainer: (train) ``ppo`` or ``sb3``.
    :param env_reward: (train) train on the env's own reward (the "human" baseline); no jail is made.
    :param num_envs: batched worlds; None: the trainer's own choice (PPO: the task's setting).
    :param sim: (train) simulator backend, ``cpu`` or ``warp``; :param device: torch/Warp device.
    :param cpu_threads: (train) this job's share of the machine's cores; None: all of them.
    :param torch_threads: torch's intra-op threads in the worker.
    :param gpu_memory_fraction: (train) cap on torch's allocations on a shared device.
    :param resume: (train) base64 of a trainer's resume state from an earlier slice.
    :param check: (train) the folded smoke check, run first on the same jail.
    :param episodes: (debug) episodes per rollout kind; :param max_steps: (debug) cap per episode.
    :param policy_b64: (debug) a trained policy (base64 npz) to roll out besides random actions.
    :param validate, audit, seccomp, namespaces, sandbox: isolation layers, all on by default; switched
        off only by overhead measurements and by the tests that prove each layer on its own.
    :param jail_memory_bytes: the jail's own address-space limit (set by ``run_worker``).
    """

    mode: str
    task: dict[str, Any]
    source: str | None = None
    steps: int = 0
    seed: int = 0
    trainer: str = "sb3"
    env_reward: bool = False
    num_envs: int | None = None
    sim: str = "cpu"
    device: str = "cpu"
    cpu_threads: int | None = None
    torch_threads: int = 1
    gpu_memory_fraction: float | None = None
    resume: str | None = None
    check: SmokeCheck | None = None
    episodes: int = 5
    max_steps: int | None = None
    policy_b64: str | None = None
    validate: bool = True
    audit: bool = True
    seccomp: bool = True
    namespaces: bool = True
    sandbox: bool = True
    jail_memory_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (what goes on the worker's stdin)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.check is not None:
            out["check"] = dataclasses.asdict(self.check)
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> WorkerJob:
        """Rebuild and check a job; raises ``JobError`` naming the first bad key."""
        if isinstance(raw, WorkerJob):
            return raw
        if not isinstance(raw, dict):
            raise JobError("a job must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise JobError(f"unknown job key(s): {', '.join(map(str, unknown))}")
        for key in ("mode", "task"):
            if key not in raw:
                raise JobError(f"job key {key!r} is missing")
        if raw["mode"] not in MODES:
            raise JobError(f"job mode must be one of {', '.join(MODES)}, got {raw['mode']!r}")
        if not isinstance(raw["task"], dict):
            raise JobError("job key 'task' must be an object")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name in ("mode", "task"):
                values[name] = value
            elif name == "check":
                values[name] = None if value is None else _smoke_check(value)
            else:
                values[name] = _typed(name, value, _allowed(WorkerJob, name))
        job = cls(**values)
        if job.source is None and not job.env_reward:
            raise JobError("job key 'source' is missing (only env_reward training runs without one)")
        return job


def _typed(name: str, value: Any, types: tuple[type, ...]) -> Any:
    if isinstance(value, bool) and bool not in types:  # True is an int in Python; not here
        raise JobError(f"job key {name!r} must be {types[0].__name__}, got a boolean")
    if not isinstance(value, types):
        raise JobError(f"job key {name!r} must be {types[0].__name__}, got {type(value).__name__}")
    return value


def _smoke_check(value: Any) -> SmokeCheck:
    if isinstance(value, SmokeCheck):
        return value
    if not isinstance(value, dict):
        raise JobError("job key 'check' must be an object")
    known = {f.name for f in dataclasses.fields(SmokeCheck)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise JobError(f"unknown key(s) in job key 'check': {', '.join(map(str, unknown))}")
    for name, v in value.items():
        _typed(f"check.{name}", v, _allowed(SmokeCheck, name))
    return SmokeCheck(**value)


@functools.cache
def _allowed(cls: type, name: str) -> tuple[type, ...]:
    """The JSON value types a field takes, read from its annotation (a float field takes an int too)."""
    hint = typing.get_type_hints(cls)[name]
    types = typing.get_args(hint) or (hint,)
    return types + ((int,) if float in types else ())
