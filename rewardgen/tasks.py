"""Task specs (``environments/<task-id>.yaml``) and the simulation environments they name.

A task is a robot (a gymnasium MuJoCo v5 env id, or an MJCF file), a natural-language goal, an
episode length, and a trusted fitness with a success threshold. The env's own reward is the "human"
baseline; candidate rewards replace it during training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import yaml

from rewardgen.schema import Schema, derive_schema

ENVIRONMENTS_DIR = Path(__file__).resolve().parent.parent / "environments"


class TaskError(ValueError):
    """A task that does not exist or does not make sense; the message is for the user."""


@dataclass(frozen=True)
class Task:
    """One task spec. See ``environments/*.yaml`` for examples of every field."""

    id: str
    description: str
    episode_length: int
    fitness: dict[str, Any]
    success_threshold: float
    default_steps: int
    env_id: str | None = None
    mjcf: str | None = None
    frame_skip: int = 5
    reset_noise: float = 0.1
    eval_episodes: int = 5
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @cached_property
    def model(self) -> mujoco.MjModel:
        """The compiled model (loaded once per process)."""
        env = self.make_env()
        try:
            return env.unwrapped.model
        finally:
            env.close()

    @cached_property
    def schema(self) -> Schema:
        env = self.make_env()
        try:
            frame_skip = int(getattr(env.unwrapped, "frame_skip", self.frame_skip))
            return derive_schema(env.unwrapped.model, model_name=self.robot_label, frame_skip=frame_skip)
        finally:
            env.close()

    def to_dict(self) -> dict[str, Any]:
        """The mapping ``task_from_dict`` reads back (paths absolute), for workers and run configs."""
        raw: dict[str, Any] = {
            "id": self.id, "description": self.description, "episode_length": self.episode_length,
            "fitness": self.fitness, "success_threshold": self.success_threshold,
            "default_steps": self.default_steps, "frame_skip": self.frame_skip,
            "reset_noise": self.reset_noise, "eval_episodes": self.eval_episodes, "env_kwargs": self.env_kwargs,
        }
        raw["env" if self.env_id else "mjcf"] = self.env_id or self.mjcf
        return raw

    @property
    def robot_label(self) -> str:
        return f"{self.env_id} (gymnasium)" if self.env_id else f"{Path(self.mjcf or '').name} (MJCF)"

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        """A gymnasium env for this task: actions rescaled to [-1, 1], time limit = episode length."""
        if self.env_id:
            env = gym.make(self.env_id, max_episode_steps=self.episode_length,
                           render_mode=render_mode, **self.env_kwargs)
        else:
            from rewardgen.mjcf_env import MjcfEnv

            env = gym.wrappers.TimeLimit(
                MjcfEnv(self.mjcf, frame_skip=self.frame_skip, reset_noise=self.reset_noise,
                        render_mode=render_mode, **self.env_kwargs),
                max_episode_steps=self.episode_length)
        low, high = env.action_space.low, env.action_space.high
        if not (np.allclose(low, -1.0) and np.allclose(high, 1.0)):
            env = gym.wrappers.RescaleAction(env, -1.0, 1.0)
        return env


def _require(raw: dict, key: str, kind: type, where: str):
    if key not in raw:
        raise TaskError(f"{where}: missing field '{key}'")
    value = raw[key]
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TaskError(f"{where}: field '{key}' must be {kind.__name__}, got {value!r}")
    return value


def task_from_dict(raw: dict, *, where: str, base_dir: Path | None = None) -> Task:
    """Validate a task mapping (as read from YAML) and build the Task."""
    if not isinstance(raw, dict):
        raise TaskError(f"{where}: a task file must hold a mapping")
    task_id = _require(raw, "id", str, where)
    fitness = raw.get("fitness")
    if isinstance(fitness, str):
        from rewardgen.fitness import parse_fitness

        fitness = parse_fitness(fitness)
    if not isinstance(fitness, dict) or not isinstance(fitness.get("name"), str):
        raise TaskError(f"{where}: 'fitness' must be like {{name: forward_velocity, params: {{body: torso}}}}")
    env_id, mjcf = raw.get("env"), raw.get("mjcf")
    if bool(env_id) == bool(mjcf):
        raise TaskError(f"{where}: give exactly one of 'env' (gymnasium id) or 'mjcf' (model file)")
    if mjcf and base_dir is not None and not Path(mjcf).is_absolute():
        mjcf = str((base_dir / mjcf).resolve())
    episode_length = _require(raw, "episode_length", int, where)
    default_steps = _require(raw, "default_steps", int, where)
    if episode_length <= 0 or default_steps <= 0:
        raise TaskError(f"{where}: episode_length and default_steps must be positive")
    return Task(
        id=task_id,
        description=_require(raw, "description", str, where).strip(),
        episode_length=episode_length,
        fitness={"name": fitness["name"], "params": dict(fitness.get("params") or {})},
        success_threshold=_require(raw, "success_threshold", float, where),
        default_steps=default_steps,
        env_id=env_id,
        mjcf=mjcf,
        frame_skip=int(raw.get("frame_skip", 5)),
        reset_noise=float(raw.get("reset_noise", 0.1)),
        eval_episodes=int(raw.get("eval_episodes", 5)),
        env_kwargs=dict(raw.get("env_kwargs") or {}),
        source=where,
    )


def load_task_file(path: Path) -> Task:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TaskError(f"cannot read task file {path}: {exc}") from None
    return task_from_dict(raw, where=str(path), base_dir=path.parent)


def list_tasks(directory: Path = ENVIRONMENTS_DIR) -> list[Task]:
    """Every task in the environments directory, sorted by id."""
    return sorted((load_task_file(p) for p in directory.glob("*.yaml")), key=lambda t: t.id)


def get_task(name: str, directory: Path = ENVIRONMENTS_DIR) -> Task:
    """A task by id, or by path to a task YAML file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_task_file(path)
    candidate = directory / f"{name}.yaml"
    if candidate.is_file():
        return load_task_file(candidate)
    known = ", ".join(t.id for t in list_tasks(directory))
    raise TaskError(f"unknown task {name!r}; known tasks: {known}")
