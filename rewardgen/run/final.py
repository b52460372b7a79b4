"""Final evaluation of a run (Eureka's protocol): the best reward against the baselines, over seeds.

``final_evaluation(run_dir)`` retrains, at one budget and with the same ``seeds`` training seeds:

- ``evolved``: the run's best reward (``run.json`` ``best``), as selected by trusted fitness;
- ``human``: the env's own reward (the hand-written reward of the gymnasium task), for tasks whose
  ``baseline`` is ``env`` (``Task.has_env_reward``); novel/MJCF tasks have none;
- ``sparse``: the fitness's success indicator as a reward (``rewardgen.tasks.baselines.sparse_reward_source``): 1 on
  every step where the per-step fitness is at the success pace.

Every policy is measured by the trusted evaluator (``run_trusted_evaluation``, its own process) on
held-out evaluation seeds. Per method: mean and (population) std of the trusted fitness over seeds,
and the success rate. The human-normalised score of a method is ``(method - sparse) / |human -
sparse|`` on the means (1: as good as the human reward, 0: no better than the sparse one); it is
None, with the reason in ``score_note``, when the task has no env reward or when the human and
sparse means are equal.

Each training is one ``Step`` (``rewardgen.run.step``, as in evolve): a worker job through an executor
(``rewardgen.run.executors``; a ``LocalExecutor`` by default), so the rewards run sandboxed; this
module runs in the orchestrator process and is the only writer:
``runs/<id>/final/<method>-seed<k>/policy.npz``, ``train.log`` and ``final-run.json``
(that training's record, with the key it was made under), then ``runs/<id>/final.json`` (atomic).
It holds the run's lock meanwhile, so it never races an evolve/resume of the same run.

Resumable: a rerun (after a crash, ``kill -9`` or Ctrl-C) reuses every training whose
``final-run.json`` says it finished and was evaluated under the same key (reward source, budget,
trainer, training seed, evaluation episodes and seed) and trains only the rest. Each record names the
install it was trained under (``rewardgen.software``; with Ray, the orchestrator's, which the cluster
shares) and ``final.json`` lists the distinct ones: one seed trains another policy under other
package versions, so a reused training from another install is said, not hidden.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardgen import interrupt
from rewardgen.contract.job import WorkerJob
from rewardgen.errors import UserError
from rewardgen.procs import WorkerResult
from rewardgen.run.events import Event, FinalFinished, FinalRun, FinalStarted
from rewardgen.run.executors import Executor
from rewardgen.run.progress import Progress
from rewardgen.run.step import Step, TrainingSetup, training_setup
from rewardgen.runfiles import RunFiles
from rewardgen.software import read_software, software
from rewardgen.store import (
    FINAL_FILE,
    FINAL_RUN_FILE,
    POLICY_FILE,
    RUN_FILE,
    CorruptFileError,
    RunRecord,
    RunStore,
    Stage,
    final_dirname,
)
from rewardgen.tasks.baselines import sparse_reward_source
from rewardgen.tasks.spec import Task, task_from_dict

METHODS = ("evolved", "human", "sparse")
LABELS = {"evolved": "best evolved reward", "human": "env's own reward (human)",
          "sparse": "sparse success reward"}


class FinalEvaluationError(UserError):
    """The run cannot be finally evaluated (no best reward, bad arguments); the message is for the user."""


def train_seed(config_seed: int, k: int) -> int:
    """Training seed of the k-th final seed (shared by all methods; apart from the evolve seeds)."""
    return 500_000 + 1000 * int(config_seed) + k


def eval_seed(config_seed: int) -> int:
    """First seed of the final trusted evaluation episodes (held out from selection's 10_000 + ...)."""
    return 50_000 + 1000 * int(config_seed)


def _emit(progress: Progress | None, event: Event) -> None:
    if progress is not None:
        progress.event(event)


def _run_event(record: dict[str, Any], reused: bool = False) -> FinalRun:
    """The ``FinalRun`` event of a training's record."""
    return FinalRun(method=record["method"], seed_index=record["seed_index"], status=record["status"],
                    fitness=record.get("fitness"), error=record.get("error"), env_steps=record.get("env_steps"),
                    reused=reused, record=record)


def final_evaluation(run_dir: Path, seeds: int = 5, steps: int | None = None, executor: Executor | None = None,
                     progress: Progress | None = None, *, episodes: int | None = None) -> dict:
    """Retrain the best reward and the baselines with ``seeds`` seeds each and compare trusted fitness.

    :param run_dir: a run directory with a best candidate.
    :param seeds: training seeds per method.
    :param steps: env-steps per training; None uses the run's own budget.
    :param executor: a ``rewardgen.run.executors`` executor; None makes a ``LocalExecutor`` (closed after).
    :param progress: a ``Progress`` (``event(event)``, like evolve's), or None.
    :param episodes: trusted evaluation episodes per policy; None uses the run's (or the task's).
    :return: what is written to ``runs/<id>/final.json``.
    """
    if seeds <= 0:
        raise FinalEvaluationError(f"seeds must be positive, got {seeds}")
    if steps is not None and steps <= 0:
        raise FinalEvaluationError(f"steps must be positive, got {steps}")
    store = RunStore.open(Path(run_dir))
    run = store.read_run()
    best = run.get("best")
    if not best:
        raise FinalEvaluationError(f"{run_dir}: the run has no best reward yet (no candidate got a trusted fitness)")
    training = run_training(store, steps, episodes, run)
    task, steps, trainer, episodes = training.task, training.steps, training.trainer, training.episodes
    config_seed = training.config.seed
    methods = [m for m in METHODS if m != "human" or task.has_env_reward]
    sources = {"evolved": store.read_source(int(best["generation"]), int(best["candidate"])),
               "sparse": sparse_reward_source(task)}

    started = time.monotonic()
    _emit(progress, FinalStarted(run_dir=str(store.path), methods=methods, seeds=seeds, steps=steps))
    trainings = [Retraining.of(method, k, final_dirname(method, k), sources.get(method), steps=steps,
                               trainer=trainer, train_seed=train_seed(config_seed, k), episodes=episodes,
                               eval_seed=eval_seed(config_seed))
                 for k in range(seeds) for method in methods]
    runs, executor_used = retrain_in_run(store, training, trainings, executor, progress)
    runs.sort(key=lambda r: (METHODS.index(r["method"]), r["seed_index"]))
    rows = [_summarise(method, [r for r in runs if r["method"] == method]) for method in methods]
    scores, note = normalised_scores(task, {row["method"]: row for row in rows})
    for row in rows:
        row["human_normalized"] = scores.get(row["method"]) if scores else None
    result = {
        "run_id": store.path.name,
        "task": task.id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "protocol": ("Eureka final evaluation: the best reward, the env's own (human) reward and the sparse success "
                     "reward, each retrained with the same seeds and budget; trusted fitness of each policy"),
        "seeds": seeds,
        "steps": steps,
        "trainer": trainer,
        "eval_episodes": episodes,
        "eval_seed": eval_seed(config_seed),
        "train_seeds": [train_seed(config_seed, k) for k in range(seeds)],
        "best": {"generation": best["generation"], "candidate": best["candidate"],
                 "selection_fitness": best.get("fitness")},
        "baseline": task.baseline_kind,
        "rows": rows,
        "score": scores.get("evolved") if scores else None,
        "score_note": note,
        "runs": runs,
        "software": installs_of(runs),
        "executor": executor_used,
        "seconds": round(time.monotonic() - started, 2),
    }
    store.write_json(FINAL_FILE, result)
    _emit(progress, FinalFinished(result=result))
    return result


@dataclass(frozen=True)
class RunTraining:
    """How a run's rewards are trained and evaluated: read once from its ``run.json`` for every retraining."""

    task: Task
    config: Any  # the run's EvolveConfig
    steps: int  # env-steps per training
    trainer: str  # the trainer that actually runs (``effective_trainer``)
    episodes: int  # trusted evaluation episodes per policy
    setup: TrainingSetup  # makes the worker jobs


def run_training(store: RunStore, steps: int | None = None, episodes: int | None = None,
                 run: RunRecord | None = None) -> RunTraining:
    """The run's training: its task and config, ``steps`` (None: the run's budget), its trainer, and
    ``episodes`` (None: the run's evaluation episodes, else the task's). ``run``: its ``run.json``, if read."""
    from rewardgen.run.config import EvolveConfig, effective_trainer

    record = run if run is not None else store.read_run()
    task = task_from_dict(record["task"], where=str(store.path / RUN_FILE))
    config = EvolveConfig.from_dict((record.get("config") or {}) | {"task": task.id})
    steps = int(steps or config.budget(task))
    trainer, _ = effective_trainer(task, config.trainer)
    return RunTraining(task, config, steps, trainer, int(episodes or config.eval_episodes or task.eval_episodes),
                       training_setup(task, config, trainer, steps))


@dataclass(frozen=True)
class Retraining:
    """One training of a reward from scratch and its trusted evaluation, as ``retrain`` runs it."""

    method: str  # what the records call it: "evolved", "human", "sparse", or a bench's "cand-03"
    seed_index: int
    dirname: str  # where its policy, log and record go, relative to the run directory
    source: str | None  # None: the env's own reward
    key: dict  # what it is made under (source hash, steps, trainer, train_seed, episodes, eval_seed)

    @classmethod
    def of(cls, method: str, seed_index: int, dirname: str, source: str | None, *, steps: int, trainer: str,
           train_seed: int, episodes: int, eval_seed: int) -> Retraining:
        """A training keyed by everything its result depends on (a rerun reuses it only if all match)."""
        key = {"source_sha256": hashlib.sha256((source or "env reward").encode()).hexdigest(), "steps": steps,
               "trainer": trainer, "train_seed": train_seed, "episodes": episodes, "eval_seed": eval_seed}
        return cls(method, seed_index, dirname, source, key)


def retrain_in_run(store: RunStore, training: RunTraining, trainings: list[Retraining], executor: Executor | None = None,
                   progress: Progress | None = None) -> tuple[list[dict], dict]:
    """``retrain`` under the run's lock (``RunStoreError`` when another process holds it). With ``executor``
    None, a ``LocalExecutor`` of the run's workers does the training and is closed after. Returns the
    records and the executor's description (for the result's record of where it ran)."""
    from rewardgen.run.executors import LocalExecutor

    own_executor = executor is None
    used = LocalExecutor(training.config.workers) if executor is None else executor
    store.lock()
    try:
        records = retrain(store, training.task, training.setup, trainings, used, progress)
        return records, used.describe()
    finally:
        store.unlock()
        if own_executor:
            used.close()


def retrain(store: RunStore, task: Task, setup: TrainingSetup, trainings: list[Retraining], executor: Any,
            progress: Progress | None = None) -> list[dict]:
    """Train every one of ``trainings`` through ``executor`` (all queued at once) and evaluate each
    policy with the trusted evaluator; a training whose record says it finished under the same key
    is reused, not repeated. Each record is written beside its policy (``final-run.json``, atomic)
    as soon as it is evaluated, so an interrupted call loses at most the trainings in flight.
    The caller holds the run's lock. Returns the records, in completion order."""
    runs: list[dict] = []
    todo = []
    for t in trainings:
        done_before = _finished_before(store, t.dirname, t.key)
        if done_before is not None:
            runs.append(done_before)
            _emit(progress, _run_event(done_before, reused=True))
        else:
            todo.append(t)
    cpu_threads = executor.cpu_threads(len(todo))  # every job is queued at once
    pending: dict[Future[WorkerResult], tuple[Retraining, Step, WorkerJob]] = {}
    for t in todo:
        step = Step(task, setup, store, executor, t.key["episodes"], t.key["eval_seed"])
        job = setup.job(t.source, t.key["train_seed"], t.key["steps"], cpu_threads)
        pending[step.submit(job)] = (t, step, job)
    while pending:
        interrupt.check()
        done, _ = wait(list(pending), timeout=interrupt.POLL_SECONDS, return_when=FIRST_COMPLETED)
        for fut in done:
            t, step, job = pending.pop(fut)
            record = _finish_one(store, t, step, job, fut, progress)
            store.write_json(store.path / t.dirname / FINAL_RUN_FILE, record | {"key": t.key})
            runs.append(record)
    return runs


def read_record(store: RunFiles, directory: Path) -> dict | None:
    """The training record (``final-run.json``) in ``directory`` of the run ``store`` if it says the
    training finished and was evaluated; None when it is missing, unreadable or says otherwise."""
    try:
        record = store.read_json(Path(directory) / FINAL_RUN_FILE)
    except CorruptFileError:
        return None
    return record if isinstance(record, dict) and record.get("status") == Stage.OK else None


def seed_results(records: list[dict], method: str) -> dict:
    """One method's trainings among ``records``, in seed order: each seed's fitness (None: it failed), how
    many succeeded, and their mean and population std (None when none did)."""
    mine = sorted((r for r in records if r["method"] == method), key=lambda r: r["seed_index"])
    values = [r["fitness"] for r in mine if r.get("status") == Stage.OK and r.get("fitness") is not None]
    return {"records": mine, "fitness": [r.get("fitness") for r in mine], "ok": len(values),
            "mean": statistics.fmean(values) if values else None,
            "std": statistics.pstdev(values) if values else None}


def _finished_before(store: RunStore, dirname: str, key: dict) -> dict | None:
    """The record of this training from an earlier, interrupted call, if it finished and was evaluated
    under ``key`` and its policy is still there; None: train it (again)."""
    d = store.path / dirname
    record = read_record(store, d)
    if record is None or record.get("key") != key:
        return None
    if not store.is_file(d / POLICY_FILE):
        return None
    return {name: value for name, value in record.items() if name != "key"}


def _finish_one(store: RunStore, t: Retraining, step: Step, job: WorkerJob, fut: Future[WorkerResult],
                progress: Progress | None) -> dict:
    """The rest of one training's step (its policy and log written, its trusted fitness); the run's record."""
    try:
        res: WorkerResult = interrupt.wait(fut)
    except Exception as exc:
        res = WorkerResult(stage=Stage.CRASH, error=f"{type(exc).__name__}: {exc}")
    d = store.path / t.dirname
    outcome = step.finish(d, job, res)
    record: dict[str, Any] = {"method": t.method, "seed_index": t.seed_index, "train_seconds": round(res.seconds, 2),
                              "fitness": None, "success": False, "error": None, "software": software()}
    if not outcome.trained:
        record |= {"status": outcome.status, "error": outcome.error}
        _emit(progress, _run_event(record))
        return record
    record |= {"env_steps": outcome.output.get("env_steps"),
               "policy": str((d / POLICY_FILE).relative_to(store.path))}
    retried = [w for w in res.warnings if "retried" in w]  # the executor lost an attempt
    if retried:
        record["warnings"] = retried
    if outcome.evaluation is None:
        record |= {"status": Stage.EVALUATION, "error": outcome.error}
    else:
        record |= {"status": Stage.OK, "fitness": outcome.fitness, "fitness_std": outcome.evaluation.get("fitness_std"),
                   "success": outcome.success}
    _emit(progress, _run_event(record))
    return record


def installs_of(runs: list[dict]) -> list[dict[str, str] | None]:
    """The distinct installs ``runs`` were trained under (``rewardgen.software``), in first-seen order;
    None stands for records that name none (trained before trainings recorded it). One entry: the
    rows are comparable seed for seed; more: a reused training came from another install."""
    installs: list[dict[str, str] | None] = []
    for r in runs:
        sw = read_software(r.get("software")) if isinstance(r, dict) else None
        if sw not in installs:
            installs.append(sw)
    return installs


def _summarise(method: str, runs: list[dict]) -> dict:
    values = [r["fitness"] for r in runs if r["status"] == Stage.OK and r["fitness"] is not None]
    arr = np.asarray(values, dtype=float)
    return {
        "method": method,
        "label": LABELS[method],
        "seeds": len(runs),
        "ok": len(values),
        "fitness_mean": float(arr.mean()) if len(arr) else None,
        "fitness_std": float(arr.std()) if len(arr) else None,
        "success_rate": (sum(1 for r in runs if r["status"] == Stage.OK and r["success"]) / len(values)) if values else None,
        "failures": [{"seed_index": r["seed_index"], "status": r["status"], "error": r["error"]}
                     for r in runs if r["status"] != Stage.OK],
    }


def normalised_scores(task: Task, rows: dict[str, dict]) -> tuple[dict[str, float] | None, str | None]:
    """Human-normalised scores per method, or None and why not."""
    if not task.has_env_reward:
        return None, (f"task {task.id} has no env reward (baseline: {task.baseline_kind}), so there is no human "
                      f"reward to normalise by; compare the evolved and sparse rows directly")
    human, sparse = rows["human"]["fitness_mean"], rows["sparse"]["fitness_mean"]
    if human is None or sparse is None:
        missing = " and ".join(m for m, v in (("human", human), ("sparse", sparse)) if v is None)
        return None, f"no successful {missing} baseline training, so the normalised score is undefined"
    span = abs(human - sparse)
    if span < 1e-9 or not math.isfinite(span):
        return None, (f"the human and sparse baselines have the same mean fitness ({human:.6g}), so "
                      f"(method - sparse) / |human - sparse| is undefined; try a larger budget")
    return {m: (row["fitness_mean"] - sparse) / span for m, row in rows.items() if row["fitness_mean"] is not None}, None


def read_final(run_dir: Path) -> dict | None:
    """The run's final evaluation, or None if it has none."""
    return RunStore(Path(run_dir)).read_json(FINAL_FILE)


__all__ = [
    "METHODS",
    "FinalEvaluationError",
    "Retraining",
    "RunTraining",
    "final_evaluation",
    "read_final",
    "read_record",
    "retrain",
    "run_training",
    "seed_results",
]
