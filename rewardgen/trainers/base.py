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
from typing import Any

import numpy as np
import torch

from rewardgen.contract.policy import PolicyExport, load_npz
from rewardgen.contract.reward import ContractError, RewardFn, check_output, nonfinite_error
from rewardgen.contract.state import State
from rewardgen.sandbox.confined import ConfinedReward
from rewardgen.stats import pearson
from rewardgen.tasks.fitness import EpisodeFitness, Fitness
from rewardgen.tasks.spec import Task

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class TrainConfig:
    """What to train for.

    :param steps: environment steps summed over all worlds.
    :param seed: seeds the simulator resets, the policy initialisation and the action noise.
    :param num_envs: worlds simulated in one batch (a trainer may use its own default instead).
    :param device: torch device for the policy and the reward ("cpu" or "cuda").
    :param resume: trainer state from a previous slice (``TrainOutput.resume_state`` of
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
    payload: dict[str, Any] = {"__header__": np.frombuffer(meta, dtype=np.uint8)}
    payload |= {k: np.asarray(v) for k, v in arrays.items()}
    np.savez(buf, **payload)
    return buf.getvalue()


def unpack_resume_state(raw: bytes, trainer: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """``(header, arrays)`` from ``pack_resume_state`` bytes; ResumeStateError when malformed or
    made by another trainer (``trainer``). Loading never unpickles."""
    import json

    if not isinstance(raw, (bytes, bytearray)) or len(raw) > MAX_RESUME_BYTES:
        raise ResumeStateError("resume state must be bytes of at most 256 MiB")
    try:
        arrays = dict(load_npz(bytes(raw), MAX_RESUME_BYTES))
        header = json.loads(bytes(arrays.pop("__header__")).decode())
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ResumeStateError(f"not a resume state: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != RESUME_FORMAT:
        raise ResumeStateError("not a rewardgen resume state (wrong header)")
    if trainer is not None and header.get("trainer") != trainer:
        raise ResumeStateError(f"resume state was made by trainer {header.get('trainer')!r}, not {trainer!r}")
    return header, arrays


@dataclass
class TrainOutput:
    """What one training returns to its worker.

    :param policy: the trained actor (plain arrays). :param stats: the reward's component books.
    :param env_steps: env-steps trained in all, earlier slices included; ``slice_env_steps``: by this call.
    :param seconds: training time (simulator built to last update).
    :param resumed_from: env-steps of the state it continued from (0: from scratch).
    :param resume_state: the trainer's state to continue from later (``TrainConfig.resume``), or None.
    :param losses: the last update's losses; ``num_envs``: worlds simulated; ``timing``: where time went.
    :param env_reward: it trained on the env's own reward.
    """

    policy: PolicyExport
    stats: dict
    env_steps: int
    seconds: float
    slice_env_steps: int
    resumed_from: int = 0
    resume_state: bytes | None = None
    losses: dict[str, float] | None = None
    num_envs: int | None = None
    timing: dict[str, float] = field(default_factory=dict)
    env_reward: bool = False

    @property
    def env_steps_per_second(self) -> float:
        return self.slice_env_steps / max(self.seconds, 1e-9)

    def report(self) -> dict[str, Any]:
        """The JSON-ready facts the worker sends with its result (``result.extra`` on the wire)."""
        out: dict[str, Any] = {"resumed_from": self.resumed_from, "slice_env_steps": self.slice_env_steps,
                               "env_steps_per_second": self.env_steps_per_second}
        if self.losses is not None:
            out["losses"] = dict(self.losses)
        if self.num_envs is not None:
            out["num_envs"] = self.num_envs
        if self.timing:
            out["timing"] = dict(self.timing)
        if self.env_reward:
            out["env_reward"] = True
        return out


class Trainer(ABC):
    name: str = "trainer"

    @abstractmethod
    def train(self, task: Task, reward: BatchReward, config: TrainConfig, progress: ProgressFn) -> TrainOutput:
        """Train a policy on ``task`` with ``reward`` replacing the env's own reward."""


class TrainingStats:
    """Component and episode statistics at about ``points`` moments through training.

    Reflection shows the proposer how each component evolved (Eureka-style), the episode length,
    the worker-side fitness curve, and how well the candidate's episode return tracks fitness.
    Per-step sums, minima and maxima are accumulated as tensors on the reward's device and read
    back only by ``summary``.
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

    def record_step(self, step: int, names: tuple[str, ...], values: torch.Tensor) -> None:
        """One step's values: ``values[k]`` (shape (len(names), worlds)) is component ``names[k]``."""
        bucket = self._bucket(step)
        bucket["last_step"] = step
        acc = bucket["components"].get(names)
        v = values.to(torch.float64)
        s, lo, hi = v.sum(dim=1), v.amin(dim=1), v.amax(dim=1)
        if acc is None:
            bucket["components"][names] = [s, v.shape[1], lo, hi]
        else:
            acc[0] = acc[0] + s
            acc[1] += v.shape[1]
            acc[2] = torch.minimum(acc[2], lo)
            acc[3] = torch.maximum(acc[3], hi)

    def record_episode(self, step: int, length: int, episode_return: float, fitness: float,
                       ended_early: bool = False) -> None:
        """One episode that ended at ``step``; ``ended_early``: the env's termination rules ended it
        before the time limit."""
        self._bucket(step)["episodes"].append((length, episode_return, fitness, float(ended_early)))
        self.episode_returns.append(episode_return)
        self.episode_fitness.append(fitness)

    def summary(self) -> dict:
        components: dict[str, list[dict]] = {}
        episodes: list[dict] = []
        for b in self._buckets:
            merged: dict[str, list[float]] = {}
            for names, (s, n, lo, hi) in b["components"].items():
                for name, si, li, hi_ in zip(names, s.tolist(), lo.tolist(), hi.tolist()):
                    m = merged.setdefault(name, [0.0, 0, math.inf, -math.inf])
                    m[0] += si
                    m[1] += n
                    m[2], m[3] = min(m[2], li), max(m[3], hi_)
            for name, (s, n, lo, hi) in merged.items():
                components.setdefault(name, []).append(
                    {"step": b["last_step"], "mean": s / max(n, 1), "min": lo, "max": hi})
            if b["episodes"]:
                arr = np.asarray(b["episodes"], dtype=float)
                episodes.append({"step": b["last_step"], "episodes": len(arr), "length": float(arr[:, 0].mean()),
                                 "return": float(arr[:, 1].mean()), "fitness": float(arr[:, 2].mean()),
                                 "ended_early": float(arr[:, 3].mean())})
        total = components.pop("__total__", [])
        return {
            "components": components,
            "total_reward": total,
            "episodes": episodes,
            "num_episodes": len(self.episode_returns),
            "reward_fitness_correlation": pearson(self.episode_returns, self.episode_fitness),
        }


class BatchReward:
    """Calls the candidate on a State batch, checks the contract, and keeps per-episode books.

    The worker-side fitness (``fitness``) is computed before the reward runs, from the same State,
    so a reward that writes into its State tensors cannot move it. It feeds reflection only;
    selection uses the trusted evaluator's fitness.

    Everything per step stays on the State's device (returns, lengths, fitness aggregation, the
    component statistics and the non-finite counts): nothing is read back to the host until
    ``flush``, which a trainer calls once per rollout (and which raises the ``ContractError`` of a
    reward that produced NaN or inf since the last flush). ``summary`` flushes first.
    """

    def __init__(self, fn: RewardFn, fitness: Fitness, stats: TrainingStats, num_envs: int, horizon: int):
        self.fn = fn
        self.fitness = fitness
        self.stats = stats
        self.horizon = horizon
        self._prefetched: State | None = None
        self._size(num_envs, torch.device("cpu"))

    def _size(self, num_envs: int, device: torch.device) -> None:
        self.n, self.device = int(num_envs), device
        self._returns = torch.zeros(self.n, dtype=torch.float64, device=device)
        self._fit = EpisodeFitness(self.fitness, self.n, self.horizon, device)  # its count: episode lengths
        self._closed: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._bad: torch.Tensor | None = None  # non-finite counts per row of ``_labels``
        self._labels: tuple[str, ...] = ()

    def prefetch(self, state: State) -> None:
        """Let a reward that runs elsewhere (the jail: ``submit``/``collect``) start on ``state`` now; the
        call for the same State collects its answer. Changes no number: calls stay in order."""
        if self._prefetched is None and isinstance(self.fn, ConfinedReward):
            self.fn.submit(state)
            self._prefetched = state

    def __call__(self, state: State, step: int) -> torch.Tensor:
        """The candidate's total reward for this step: float32, shape (worlds,), on the State's device."""
        device = state.qpos.device
        if state.num_worlds != self.n or device != self.device:  # the trainer chose its own batch
            self._size(state.num_worlds, device)
        self._fit.add(self.fitness.per_step(state))
        if self._prefetched is not None:
            if self._prefetched is not state:
                raise RuntimeError("BatchReward called for another State than the one prefetched")
            self._prefetched = None
            assert isinstance(self.fn, ConfinedReward)  # prefetch submitted it there
            answer = self.fn.collect()
        else:
            answer = self.fn(state)
        total, components = check_output(answer, self.n, finite=False)
        names = ("__total__", *components)
        try:
            values = torch.stack([total, *components.values()]).to(device)
        except RuntimeError as exc:  # components on different devices than each other
            raise ContractError(f"reward tensors must be on the State's device ({device}): {exc}") from None
        bad = (~torch.isfinite(values)).sum(dim=1)
        if self._bad is None or names != self._labels:
            self._check_finite()
            self._labels, self._bad = names, bad
        else:
            self._bad = self._bad + bad
        self.stats.record_step(step, names, values)
        self._returns += values[0]
        return values[0]

    def end_episodes(self, done: torch.Tensor | np.ndarray, step: int) -> None:
        """Close the episodes of worlds flagged ``done`` (call after ``__call__`` for that step)."""
        done = torch.as_tensor(done, device=self.device).to(torch.bool)
        if self.device.type == "cpu" and not bool(done.any()):
            return  # most steps end no episode; asking costs a device sync on a GPU, nothing here
        self._closed.append((step, done, self._returns.clone(), self._fit.count.clone(), self._fit.value()))
        self._returns.masked_fill_(done, 0.0)
        self._fit.close(done)

    def books(self) -> dict[str, np.ndarray]:
        """Each world's open episode as booked so far (return, length, fitness accumulators), to carry
        into a resumed slice with ``restore_books``; call after a ``flush``."""
        fit = self._fit
        return {"returns": self._returns.cpu().numpy(), "count": fit.count.cpu().numpy(),
                "total": fit.total.cpu().numpy(), "best": fit.best.cpu().numpy(), "ring": fit.ring.cpu().numpy()}

    def restore_books(self, books: dict[str, np.ndarray], device: torch.device | str = "cpu") -> bool:
        """Continue the open episodes a previous slice booked (``books``), for worlds that continue
        mid-episode: without them, an episode that straddles the slices would be recorded with only
        its steps after the resume (short "episodes" that never happened). False when ``books`` does
        not fit this batch (then nothing changes)."""
        n = int(np.asarray(books.get("returns", ())).shape[0]) if "returns" in books else 0
        tail = max(int(self.fitness.tail), 1)
        shapes = {"returns": (n,), "count": (n,), "total": (n,), "best": (n,), "ring": (n, tail)}
        if n == 0 or any(np.asarray(books.get(k)).shape != shape for k, shape in shapes.items()):
            return False
        self._size(n, torch.device(device))
        dev = self.device
        self._returns = torch.as_tensor(np.asarray(books["returns"], dtype=np.float64), device=dev)
        fit = self._fit
        fit.count = torch.as_tensor(np.asarray(books["count"], dtype=np.int64), device=dev)
        for key in ("total", "best", "ring"):
            setattr(fit, key, torch.as_tensor(np.asarray(books[key], dtype=np.float64), device=dev))
        return True

    def flush(self) -> None:
        """Record the episodes closed since the last flush; raise if a reward value was NaN or inf."""
        self._check_finite()
        if not self._closed:
            return
        steps = [c[0] for c in self._closed]
        done, returns, lengths, fits = (torch.stack(col).cpu().numpy() for col in zip(*(c[1:] for c in self._closed)))
        self._closed = []
        for t, i in zip(*np.nonzero(done)):
            length = int(lengths[t, i])
            self.stats.record_episode(steps[t], length, float(returns[t, i]), float(fits[t, i]), length < self.horizon)

    def _check_finite(self) -> None:
        if self._bad is None:
            return
        labels = ["total" if k == "__total__" else f"component {k!r}" for k in self._labels]
        err = nonfinite_error(labels, self._bad.tolist(), self.n)
        self._bad = torch.zeros_like(self._bad)
        if err is not None:
            raise err

    def summary(self) -> dict:
        """``TrainingStats.summary`` after a ``flush``."""
        self.flush()
        return self.stats.summary()
