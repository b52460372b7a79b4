"""Trainers turn a reward into a policy; ``get_trainer(name, ...)`` is the registry.

``base`` holds the interface (``Trainer``, ``TrainConfig``, ``TrainOutput``) and the books every
trainer keeps (``TrainingStats``, ``BatchReward``); ``ppo`` is rewardgen's own batched PPO, read top to
bottom from its parts (``agent``, ``normalize``, ``rollout``, ``gae``, ``ppo_loss``), ``sb3``
Stable-Baselines3's; ``worker`` is the trusted process that drives one of them against a jailed reward.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardgen.trainers.base import Trainer

__all__ = ["TRAINERS", "Trainer", "get_trainer"]


def __getattr__(name: str) -> Any:
    """``Trainer`` is imported on first use: it needs torch, which the orchestrator (that only reads
    ``TRAINERS``) should not pay for on a command's critical path."""
    if name == "Trainer":
        from rewardgen.trainers.base import Trainer

        return Trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: the names ``--trainer`` accepts
TRAINERS = ("ppo", "sb3")


def get_trainer(name: str, env_reward: bool = False, task_ppo: dict[str, Any] | None = None,
                num_envs: int | None = None, sim: str = "cpu", device: str | None = None,
                cpu_threads: int | None = None) -> Trainer:
    """The trainer called ``name``.

    :param env_reward: train on the env's own reward (trusted code) instead of a candidate's.
    :param task_ppo: the task's PPO settings (``Task.ppo``), over PPO's defaults.
    :param num_envs: batched worlds, over the task's; ``sim``/``device``: the simulator backend.
    :param cpu_threads: this job's share of the machine's cores (simulation threads; PPO only).
    """
    if name == "ppo":
        from rewardgen.trainers.ppo import PPOHyperparams, PPOTrainer  # imported on use: torch-heavy

        hp = PPOHyperparams(**(task_ppo or {}))
        if num_envs:
            hp = replace(hp, num_envs=int(num_envs))
        if sim != "cpu":
            hp = replace(hp, sim=str(sim), sim_device=device)
        if cpu_threads:
            threads = max(1, int(cpu_threads))
            hp = replace(hp, sim_threads=threads, use_helper_thread=threads >= 2)
        return PPOTrainer(hp, env_reward=env_reward)
    if name == "sb3":
        from rewardgen.trainers.sb3 import SB3Trainer

        return SB3Trainer(env_reward=env_reward)
    raise ValueError(f"unknown trainer {name!r}; available: {', '.join(TRAINERS)}")
