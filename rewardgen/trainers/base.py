"""The trainer interface, and the per-step bookkeeping every trainer shares.

A trainer runs inside a worker process, next to the candidate reward. It calls the reward once per
environment step on the whole batch of worlds (through ``BatchReward``), trains a policy, and
returns the deterministic actor as a ``PolicyExport`` plus the statistics reflection needs.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from rewardgen.candidate import RewardFn, check_output
from rewardgen.fitness import Fitness
from rewardgen.policy import PolicyExport
from rewardgen.state import State
from rewardgen.tasks import Task

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class TrainConfig:
    """What to train for.

    :param steps: environment steps summed over all worlds.
    :param seed: seeds the simulator resets, the policy initialisation and the action noise.
    :param num_envs: worlds simulated in one batch (a trainer may use its own default instead).
    :param device: torch device for the policy and the reward ("cpu" or "cuda").
    :param resume: trainer state from a previous slice (``TrainOutput.extra["resume_state"]`` of
        the same trainer, task and batch size): training continues from it, for ``steps`` more
        env-steps, instead of starting from scratch. See ``pack_resume_state``.
    """

    steps: int
    seed: int = 0
    num_envs: int = 8
    device: str = "cpu"
    resume: bytes | None = None


RESUME_FORMAT = "rewardgen-resume"
MAX_RESUME_BYTES = 256 * 1024 * 1024


class ResumeStateError(ValueError):
    """Resume bytes that are not a trainer state this trainer can continue from."""


def pack_resume_state(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """A trainer's resumable state as bytes without pickles: an npz of arrays plus a JSON header.

    ``header`` must be JSON-able (it is stored as UTF-8 bytes in the ``__header__`` array);
    ``arrays`` keys are free-form names (``policy/<param>``, ``optim/<i>/exp_avg`` ...).
    """
    import io
    import json

    buf = io.BytesIO()
    meta = json.dumps({"format": RESUME_FORMAT, "version": 1, **header}).encode()
    np.savez(buf, __header__=np.frombuffer(meta, dtype=np.uint8), **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def unpack_resume_state(raw: bytes, trainer: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """``(header, arrays)`` from ``pack_resume_state`` bytes; ResumeStateError when malformed or
    made by another trainer (``trainer``). Loading never unpickles."""
    import io
    import json

    if not isinstance(raw, (bytes, bytearray)) or len(raw) > MAX_RESUME_BYTES:
        raise ResumeStateError("resume state must be bytes of at most 256 MiB")
    try:
        with np.load(io.BytesIO(bytes(raw)), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        header = json.loads(bytes(arrays.pop("__header__")).decode())
    except (ValueError, OSError, EOFError, KeyError, UnicodeDecodeError) as exc:
        raise ResumeStateError(f"not a resume state: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != RESUME_FORMAT:
        raise ResumeStateError("not a rewardgen resume state (wrong header)")
    if trainer is not None and header.get("trainer") != trainer:
        raise ResumeStateError(f"resume state was made by trainer {header.get('trainer')!r}, not {trainer!r}")
    return header, arrays


@dataclass
class TrainOutput:
    policy: PolicyExport
    stats: dict
    env_steps: int
    seconds: float
    extra: dict = field(default_factory=dict)


class Trainer(ABC):
    name: str = "trainer"

    @abstractmethod
    def train(self, task: Task, reward: "BatchReward", config: TrainConfig, progress: ProgressFn) -> TrainOutput:
        """Train a policy on ``task`` with ``reward`` replacing the env's own reward."""


def get_trainer(name: str) -> Trainer:
    if name == "sb3":
        from rewardgen.trainers.sb3 import SB3Trainer

        return SB3Trainer()
    if name == "ppo":
        from rewardgen.trainers.ppo import PPOTrainer

        return PPOTrainer()
    raise ValueError(f"unknown trainer {name!r}; available: ppo, sb3")


class TrainingStats:
    """Component and episode statistics at about ``points`` moments through training.

    Reflection shows the proposer how each component evolved (Eureka-style), the episode length,
    the worker-side fitness curve, and how well the candidate's episode return tracks fitness.
    """

    def __init__(self, total_steps: int, points: int = 10):
        self.total_steps = max(int(total_steps), 1)
        self.points = points
        self._buckets: list[dict] = [self._empty() for _ in range(points)]
        self.episode_returns: list[float] = []
        self.episode_fitness: list[float] = []

    @staticmethod
    def _empty() -> dict:
        return {"components": {}, "episodes": [], "last_step": 0}

    def _bucket(self, step: int) -> dict:
        return self._buckets[min(self.points - 1, step * self.points // self.total_steps)]

    def record_step(self, step: int, total: torch.Tensor, components: dict[str, torch.Tensor]) -> None:
        bucket = self._bucket(step)
        bucket["last_step"] = step
        for name, value in (("__total__", total), *components.items()):
            acc = bucket["components"].setdefault(name, [0.0, 0, math.inf, -math.inf])
            acc[0] += float(value.sum())
            acc[1] += int(value.numel())
            acc[2] = min(acc[2], float(value.min()))
            acc[3] = max(acc[3], float(value.max()))

    def record_episode(self, step: int, length: int, episode_return: float, fitness: float) -> None:
        self._bucket(step)["episodes"].append((length, episode_return, fitness))
        self.episode_returns.append(episode_return)
        self.episode_fitness.append(fitness)

    def summary(self) -> dict:
        components: dict[str, list[dict]] = {}
        episodes: list[dict] = []
        for b in self._buckets:
            for name, (s, n, lo, hi) in b["components"].items():
                components.setdefault(name, []).append(
                    {"step": b["last_step"], "mean": s / max(n, 1), "min": lo, "max": hi})
            if b["episodes"]:
                arr = np.asarray(b["episodes"], dtype=float)
                episodes.append({"step": b["last_step"], "episodes": len(arr), "length": float(arr[:, 0].mean()),
                                 "return": float(arr[:, 1].mean()), "fitness": float(arr[:, 2].mean())})
        total = components.pop("__total__", [])
        return {
            "components": components,
            "total_reward": total,
            "episodes": episodes,
            "num_episodes": len(self.episode_returns),
            "reward_fitness_correlation": pearson(self.episode_returns, self.episode_fitness),
        }


def pearson(a: list[float], b: list[float]) -> float | None:
    """Pearson correlation, or None when undefined (fewer than 3 points or no variance)."""
    if len(a) < 3:
        return None
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.std() < 1e-12 or y.std() < 1e-12:
        return None
    return float(np.corrcoef(x, y)[0, 1])


class BatchReward:
    """Calls the candidate on a State batch, checks the contract, and keeps per-episode books.

    The worker-side fitness (``fitness``) is computed before the reward runs, from the same State,
    so a reward that writes into its State tensors cannot move it. It feeds reflection only;
    selection uses the trusted evaluator's fitness.
    """

    def __init__(self, fn: RewardFn, fitness: Fitness, stats: TrainingStats, num_envs: int, horizon: int):
        self.fn = fn
        self.fitness = fitness
        self.stats = stats
        self.horizon = horizon
        self._size(num_envs)

    def _size(self, num_envs: int) -> None:
        self._returns = np.zeros(num_envs)
        self._fit_values: list[list[float]] = [[] for _ in range(num_envs)]
        self._lengths = np.zeros(num_envs, dtype=np.int64)

    def __call__(self, state: State, step: int) -> np.ndarray:
        if state.num_worlds != len(self._returns):  # the trainer chose its own batch size
            self._size(state.num_worlds)
        fit = self.fitness.per_step(state).detach().cpu().numpy()
        total, components = check_output(self.fn(state), state.num_worlds)
        self.stats.record_step(step, total, components)
        rewards = total.cpu().numpy().astype(np.float64)
        self._returns += rewards
        self._lengths += 1
        for i, v in enumerate(fit):
            self._fit_values[i].append(float(v))
        return rewards

    def end_episodes(self, done: np.ndarray, step: int) -> None:
        """Close the episodes of worlds flagged ``done`` (call after ``__call__`` for that step)."""
        for i in np.flatnonzero(done):
            fit = self.fitness.episode_value(self._fit_values[i], self.horizon)
            self.stats.record_episode(step, int(self._lengths[i]), float(self._returns[i]), fit)
            self._returns[i] = 0.0
            self._lengths[i] = 0
            self._fit_values[i] = []
