"""How long a run will take, said only after measuring this machine: the first time estimate.

A fixed guess of the machine's speed was 3-18x off (tasks differ ~10x in cost per env-step, a loaded
machine is slower, small budgets are mostly fixed costs). So the first estimate comes from
measurements of this task's training on this machine:

- ``calibrate``: a short real training of the task's trainer (a worker job with the sparse success
  reward, its smoke check included, as a candidate's first slice has) and two trusted evaluations
  (one of a few steps: the evaluator's fixed cost; one as the run evaluates: its cost per step),
  timed; a few seconds;
- ``RateBook``: what a calibration measured, and how far the last run of the same setup took from
  its forecast (``correction``), remembered in ``$XDG_CACHE_HOME/rewardgen/rates.json``
  (``~/.cache/...``), so the next run of that setup starts with an estimate and no calibration.

``forecast_seconds`` turns the ``Costs`` into a duration: every planned slice of every generation
(the schedule's rungs), the slices of a rung spread over the workers, each a training job (fixed
cost plus env-steps) and a trusted evaluation of full-length episodes, slowed by the load the extra
workers add to what the machine was already doing. The run then refines the estimate from its own
pace (``rewardgen.run.progress.Estimate``), as before.

What the machine was already doing is the other processes' demand for its cores *now*, sampled
(``OtherDemand``): the 1-minute load average lags a minute behind and counts this process's own recent
work, which made the first estimate of a small run on an idle machine 1.5x too long.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rewardgen.contract.job import SmokeCheck
from rewardgen.loadavg import load_average, runnable_now
from rewardgen.runfiles import RunFiles
from rewardgen.store import atomic_write_json

#: a remembered measurement older than this is measured again
BOOK_MAX_AGE_S = 14 * 24 * 3600.0
#: the rate book's format; a book of another (older) format is measured again (version 1 kept the
#: 1-minute load average where ``Costs.load`` now keeps the sampled demand of other processes; version
#: 2 kept costs as measured under that load, where version 3 keeps them as they would be on an idle machine)
BOOK_VERSION = 3
#: a remembered correction is kept within these bounds (one odd run must not wreck the next estimate)
CORRECTION_RANGE = (0.5, 2.0)


def loadavg() -> float:
    """The machine's 1-minute load average (0 where unknown)."""
    load = load_average()
    return 0.0 if load is None else load[0]


class OtherDemand:
    """The cores other processes want while this block runs: the machine's runnable threads sampled
    every ``interval`` seconds, less the sampling thread and ``own`` (threads of this run's own work
    running meanwhile; change it as that work changes). A ``with`` block; ``cores()`` is the mean,
    0 or more. Where the kernel does not count runnable threads it falls back to the load average."""

    def __init__(self, own: float = 0.0, interval: float = 0.05):
        self.own, self.interval = own, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rewardgen-demand", daemon=True)

    def _sample(self) -> None:
        while True:
            n = runnable_now()
            if n is None:
                return
            self.samples.append(n - 1.0 - self.own)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> OtherDemand:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def cores(self, since: int = 0, until: int | None = None) -> float:
        """The mean of the samples (``since``/``until``: of those between two counts of ``samples``)."""
        samples = self.samples[since:until]
        if not samples:
            return loadavg()
        return max(0.0, sum(samples) / len(samples))


def other_demand(seconds: float = 0.5) -> float:
    """The cores other processes want now, sampled for ``seconds`` while this process waits."""
    with OtherDemand() as demand:
        time.sleep(seconds)
    return demand.cores()


@dataclass(frozen=True)
class Costs:
    """What one slice of training and its evaluation cost on this machine with nothing else running,
    measured (``uncontended``).

    :param job_s: seconds of a training job besides its env-steps (worker start, simulator and trainer
        set-up, the smoke check, sending the policy back).
    :param step_s: seconds per env-step of training, one job running.
    :param eval_fixed_s: seconds of a trusted evaluation besides its env-steps (its process, the env).
    :param eval_step_s: seconds per env-step the trusted evaluation simulates.
    :param load: the cores other processes wanted while it was measured (``OtherDemand``).
    :param cores: the machine's usable cores.
    :param measured_at: when (``time.time()``); :param seconds: how long the measurement took.
    :param eval_length: the share of full-length episodes the calibration's evaluation simulated (its
        policy, trained about as long as a first rung's, ends them about where a first rung's does).
    :param trained: the env-steps the calibration trained.
    :param busy_cores: the cores one training job keeps busy (its CPU time over its uncontended wall
        time: a worker's helper thread and its reward jail run beside its main thread).
    """

    job_s: float
    step_s: float
    eval_fixed_s: float
    eval_step_s: float
    load: float
    cores: int
    measured_at: float
    seconds: float = 0.0
    eval_length: float = 1.0
    trained: int = 0
    busy_cores: float = 1.0

    @classmethod
    def from_json(cls, raw: Any) -> Costs | None:
        try:
            costs = cls(**{k: raw[k] for k in ("job_s", "step_s", "eval_fixed_s", "eval_step_s", "load", "cores",
                                               "measured_at")}, seconds=float(raw.get("seconds", 0.0)),
                        eval_length=float(raw.get("eval_length", 1.0)), trained=int(raw.get("trained", 0)),
                        busy_cores=float(raw.get("busy_cores", 1.0)))
        except (KeyError, TypeError, ValueError):
            return None
        numbers = (costs.job_s, costs.step_s, costs.eval_fixed_s, costs.eval_step_s, costs.load, costs.measured_at)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in numbers) or costs.cores < 1:
            return None
        if not 0.0 < costs.eval_length <= 1.0 or costs.trained < 0 or not 1.0 <= costs.busy_cores <= costs.cores:
            return None
        return costs

    def slowdown(self, workers: int, load_now: float | None = None) -> float:
        """How much slower each of ``workers`` jobs runs than one job alone on an idle machine: the jobs,
        each keeping ``busy_cores`` busy, share the cores with what other processes want now
        (``load_now``, cores; default: what they wanted while the costs were measured)."""
        other = max(0.0, self.load if load_now is None else load_now)
        return max(1.0, (other + workers * self.busy_cores) / self.cores) / max(1.0, self.busy_cores / self.cores)

    def episode_share(self, target: int, budget: int) -> float:
        """The share of full-length episodes the evaluation of a candidate trained ``target`` env-steps
        (of a ``budget``) simulates: the calibration's share at the steps it trained, full length at the
        whole budget, in between in proportion (a candidate learns to last longer as it trains)."""
        if self.eval_length >= 1.0 or budget <= self.trained:
            return 1.0
        grown = min(1.0, max(0.0, (target - self.trained) / (budget - self.trained)))
        return self.eval_length + (1.0 - self.eval_length) * grown


def uncontended(wall: float, cpu: float | None, load: float, cores: int) -> float:
    """Seconds a job that took ``wall`` seconds (and ``cpu`` seconds of CPU time, where known) while
    other processes wanted ``load`` cores would take on an idle machine: its wall time less the share
    of the cores the others took by the load's count, and never more than its CPU time (a machine
    busier than its runnable threads showed, a burst of load, a host's other guests: the kernel's
    count of the time it ran is the same however long it waited)."""
    shared = wall / max(1.0, (load + 1.0) / cores)
    return shared if cpu is None or cpu <= 0 else min(shared, cpu)


def forecast_seconds(costs: Costs, generations: list[list[dict]], workers: int, episodes: int,
                     episode_length: int, load_now: float | None = None) -> float:
    """Seconds to train and evaluate ``generations`` (each a schedule plan: rungs of ``{"target",
    "candidates"}``) with ``workers`` jobs at once beside other processes that want ``load_now`` cores;
    evaluations of episodes as long as ``Costs.episode_share`` expects of the rung."""
    total = 0.0
    for plan in generations:
        before, budget = 0, max((int(rung["target"]) for rung in plan), default=0)
        for rung in plan:
            n, steps = int(rung["candidates"]), max(0, int(rung["target"]) - before)
            before = int(rung["target"])
            if n <= 0:
                continue
            simulated = episodes * episode_length * costs.episode_share(before, budget)
            evaluation = costs.eval_fixed_s + costs.eval_step_s * simulated
            at_once = max(1, min(workers, n))
            one = (costs.job_s + steps * costs.step_s + evaluation) * costs.slowdown(at_once, load_now)
            total += math.ceil(n / at_once) * one
    return total


def own_start_done(executor) -> None:
    """Wait for this command's own start (the local executor's zygote, started once per command), so it
    is measured neither as a cost of every slice nor as another process's demand for the cores."""
    if getattr(executor, "name", "") == "local":
        from rewardgen.procs import zygote

        zygote.ready()


def calibration_steps(batch: int, budget: int) -> int:
    """Env-steps the calibration trains: four of the trainer's batches, at least 4096 (its rate settles),
    at most a fifth of the budget (a calibration never costs much of a small run)."""
    return int(max(256, min(max(4 * batch, 4096), budget // 5 or 256)))


def calibrate(task, setup, executor, episodes: int, seed: int, cpu_threads: int = 1,
              check_steps: int = 256) -> Costs:
    """Measure ``Costs`` with a real training job (the sparse success reward, smoke check included)
    and two trusted evaluations of its policy, each made ``uncontended`` by the load it met and the
    CPU time it used. RuntimeError when the training or evaluation fails."""
    from rewardgen.run.executors import usable_cores
    from rewardgen.run.step import save_training_output, training_failure, trusted_fitness
    from rewardgen.tasks.baselines import sparse_reward_source

    started = time.monotonic()
    own_start_done(executor)
    cores = usable_cores()
    probe = setup.job(None, seed, 1)
    batch = (probe.num_envs or 8) * int(task.ppo.get("rollout_steps", 16)) if setup.trainer == "ppo" else 2048
    steps = calibration_steps(batch, setup.budget)
    check = SmokeCheck(steps=check_steps, seed=seed, num_envs=4, seconds=60.0)
    job = setup.job(sparse_reward_source(task), seed, steps, cpu_threads, None, check)
    with OtherDemand(own=cpu_threads) as demand:  # the whole calibration: a longer look at the load
        began = time.monotonic()
        res = executor.submit(job, setup.limits(steps)).result()
        wall = time.monotonic() - began
        job_load, trained_at = demand.cores(), len(demand.samples)
        failure = training_failure(res)
        if failure is not None:
            raise RuntimeError(f"calibration training failed ({failure[0]}): {failure[1]}")
        demand.own = 1.0  # the evaluator
        timed = []
        with tempfile.TemporaryDirectory(prefix="rewardgen-calibration-") as tmp:
            files = RunFiles(Path(tmp))
            save_training_output(files, Path(tmp), res)
            for ep, length in ((1, min(task.episode_length, 10)), (episodes, task.episode_length)):
                began = time.monotonic()
                answer, error = trusted_fitness(replace(task, episode_length=length), files, Path(tmp), ep, seed,
                                                cpu_time=True)
                if answer is None:
                    raise RuntimeError(f"calibration evaluation failed: {error}")
                timed.append((answer, time.monotonic() - began))
    eval_load, load = demand.cores(since=trained_at), round(demand.cores(), 3)
    result = res.result or {}
    trained = int(result.get("env_steps") or steps)
    timing = (result.get("extra") or {}).get("timing") or {}
    # the steps' own cost (PPO reports collection and updates apart from its set-up); the rest of the
    # job's wall time is paid once per slice whatever its length; both shrink as the whole job's does
    # when made uncontended
    train_s = float(timing.get("collect_s", 0) + timing.get("update_s", 0)) or float(result.get("seconds") or wall)
    train_s = min(train_s, wall)
    alone = uncontended(wall, res.cpu_seconds, job_load, cores)
    scale = alone / wall if wall > 0 else 1.0
    busy = min(float(cores), max(1.0, (res.cpu_seconds or 0.0) / alone)) if alone > 0 else 1.0
    (short, short_s), (full, full_s) = timed
    simulated = sum(int(e.get("length") or 0) for e in full.get("episodes") or []) or 1
    fixed = uncontended(short_s, None, eval_load, cores)
    # the full evaluation's steps: its wall time and CPU time beyond the short one's
    cpu = float(full.get("cpu_seconds") or 0) - float(short.get("cpu_seconds") or 0)
    per_step = uncontended(max(0.0, full_s - short_s), cpu if cpu > 0 else None, eval_load, cores)
    return Costs(job_s=max(0.0, wall - train_s) * scale, step_s=train_s * scale / max(1, trained),
                 eval_fixed_s=fixed, eval_step_s=per_step / simulated, load=load, cores=cores,
                 measured_at=time.time(), seconds=round(time.monotonic() - started, 2),
                 eval_length=min(1.0, max(1e-3, simulated / max(1, episodes * task.episode_length))),
                 trained=trained, busy_cores=round(busy, 3))


def book_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rewardgen" / "rates.json"


class RateBook:
    """Measured ``Costs`` per training setup, and each setup's last ``correction`` (the run's real
    duration over its forecast), in one small JSON file. A file that cannot be read or written is
    ignored: the estimate is a convenience, never a reason for a run to fail."""

    def __init__(self, path: Path | None = None):
        self.path = path or book_path()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        ok = isinstance(data, dict) and data.get("version") == BOOK_VERSION and isinstance(data.get("setups"), dict)
        return data if ok else {}

    def get(self, key: str, now: float | None = None) -> tuple[Costs, float] | None:
        """The remembered ``(costs, correction)`` of ``key``, None when there are none (or old ones)."""
        entry = self._read().get("setups", {}).get(key)
        costs = Costs.from_json(entry.get("costs")) if isinstance(entry, dict) else None
        if costs is None or (now or time.time()) - costs.measured_at > BOOK_MAX_AGE_S:
            return None
        correction = entry.get("correction", 1.0)
        ok = isinstance(correction, (int, float)) and math.isfinite(correction)
        return costs, min(max(float(correction) if ok else 1.0, CORRECTION_RANGE[0]), CORRECTION_RANGE[1])

    def put(self, key: str, costs: Costs, correction: float | None = None) -> None:
        data = self._read() or {"version": BOOK_VERSION, "setups": {}}
        entry = data["setups"].get(key) if isinstance(data["setups"].get(key), dict) else {}
        entry["costs"] = asdict(costs)
        if correction is not None and math.isfinite(correction) and correction > 0:
            entry["correction"] = round(correction, 3)
        data["setups"][key] = entry
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, data)
        except OSError:
            pass


def setup_key(task_id: str, setup, num_envs: int | None, workers: int, cpu_threads: int) -> str:
    """What the costs depend on: the task, trainer, simulator and device, worlds per batch, parallel jobs
    and each job's threads (the run's budget only through the worlds it gives PPO)."""
    return "|".join(str(x) for x in (task_id, setup.trainer, setup.sim, setup.device, num_envs, workers, cpu_threads))
