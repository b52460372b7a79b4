"""Each gymnasium env's rules in one file, for every batched simulator.

One module per env class (``hopper.py``, ``humanoid.py``, ...), each an ``EnvRules`` subclass that
names the class it reproduces (``env_class``); every module in this package is loaded and its rules
registered, so a new robot is one new file here. ``BatchSim`` and ``WarpSim`` build the rules of a
task's env with ``init_from_env`` and hold no knowledge of any env themselves.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from rewardgen.contract.schema import Schema
from rewardgen.sim.rules.base import Bound, EnvRules, GymView, Termination
from rewardgen.tasks.spec import Task, box, mujoco_env

__all__ = ["RULES", "Bound", "EnvMirror", "EnvRules", "GymView", "Termination", "init_from_env", "rules_for",
           "unsupported_reason"]


def _load_all() -> dict[str, type[EnvRules]]:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    found: dict[str, type[EnvRules]] = {}
    todo = list(EnvRules.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.env_class:
            if cls.env_class in found and found[cls.env_class] is not cls:
                raise RuntimeError(f"two rules classes for {cls.env_class}: {found[cls.env_class].__name__}, "
                                   f"{cls.__name__}")
            found[cls.env_class] = cls
    return found


#: env class name -> its rules class, for every env the batched simulators reproduce
RULES: dict[str, type[EnvRules]] = _load_all()


def rules_for(env: gym.Env) -> EnvRules:
    """The rules of a (wrapped or unwrapped) env instance; ValueError for an env class no rules reproduce."""
    u = env.unwrapped
    cls = RULES.get(type(u).__name__)
    if cls is None:
        raise ValueError(f"batched simulation does not know the rules of {type(u).__name__}")
    return cls(u)


def unsupported_reason(task: Task) -> str | None:
    """Why the batched simulators cannot stand in for this task's env (None when they can)."""
    env = task.make_env()
    try:
        kind = type(env.unwrapped).__name__
    finally:
        env.close()
    if kind not in RULES:
        return f"BatchSim does not model {kind}'s termination and observation rules"
    return None


class EnvMirror:
    """What a batched simulator (BatchSim, WarpSim) reproduces of its task's gymnasium env, set by
    ``init_from_env``."""

    _env: gym.Env
    #: the RescaleAction wrapper's function, or None
    _rescale: Callable[[Any], Any] | None
    u: MujocoEnv
    kind: str
    rules: EnvRules
    model: Any  # mujoco.MjModel
    frame_skip: int
    dt: float
    episode_length: int
    schema: Schema
    act_dim: int
    obs_dim: int
    nq: int
    nv: int
    nu: int


def init_from_env(sim: EnvMirror, task: Task) -> None:
    """Build the task's gymnasium env and set on a batched simulator (BatchSim and WarpSim alike)
    what it reproduces of it: the env itself (``_env``, closed by ``close``), the unwrapped env
    ``u``, its class name ``kind``, its ``rules``, ``model``, ``frame_skip``, ``dt``,
    ``episode_length``, ``schema``, ``act_dim``, ``obs_dim``, ``nq``/``nv``/``nu``, and ``_rescale``:
    the RescaleAction wrapper's function, or None. ValueError for an env no rules reproduce."""
    env = task.make_env()
    sim._env, sim._rescale = env, None
    w = env
    while isinstance(w, gym.Wrapper):
        if isinstance(w, gym.wrappers.RescaleAction):
            sim._rescale = w.func
        w = w.env
    u = mujoco_env(env)
    sim.u, sim.kind, sim.model = u, type(u).__name__, u.model
    try:
        sim.rules = rules_for(u)
    except ValueError:
        env.close()
        raise
    sim.frame_skip, sim.dt = int(u.frame_skip), float(u.dt)
    sim.episode_length, sim.schema = int(task.episode_length), task.schema
    sim.act_dim, sim.obs_dim = int(box(env.action_space).shape[0]), int(box(env.observation_space).shape[0])
    sim.nq, sim.nv, sim.nu = u.model.nq, u.model.nv, u.model.nu
