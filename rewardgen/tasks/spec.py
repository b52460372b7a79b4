"""Task specs (``environments/<task-id>.yaml``) and the simulation environments they name.

A task is a robot (a gymnasium MuJoCo v5 env id, or an MJCF file), a natural-language goal, an
episode length, and a trusted fitness with a success threshold. Candidate rewards replace the env's
reward during training. The "human" baseline a run is compared with is named by ``baseline``:
``env`` (the gymnasium env's own reward) or ``sparse`` (``rewardgen.tasks.baselines.sparse_reward_source``:
1 on every step where the success indicator holds), for novel behaviours (a backflip, circling) and
for MJCF robots, which have no env reward.

Bring your own robot: ``task_from_mjcf`` builds a task from any MJCF file and a fitness string with
no YAML, checking that the model loads, that the names exist and that the fitness can apply;
``write_task_yaml`` saves it as a task file that ``load_task_file`` reads back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import yaml
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from rewardgen.contract.schema import Schema, derive_schema
from rewardgen.errors import UserError, flatten
from rewardgen.resources import ENVIRONMENTS_DIR
from rewardgen.stats import finite

BASELINES = ("env", "sparse")


class TaskError(UserError):
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
    frame_skip: int = 5  # physics steps per env step: given for MJCF, the env's own for gymnasium ids
    reset_noise: float = 0.1
    eval_episodes: int = 5
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    source: str = field(default="", compare=False)
    baseline: str = ""  # "env" or "sparse"; "" = the default: env for gymnasium tasks, sparse for MJCF
    # rewardgen PPO settings this task trains better with (PPOHyperparams fields, see PPO_TASK_KEYS);
    # explicit settings of a caller still win
    ppo: dict[str, Any] = field(default_factory=dict)
    # what rewardgen measured on this task, for scale (see REFERENCE_REWARDS): {"steps", "seeds",
    # "measured", "rewards": {name: [mean, std over training seeds]}}; {} when never measured
    reference: dict[str, Any] = field(default_factory=dict)

    @property
    def baseline_kind(self) -> str:
        """``env`` (the env's own reward is the human baseline) or ``sparse`` (the sparse success reward)."""
        return self.baseline or ("env" if self.env_id else "sparse")

    @property
    def has_env_reward(self) -> bool:
        """Whether the env's own reward is a meaningful baseline for this task."""
        return self.baseline_kind == "env"

    @cached_property
    def model(self) -> mujoco.MjModel:
        """The compiled model (loaded once per process)."""
        env = self.make_env()
        try:
            return mujoco_env(env).model
        finally:
            env.close()

    @cached_property
    def schema(self) -> Schema:
        env = self.make_env()
        try:
            u = mujoco_env(env)
            return derive_schema(u.model, model_name=self.robot_label, frame_skip=int(u.frame_skip))
        finally:
            env.close()

    def to_dict(self) -> dict[str, Any]:
        """The mapping ``task_from_dict`` reads back (paths absolute), for workers and run configs."""
        raw: dict[str, Any] = {
            "id": self.id, "description": self.description, "episode_length": self.episode_length,
            "fitness": self.fitness, "success_threshold": self.success_threshold,
            "default_steps": self.default_steps, "frame_skip": self.frame_skip,
            "reset_noise": self.reset_noise, "eval_episodes": self.eval_episodes, "env_kwargs": self.env_kwargs,
            "baseline": self.baseline_kind,
        }
        raw["env" if self.env_id else "mjcf"] = self.env_id or self.mjcf
        if self.ppo:
            raw["ppo"] = dict(self.ppo)
        if self.reference:
            raw["reference"] = {**self.reference, "rewards": {k: list(v) for k, v in self.reference["rewards"].items()}}
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
            from rewardgen.tasks.mjcf_env import MjcfEnv

            assert self.mjcf is not None, "a task names an env id or an MJCF file"  # task_from_dict checks it
            env = gym.wrappers.TimeLimit(
                MjcfEnv(self.mjcf, frame_skip=self.frame_skip, reset_noise=self.reset_noise,
                        render_mode=render_mode, **self.env_kwargs),
                max_episode_steps=self.episode_length)
        act = box(env.action_space)
        if not (np.allclose(act.low, -1.0) and np.allclose(act.high, 1.0)):
            env = gym.wrappers.RescaleAction(env, np.float64(-1.0), np.float64(1.0))
        return env


def mujoco_env(env: gym.Env) -> MujocoEnv:
    """The MuJoCo env under a task env's wrappers (every task's env is one: a gymnasium MuJoCo env or
    ``MjcfEnv``), typed as such for what it holds (``model``, ``data``, ``frame_skip``, ``dt``)."""
    u = env.unwrapped
    if not isinstance(u, MujocoEnv):
        raise TypeError(f"{type(u).__name__} is not a MuJoCo env")
    return u


def box(space: gym.Space) -> spaces.Box:
    """A task env's observation or action space, which is a flat Box (``low``, ``high``, ``shape``)."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise TypeError(f"expected a flat Box space, got {space}")
    return space


def space_dims(env: gym.Env) -> tuple[int, int]:
    """``(obs_dim, act_dim)`` of a task env."""
    return int(box(env.observation_space).shape[0]), int(box(env.action_space).shape[0])


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
        from rewardgen.tasks.fitness import parse_fitness

        fitness = parse_fitness(fitness)
    if not isinstance(fitness, dict) or not isinstance(fitness.get("name"), str):
        raise TaskError(f"{where}: 'fitness' must be like {{name: forward_velocity, params: {{body: torso}}}}")
    env_id, mjcf = raw.get("env"), raw.get("mjcf")
    if bool(env_id) == bool(mjcf):
        raise TaskError(f"{where}: give exactly one of 'env' (gymnasium id) or 'mjcf' (model file)")
    if env_id:
        _check_env_id(env_id, where)
    if mjcf and base_dir is not None and not Path(mjcf).is_absolute():
        mjcf = str((base_dir / mjcf).resolve())
    episode_length = _require(raw, "episode_length", int, where)
    default_steps = _require(raw, "default_steps", int, where)
    if episode_length <= 0 or default_steps <= 0:
        raise TaskError(f"{where}: episode_length and default_steps must be positive")
    baseline = raw.get("baseline") or ""
    if baseline and baseline not in BASELINES:
        raise TaskError(f"{where}: baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    baseline = baseline or ("env" if env_id else "sparse")
    if baseline == "env" and not env_id:
        raise TaskError(f"{where}: baseline 'env' needs a gymnasium env; MJCF tasks have no env reward (use sparse)")
    ppo = _ppo_settings(raw.get("ppo"), where)
    env_kwargs = dict(raw.get("env_kwargs") or {})
    frame_skip = int(raw.get("frame_skip", 5))
    if env_id:
        # a gymnasium env steps with its own frame skip (env_kwargs may change it): the task records that
        # one. The field is for MJCF robots; a gymnasium task's is not used (runs made before this
        # recorded 5 for every gymnasium task and still load)
        own = _env_frame_skip(env_id, env_kwargs)
        frame_skip = own if own is not None else frame_skip
    return Task(
        id=task_id,
        description=_require(raw, "description", str, where).strip(),
        episode_length=episode_length,
        fitness={"name": fitness["name"], "params": dict(fitness.get("params") or {})},
        success_threshold=_require(raw, "success_threshold", float, where),
        default_steps=default_steps,
        env_id=env_id,
        mjcf=mjcf,
        frame_skip=frame_skip,
        reset_noise=float(raw.get("reset_noise", 0.1)),
        eval_episodes=int(raw.get("eval_episodes", 5)),
        env_kwargs=env_kwargs,
        source=where,
        baseline=baseline,
        ppo=ppo,
        reference=_reference(raw.get("reference"), where),
    )


def _env_frame_skip(env_id: str, env_kwargs: dict[str, Any]) -> int | None:
    """The frame skip a gymnasium env steps with (``env_kwargs``, its registration, its constructor's
    default), read without building it; None when it cannot be told."""
    import inspect

    if isinstance(env_kwargs.get("frame_skip"), int):
        return int(env_kwargs["frame_skip"])
    try:
        spec = gym.spec(env_id)
        if isinstance(spec.kwargs.get("frame_skip"), int):
            return int(spec.kwargs["frame_skip"])
        from gymnasium.envs.registration import load_env_creator

        creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
        if creator is None:
            return None
        default = inspect.signature(creator).parameters.get("frame_skip")
    except Exception:  # an env that cannot be looked up is reported when it is built
        return None
    return int(default.default) if default is not None and isinstance(default.default, int) else None


def _check_env_id(env_id: Any, where: str) -> None:
    """A gymnasium id that is registered (``module:Id`` ids are imported when made, so not checked)."""
    if not isinstance(env_id, str):
        raise TaskError(f"{where}: 'env' must be a gymnasium env id like HalfCheetah-v5, got {env_id!r}")
    if ":" in env_id or env_id in gym.registry:
        return
    import difflib

    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else \
        " (MuJoCo ids look like HalfCheetah-v5; or give 'mjcf: robot.xml' for a model file)"
    raise TaskError(f"{where}: unknown gymnasium env id {env_id!r}{hint}")


def check_loads(task: Task) -> None:
    """Build the task's env once (its schema), turning any failure into a one-line TaskError, so a
    run is never created for a task whose robot cannot be simulated."""
    try:
        task.schema  # noqa: B018 - builds the env and derives the schema (cached)
    except TaskError:
        raise
    except Exception as exc:  # gymnasium, mujoco and import errors all mean "cannot load"
        raise TaskError(f"task {task.id} ({task.source or task.robot_label}): the environment cannot be built: "
                        f"{type(exc).__name__}: {flatten(exc, 300)}") from None


#: PPOHyperparams fields a task file may set under ``ppo:``, with their types
PPO_TASK_KEYS: dict[str, type] = {
    "num_envs": int, "rollout_steps": int, "epochs": int, "minibatches": int, "learning_rate": float,
    "gamma": float, "gae_lambda": float, "clip_coef": float, "ent_coef": float, "init_log_std": float,
}


def _ppo_settings(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TaskError(f"{where}: 'ppo' must be a mapping like {{epochs: 10, minibatches: 32}}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        kind = PPO_TASK_KEYS.get(key)
        if kind is None:
            raise TaskError(f"{where}: ppo.{key} is not a setting a task may give; "
                            f"choose from {', '.join(PPO_TASK_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise TaskError(f"{where}: ppo.{key} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        value = kind(value)
        if (kind is int or key == "learning_rate") and value <= 0:
            raise TaskError(f"{where}: ppo.{key} must be positive, got {value!r}")
        out[key] = value
    return out


#: the rewards a task's ``reference`` may report, and what each is
REFERENCE_REWARDS: dict[str, str] = {
    "env": "the env's own reward",
    "sparse": "the sparse success reward",
    "evolved": "the offline proposer's evolved reward (rule-based, its code not shown here)",
}


def _reference(raw: Any, where: str) -> dict[str, Any]:
    """A task file's ``reference``: the final retrainings of rewardgen's suite at one budget, shown to the
    proposer for scale and as the training seed's noise. Numbers only (a task file is untrusted)."""
    if raw is None:
        return {}
    shape = "like {steps: 300000, seeds: 3, measured: '2026-12-05, commit 8b9307a', rewards: {env: [0.54, 0.24]}}"
    if not isinstance(raw, dict) or set(raw) - {"steps", "seeds", "measured", "rewards"}:
        raise TaskError(f"{where}: 'reference' must be a mapping {shape}")
    steps, seeds, measured, rewards = raw.get("steps"), raw.get("seeds"), raw.get("measured"), raw.get("rewards")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (steps, seeds)):
        raise TaskError(f"{where}: reference.steps and reference.seeds must be positive integers")
    if not isinstance(measured, str) or not 0 < len(measured) <= 60 or not measured.isprintable():
        raise TaskError(f"{where}: reference.measured must be a short line (a date and a commit)")
    if not isinstance(rewards, dict) or not rewards or set(rewards) - set(REFERENCE_REWARDS):
        raise TaskError(f"{where}: reference.rewards must map some of {', '.join(REFERENCE_REWARDS)} to [mean, std]")
    out: dict[str, tuple[float, float]] = {}
    for name, pair in rewards.items():
        ok = isinstance(pair, list) and len(pair) == 2 and all(finite(x) for x in pair)
        if not ok or pair[1] < 0:
            raise TaskError(f"{where}: reference.rewards.{name} must be [mean, std] (finite numbers, std >= 0)")
        out[name] = (float(pair[0]), float(pair[1]))
    return {"steps": steps, "seeds": seeds, "measured": measured, "rewards": out}


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
    if path.suffix in (".yaml", ".yml") or os.sep in name:
        if path.is_dir():
            raise TaskError(f"{path} is a directory, not a task file")
        raise TaskError(f"no such task file: {name}" + ("" if path.suffix in (".yaml", ".yml") else
                                                        " (a task file ends in .yaml or .yml)"))
    known = ", ".join(t.id for t in list_tasks(directory))
    raise TaskError(f"unknown task {name!r}; known tasks: {known}")


# ----- bring your own robot
def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "robot"


def task_from_mjcf(path: str | os.PathLike, describe: str, fitness: str | dict, episode_length: int = 1000,
                   default_steps: int = 200_000, success_threshold: float | None = None, frame_skip: int = 5,
                   task_id: str | None = None, *, reset_noise: float = 0.1, eval_episodes: int = 3,
                   healthy_z_range: tuple[float, float] | None = None, healthy_body: str | None = None) -> Task:
    """A task for any MJCF file, without YAML. Raises TaskError / FitnessError with one-line messages.

    :param path: the MJCF (``.xml``) file; stored absolute, so runs and workers find it.
    :param describe: the goal in words (what the proposer is told), e.g. "make it walk forward".
    :param fitness: the trusted fitness, e.g. ``"forward_velocity(body=base)"`` (or ``{name, params}``).
        ``jump_height`` without ``rest`` gets the body's initial height.
    :param success_threshold: the fitness value that counts as success; None uses
        ``rewardgen.tasks.fitness.DEFAULT_SUCCESS`` for that fitness (generic; give one for your robot).
    :param frame_skip: physics steps per env step.
    :param task_id: the task's id in run names; defaults to the file's stem.
    :param healthy_z_range: (low, high): end an episode when ``healthy_body`` (default: the robot's
        root body) leaves this height range, like gymnasium's walkers; None never ends early.
    """
    from rewardgen.tasks.applicability import check_applies
    from rewardgen.tasks.fitness import DEFAULT_SUCCESS, FITNESS_FUNCTIONS, FitnessError, parse_fitness

    file = Path(path).expanduser()
    if not file.is_file():
        raise TaskError(f"MJCF file not found: {file}")
    file = file.resolve()
    try:
        model = mujoco.MjModel.from_xml_path(str(file))
    except (ValueError, OSError) as exc:
        raise TaskError(f"cannot load MJCF model {file}: {flatten(exc) or 'unknown error'}") from None
    if model.nu == 0:
        raise TaskError(f"MJCF model {file.name} has no actuators: a policy needs actuators to drive the robot")
    if not isinstance(describe, str) or not describe.strip():
        raise TaskError("describe the goal in words (e.g. 'make it walk forward')")
    for name, value in (("episode_length", episode_length), ("default_steps", default_steps),
                        ("frame_skip", frame_skip), ("eval_episodes", eval_episodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise TaskError(f"{name} must be a positive integer, got {value!r}")
    spec = parse_fitness(fitness) if isinstance(fitness, str) else dict(fitness)
    spec = {"name": spec.get("name"), "params": dict(spec.get("params") or {})}
    env_kwargs: dict[str, Any] = {}
    if healthy_z_range is not None:
        lo, hi = (float(v) for v in healthy_z_range)
        if not lo < hi:
            raise TaskError(f"healthy_z_range must be (low, high) with low < high, got {healthy_z_range!r}")
        env_kwargs["healthy_z_range"] = [lo, hi]
        if healthy_body is not None:
            env_kwargs["healthy_body"] = healthy_body
    elif healthy_body is not None:
        raise TaskError("healthy_body needs healthy_z_range")
    _fill_rest_height(spec, model)
    if spec["name"] not in FITNESS_FUNCTIONS:
        raise FitnessError(f"unknown fitness {spec['name']!r}; available: {', '.join(FITNESS_FUNCTIONS)}")
    if success_threshold is None:
        success_threshold = DEFAULT_SUCCESS.get(spec["name"], 0.0)
    task = Task(
        id=task_id or _slug(file.stem), description=describe.strip(), episode_length=episode_length,
        fitness=spec, success_threshold=float(success_threshold), default_steps=default_steps,
        mjcf=str(file), frame_skip=frame_skip, reset_noise=float(reset_noise), eval_episodes=eval_episodes,
        env_kwargs=env_kwargs, source=str(file), baseline="sparse")
    try:
        schema = task.schema
    except ValueError as exc:
        raise TaskError(str(exc).splitlines()[0]) from None
    if healthy_body is not None and healthy_body not in schema.bodies:
        raise TaskError(f"healthy_body: no body named {healthy_body!r}; bodies are: {', '.join(schema.bodies)}")
    try:
        check_applies(spec, task.model, schema, terminates=healthy_z_range is not None)
    except FitnessError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise FitnessError(f"fitness {spec['name']!r}: {exc}") from None
    return task


def _fill_rest_height(spec: dict[str, Any], model: mujoco.MjModel) -> None:
    """``jump_height`` without ``rest``: the body's height in the model's initial pose."""
    if spec["name"] == "jump_height" and "rest" not in spec["params"] and isinstance(spec["params"].get("body"), str):
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, spec["params"]["body"])
        if body > 0:
            data = mujoco.MjData(model)
            mujoco.mj_forward(model, data)
            spec["params"]["rest"] = round(float(data.xpos[body][2]), 4)


def with_overrides(task: Task, *, fitness: str | None = None, success_threshold: float | None = None,
                   describe: str | None = None, terminates: bool = True) -> tuple[Task, list[str]]:
    """``task`` with another trusted fitness, success threshold or goal (``evolve --task T --fitness ...``).

    A fitness is checked the way a brought robot's is (names exist, it can measure something on this
    model); with a fitness of another kind and no ``success_threshold``, the threshold becomes that
    fitness's default (the task's was for its own fitness). Returns the new task and one line per
    change, for the user. Raises TaskError / FitnessError with one-line messages.

    :param terminates: whether the task's episodes can end early (``alive_fraction`` needs it).
    """
    from rewardgen.tasks.applicability import check_applies
    from rewardgen.tasks.fitness import DEFAULT_SUCCESS, FitnessError, format_fitness, parse_fitness

    changes: dict[str, Any] = {}
    notes: list[str] = []
    if describe is not None:
        if not describe.strip():
            raise TaskError("--describe: describe the goal in words (e.g. 'make it walk forward')")
        changes["description"] = describe.strip()
        notes.append(f"goal: {describe.strip()!r} instead of the task's own description")
    if fitness is not None:
        spec = parse_fitness(fitness)
        spec = {"name": spec.get("name"), "params": dict(spec.get("params") or {})}
        _fill_rest_height(spec, task.model)
        try:
            check_applies(spec, task.model, task.schema, terminates=terminates)
        except (KeyError, TypeError, ValueError) as exc:
            raise FitnessError(f"fitness {spec['name']!r}: {exc}") from None
        if spec == task.fitness:  # the task's own fitness, spelled out: nothing changes
            fitness = None
    if fitness is not None:
        changes["fitness"] = spec
        notes.append(f"trusted fitness: {format_fitness(spec)} instead of the task's {format_fitness(task.fitness)}")
        if success_threshold is None and spec["name"] != task.fitness.get("name"):
            success_threshold = DEFAULT_SUCCESS.get(spec["name"], 0.0)
            notes.append(f"success threshold: {success_threshold:g}, {spec['name']}'s default (give "
                         "--success-threshold to choose)")
            changes["success_threshold"] = float(success_threshold)
            success_threshold = None
    if success_threshold is not None:
        changes["success_threshold"] = float(success_threshold)
        notes.append(f"success threshold: {float(success_threshold):g} instead of the task's "
                     f"{task.success_threshold:g}")
    if not changes:
        return task, []
    from dataclasses import replace

    return replace(task, **changes), notes


def write_task_yaml(task: Task, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save ``task`` as a task file (``rewardgen task new``); ``load_task_file`` reads it back.

    An MJCF path inside the YAML's folder is written relative to it (so the pair can be moved
    together); any other path stays absolute. Refuses to replace an existing file unless ``overwrite``.
    """
    out = Path(path).expanduser().resolve()
    if out.suffix not in (".yaml", ".yml"):
        raise TaskError(f"a task file must end in .yaml or .yml, got {out.name}")
    if out.exists() and not overwrite:
        raise TaskError(f"{out} already exists; choose another name or remove it")
    raw = task.to_dict()
    ordered: dict[str, Any] = {"id": raw["id"], "description": raw["description"]}
    if task.env_id:
        ordered["env"] = task.env_id
    else:
        mjcf = Path(task.mjcf or "")
        try:
            ordered["mjcf"] = str(mjcf.relative_to(out.parent))
        except ValueError:
            ordered["mjcf"] = str(mjcf)
    for key in ("episode_length", "fitness", "success_threshold", "default_steps", "frame_skip", "reset_noise",
                "eval_episodes", "baseline"):
        ordered[key] = raw[key]
    if raw["env_kwargs"]:
        ordered["env_kwargs"] = raw["env_kwargs"]
    if raw.get("ppo"):
        ordered["ppo"] = raw["ppo"]
    header = (f"# rewardgen task file. Use it with: rewardgen evolve --task path/to/{out.name}\n"
              f"# Every field is described in docs/tasks.md.\n")
    body = yaml.safe_dump(ordered, sort_keys=False, default_flow_style=None, width=100)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(header + body)
    os.replace(tmp, out)
    return out
