"""One candidate's step: check -> train -> save -> trusted fitness -> outcome (``Step``), the same for
evolve's schedule, ``final`` and the confirmation, and how a run trains (``TrainingSetup``).

Evolve trains a candidate in slices (rungs) and ``final`` retrains the best reward and the baselines
with several seeds; both build the worker job from the setup and hand it to a ``Step``, which keeps
what the worker returned and measures the policy. The policy's trusted fitness comes from the
evaluator process (``rewardgen.procs.trusted.run_trusted_evaluation``), never from the worker that
trained it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardgen.contract.job import SmokeCheck, WorkerJob
from rewardgen.contract.policy import MAX_POLICY_BYTES
from rewardgen.procs import WorkerLimits, WorkerResult
from rewardgen.procs.check import CHECK_LIMITS, CheckVerdict, verdict_from_result
from rewardgen.procs.trusted import run_trusted_evaluation
from rewardgen.proposers.taskfacts import TrainingPlan
from rewardgen.run.executors import default_candidate_workers
from rewardgen.runfiles import RunFiles
from rewardgen.store import POLICY_FILE, TRAIN_LOG, Stage
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
            from rewardgen.trainers.ppo import PPOTrainer, describe_ppo

            trainer = get_trainer("ppo", task_ppo=self.task.ppo, num_envs=worlds)
            assert isinstance(trainer, PPOTrainer)  # the registry's "ppo"
            hp = trainer.hp
            lines, batch = describe_ppo(hp), worlds * hp.rollout_steps
        else:
            from rewardgen.trainers.sb3 import describe_sb3, sb3_rollout

            lines, batch = describe_sb3(worlds), worlds * sb3_rollout(worlds)
        env = self.task.make_env()
        try:
            shape = env.observation_space.shape
            observation = int(shape[0]) if shape else 0
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


def training_failure(res: WorkerResult) -> tuple[Stage, str] | None:
    """``(stage, error)`` when the training gave no usable policy, else None."""
    if not res.ok:
        return Stage(res.stage), res.error or "the worker failed"
    if res.payload is None:
        return Stage.PROTOCOL, "the worker returned no policy"
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
                    seed: int, cpu_time: bool = False) -> tuple[dict[str, Any] | None, str | None]:
    """Evaluate ``directory/policy.npz`` of the run ``files`` in the trusted evaluator:
    ``(evaluation, None)`` or ``(None, error)``; ``cpu_time``: the evaluation says the CPU seconds it used."""
    try:
        policy = files.read_bytes(directory / POLICY_FILE, MAX_POLICY_BYTES)
        return run_trusted_evaluation(task, policy, episodes, seed, cpu_time=cpu_time), None
    except (RuntimeError, ValueError, OSError) as exc:
        return None, str(exc)


def check_record(verdict: CheckVerdict, seconds: float, by: str) -> dict[str, Any]:
    """The smoke check's verdict as a rung record keeps it (``check``), whoever ran it: the proposer
    before it kept the source, or the training worker at the start of the training."""
    return verdict.to_json() | {"seconds": round(float(seconds), 2), "isolation": verdict.isolation,
                                "warnings": verdict.warnings, "by": by}


@dataclass
class StepOutcome:
    """What one step came to. ``status``: ``Stage.OK``, or the stage that failed (with ``error``);
    ``check``: the smoke check's verdict when the job carried one and the worker answered it;
    ``evaluation``: the trusted evaluator's answer (``fitness``, ``success``, episodes, ...)."""

    status: Stage
    error: str | None
    result: WorkerResult
    check: CheckVerdict | None = None
    evaluation: dict[str, Any] | None = None
    evaluation_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == Stage.OK

    @property
    def trained(self) -> bool:
        """Training gave a policy (the step failed, if it did, in the trusted evaluation)."""
        return self.ok or self.status == Stage.EVALUATION

    @property
    def fitness(self) -> float | None:
        """The trusted fitness (as the evaluator wrote it); None when there was no evaluation."""
        return self.evaluation["fitness"] if self.evaluation is not None else None

    @property
    def success(self) -> bool:
        return bool(self.evaluation["success"]) if self.evaluation is not None else False

    @property
    def output(self) -> dict[str, Any]:
        """The trainer's answer (``env_steps``, ``stats``, ``extra``, ...); empty when training failed."""
        return self.result.result or {}


class Step:
    """One candidate's step, the same in evolve's schedule, ``final`` and the confirmation: check (the
    smoke check folded into the training job) -> train (a worker through the executor) -> save (log
    and policy into the run, atomically) -> trusted fitness (the evaluator's own process) -> outcome.

    Selection reads only the outcome's trusted fitness; the worker's own numbers stay in the record."""

    def __init__(self, task: Task, setup: TrainingSetup, files: RunFiles, executor: Any, episodes: int | None,
                 eval_seed: int):
        self.task, self.setup, self.files, self.executor = task, setup, files, executor
        self.episodes, self.eval_seed = episodes, eval_seed

    def submit(self, job: WorkerJob, on_event: Callable[[dict], None] | None = None) -> Future[WorkerResult]:
        """Start training ``job`` under the setup's limits; its future gives the ``WorkerResult``."""
        if on_event is None:
            return self.executor.submit(job, self.setup.limits(job.steps))
        return self.executor.submit(job, self.setup.limits(job.steps), on_event)

    def finish(self, directory: Path, job: WorkerJob, res: WorkerResult, log_header: str = "",
               append: bool = False, trained: Callable[[StepOutcome], None] | None = None) -> StepOutcome:
        """Everything after training: the check's verdict (a failed check writes its log and ends the
        step), the log and policy saved in ``directory``, the training's failure, then ``trained`` (told
        the outcome so far: training is over, the evaluation comes next) and the trusted fitness."""
        outcome = StepOutcome(Stage.OK, None, res)
        if job.check is not None and (res.check is not None or res.stage not in (Stage.PROTOCOL, Stage.LOST)):
            # (a worker that lied, or a lost machine, says nothing about the candidate: failed as such below)
            limits = self.setup.limits(job.steps)
            outcome.check = verdict_from_result(res, job.source or "", WorkerLimits(
                wall_seconds=CHECK_LIMITS.wall_seconds, memory_bytes=limits.memory_bytes,
                output_bytes=CHECK_LIMITS.output_bytes))
            if not outcome.check.ok:
                self.files.write_text(directory / TRAIN_LOG, outcome.check.log)
                outcome.status, outcome.error = Stage(outcome.check.stage), outcome.check.error
                return outcome
        save_training_output(self.files, directory, res, log_header, append=append)
        failure = training_failure(res)
        if failure is not None:
            outcome.status, outcome.error = failure
            return outcome
        if trained is not None:
            trained(outcome)
        started = time.monotonic()
        outcome.evaluation, error = trusted_fitness(self.task, self.files, directory, self.episodes, self.eval_seed)
        outcome.evaluation_seconds = round(time.monotonic() - started, 2)
        if outcome.evaluation is None:
            outcome.status, outcome.error = Stage.EVALUATION, error
        return outcome


def training_setup(task: Task, config: Any, trainer: str, budget: int) -> TrainingSetup:
    """The run's ``TrainingSetup`` from its config (an ``EvolveConfig``): one reading for evolve and final."""
    gpu_share = None
    if config.sim != "cpu" and str(config.device).startswith("cuda") and config.executor != "ray":
        # local workers share the device: each caps torch's allocations at its share
        gpu_share = 1.0 / (config.workers or default_candidate_workers(config.samples))
    return TrainingSetup(task=task, trainer=trainer, budget=int(budget), num_envs=config.num_envs, sim=config.sim,
                         device=config.device, gpu_memory_fraction=gpu_share, timeout=config.timeout,
                         memory_gb=float(config.memory_gb))
