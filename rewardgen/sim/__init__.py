"""Batched simulation: N worlds of a task stepped together, and the State a reward sees of each.

Two backends with one interface (``protocol.BatchSimulator``): ``cpu.BatchSim`` (MuJoCo's native rollout
threads) and ``warp.WarpSim`` (MuJoCo Warp on a GPU, or Warp's CPU device for tests). Both reproduce
the gymnasium env's rules (observation, termination, env reward, resets) in batch, from one rules
class per env (``rules``), written once for both. ``termination`` states a task's termination rules
for prompts; ``episode`` is the canonical one-env loop that trusted evaluation and trajectories share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rewardgen.sim.protocol import BatchSimulator
from rewardgen.tasks.spec import Task

#: the simulators ``--sim`` accepts
SIMS = ("cpu", "warp")


@dataclass
class StepResult:
    """What one ``step`` of a batched simulator returns; arrays (numpy, or tensors on WarpSim's
    device) have leading dimension N.

    ``obs`` is the observation to act on next (after auto-reset for finished worlds);
    ``final_obs`` is every world's observation before any reset (use it to bootstrap truncations).
    ``env_reward`` is the gymnasium env's own reward for this step.
    """

    obs: Any
    env_reward: Any
    terminated: Any
    truncated: Any
    final_obs: Any

    @property
    def done(self) -> Any:
        return self.terminated | self.truncated


def make_sim(task: Task, num_worlds: int, seed: int = 0, sim: str = "cpu", device: str = "cpu",
             **kwargs: Any) -> BatchSimulator:
    """The batched simulator a trainer steps: ``BatchSim`` (``sim="cpu"``, MuJoCo's native rollout
    threads; ``device`` is ignored) or ``WarpSim`` (``sim="warp"`` on Warp ``device``).

    ``kwargs`` go to the chosen class (``nthread`` for BatchSim; ``output``, ``graph``, ``nconmax``,
    ``njmax`` for WarpSim; ``nthread`` is accepted and ignored by WarpSim).
    """
    if sim == "cpu":
        from rewardgen.sim.cpu import BatchSim

        kwargs = {k: v for k, v in kwargs.items() if k in ("nthread", "world_seeds")}
        return BatchSim(task, num_worlds, seed=seed, **kwargs)
    if sim == "warp":
        from rewardgen.sim.warp import WarpSim  # imported on use: Warp loads native code

        return WarpSim(task, num_worlds, seed=seed, device=device, **kwargs)
    raise ValueError(f"unknown simulator {sim!r}; choose one of: {', '.join(SIMS)}")
