"""One training of a reward, then its trusted evaluation: the step evolve's schedule and ``final`` share.

Evolve trains a candidate in slices (rungs) and ``final`` retrains the best reward and the baselines
with several seeds; both build the worker job, bound it, keep what the worker returned and measure
the policy the same way, here. The policy's trusted fitness comes from the evaluator process
(``rewardgen.sandbox.trusted.run_trusted_evaluation``), never from the worker that trained it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardgen.contract.job import SmokeCheck, WorkerJob
from rewardgen.proposers.taskfacts import TrainingPlan
from rewardgen.run.executors import default_candidate_workers
from rewardgen.procs import WorkerLimits, WorkerResult
from rewardgen.procs.trusted import run_trusted_evaluation
from rewardgen.contract.policy import MAX_POLICY_BYTES
from rewardgen.runfiles import RunFiles
from rewardgen.store import POLICY_FILE, TRAIN_LOG
from rewardgen.tasks.spec import Task



def ppo_worlds(steps: int, most: int = 128) -> int:
    """Worlds per PPO batch for a budget: enough updates (about 100 of 16 steps each) on small budgets,
    the trainer's full batch (128 worlds, or the task's own ``ppo.num_envs``) on large ones."""
    return int(min(most, max(min(16, most), 2 ** round(math.log2(max(steps, 1) / (16 * 100))))))


@dataclass(frozen=True)
class TrainingSetup:
    """How every training of a run is done (from the run's config), whatever the reward.

    :param task: the task. :param trainer: ``ppo`` or ``sb3`` (already the effective one).
    :param budget: the run's full training budget in env-steps (decides PPO's worlds, so a reward is
        trained alike in evolve and in ``final``).
    :param num_envs: worlds per batch, over the trainer's choice. :param sim, device: the simulator.
    :param gpu_memory_fraction: each worker's share of a shared GPU's memory.
    :param timeout: wall-clock limit per training; None: 120 s plus 1 s per 100 env-steps.
    :param memory_gb: address-space limit of each worker.
    """

    task: Task
    trainer: str
    budget: int
    num_envs: int | None = None
    sim: str = "cpu"
    device: str = "cpu"
    gpu_memory_fraction: float | None = None
    timeout: float | None = None
    memory_gb: float = 8.0

    def job(self, source: str | None, seed: int, steps: int, cpu_threads: int | None = None,
            resume: str | None = None, check: SmokeCheck | None = None) -> WorkerJob:
        """The worker job training ``source`` (None: the env's own reward) for ``steps`` env-steps."""
        num_envs = self.num_envs
        if num_envs is None and self.trainer == "ppo":
            num_envs = ppo_worlds(self.budget, int(self.task.ppo.get("num_envs", 128)))
        return WorkerJob(mode="train", task=self.task.to_dict(), source=source, env_reward=source is None,
                         seed=int(seed), steps=int(steps), trainer=self.trainer, cpu_threads=cpu_threads,
                         num_envs=num_envs, sim=self.sim, device=self.device if self.sim != "cpu" else "cpu",
                         gpu_memory_fraction=self.gpu_memory_fraction if self.sim != "cpu" else None,
                         resume=resume, check=check)

    def worlds(self) -> int:
        """Worlds a training of this setup simulates in parallel (what ``job`` and the trainer decide)."""
        if self.trainer == "ppo":
            return int(self.num_envs or ppo_worlds(self.budget, int(self.task.ppo.get("num_envs", 128))))
        return int(self.num_envs or 8)

    def plan(self, samples: int, schedule: str, eval_episodes: int | None = None) -> TrainingPlan:
        """What a proposer is told about this training and the run's schedule (``TrainingPlan``), from
        the trainer's and the schedule's own settings."""
        from rewardgen.run.schedule import describe_schedule
        from rewardgen.trainers import get_trainer

        worlds = self.worlds()
        if self.trainer == "ppo":
            from rewardgen.trainers.ppo import describe_ppo

            hp = get_trainer("ppo", task_ppo=self.task.ppo, num_envs=worlds).hp
            lines, batch = describe_ppo(hp), worlds * hp.rollout_steps
        else:
            from rewardgen.trainers.sb3 import describe_sb3, sb3_rollout

            lines, batch = describe_sb3(worlds), worlds * sb3_rollout(worlds)
        env = self.task.make_env()
        try:
            observation = int(env.observation_space.shape[0])
        finally:
            env.close()
        return TrainingPlan(steps=self.budget, samples=samples, worlds=worlds, trainer_lines=lines,
                            schedule=schedule, schedule_lines=describe_schedule(samples, self.budget, schedule, batch),
                            eval_episodes=int(eval_episodes or self.task.eval_episodes), training_seeds=1,
                            observation_size=observation)

    def limits(self, steps: int) -> WorkerLimits:
        """The worker's limits for a training of ``steps`` env-steps."""
        wall = float(self.timeout or 120.0 + steps / 100.0)
        return WorkerLimits(wall_seconds=wall, memory_bytes=int(self.memory_gb * 1024**3))


def training_failure(res: WorkerResult) -> tuple[str, str] | None:
    """``(status, error)`` when the training gave no usable policy, else None."""
    if not res.ok:
        return res.stage, res.error or "the worker failed"
    if res.payload is None:
        return "protocol", "the worker returned no policy"
    return None


def save_training_output(files: RunFiles, directory: Path, res: WorkerResult, log_header: str = "",
                         append: bool = False) -> None:
    """Write the worker's log (``train.log``, appended to for a continued training) and, when it
    returned one, its policy (``policy.npz``), each atomically, in the run ``files``."""
    log_path = directory / TRAIN_LOG
    before = files.read_text(log_path, errors="replace") if append and files.is_file(log_path) else ""
    files.write_text(log_path, before + log_header + res.log)
    if res.ok and res.payload is not None:
        files.write_bytes(directory / POLICY_FILE, res.payload)


def trusted_fitness(task: Task, files: RunFiles, directory: Path, episodes: int | None,
                    seed: int) -> tuple[dict[str, Any] | None, str | None]:
    """Evaluate ``directory/policy.npz`` of the run ``files`` in the trusted evaluator:
    ``(evaluation, None)`` or ``(None, error)``."""
    try:
        policy = files.read_bytes(directory / POLICY_FILE, MAX_POLICY_BYTES)
        return run_trusted_evaluation(task, policy, episodes, seed), None
    except (RuntimeError, ValueError, OSError) as exc:
        return None, str(exc)


def training_setup(task: Task, config: Any, trainer: str, budget: int) -> TrainingSetup:
    """The run's ``TrainingSetup`` from its config (an ``EvolveConfig``): one reading for evolve and final."""
    gpu_share = None
    if config.sim != "cpu" and str(config.device).startswith("cuda") and config.executor != "ray":
        # local workers share the device: each caps torch's allocations at its share
        gpu_share = 1.0 / (config.workers or default_candidate_workers(config.samples))
    return TrainingSetup(task=task, trainer=trainer, budget=int(budget), num_envs=config.num_envs, sim=config.sim,
                         device=config.device, gpu_memory_fraction=gpu_share, timeout=config.timeout,
                         memory_gb=float(config.memory_gb))
