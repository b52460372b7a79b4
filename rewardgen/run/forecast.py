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
from rewardgen.store import POLICY_FILE, atomic_write_json

#: a remembered measurement older than this is measured again
BOOK_MAX_AGE_S = 14 * 24 * 3600.0
#: the rate book's format; a book of another (older) format is measured again (version 1 kept the
#: 1-minute load average where ``Costs.load`` now keeps the sampled demand of other processes)
BOOK_VERSION = 2
#: a remembered correction is kept within these bounds (one odd run must not wreck the next estimate)
CORRECTION_RANGE = (0.5, 2.0)


def loadavg() -> float:
    """The machine's 1-minute load average (0 where unknown)."""
    load = load_average()
    return 0.0 if load is None else load[0]


class OtherDemand:
    """The cores other processes want while this block runs: the machine's runnable threads sampled
    every ``interval`` seconds, less the sampling thread and ``own`` (threads of this run's own work
    running meanwhile). A ``with`` block; ``cores()`` is the mean, 0 or more. Where the kernel does
    not count runnable threads it falls back to the load average."""

    def __init__(self, own: float = 0.0, interval: float = 0.05):
        self.own, self.interval = own, interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rewardgen-demand", daemon=True)

    def _sample(self) -> None:
        while True:
            n = runnable_now()
            if n is None:
                return
            self.samples.append(n)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> OtherDemand:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def cores(self) -> float:
        if not self.samples:
            return loadavg()
        return max(0.0, sum(self.samples) / len(self.samples) - 1.0 - self.own)


def other_demand(seconds: float = 0.5) -> float:
    """The cores other processes want now, sampled for ``seconds`` while this process waits."""
    with OtherDemand() as demand:
        time.sleep(seconds)
    return demand.cores()


@dataclass(frozen=True)
class Costs:
    """What one slice of training and its evaluation cost on this machine, measured.

    :param job_s: seconds of a training job besides its env-steps (worker start, simulator and trainer
        set-up, the smoke check, sending the policy back).
    :param step_s: seconds per env-step of training, one job running.
    :param eval_fixed_s: seconds of a trusted evaluation besides its env-steps (its process, the env).
    :param eval_step_s: seconds per env-step the trusted evaluation simulates.
    :param load: the cores other processes wanted while it was measured (``OtherDemand``);
        :param cores: the machine's usable cores.
    :param measured_at: when (``time.time()``); :param seconds: how long the measurement took.
    """

    job_s: float
    step_s: float
    eval_fixed_s: float
    eval_step_s: float
    load: float
    cores: int
    measured_at: float
    seconds: float = 0.0

    @classmethod
    def from_json(cls, raw: Any) -> Costs | None:
        try:
            costs = cls(**{k: raw[k] for k in ("job_s", "step_s", "eval_fixed_s", "eval_step_s", "load", "cores",
                                               "measured_at")}, seconds=float(raw.get("seconds", 0.0)))
        except (KeyError, TypeError):
            return None
        numbers = (costs.job_s, costs.step_s, costs.eval_fixed_s, costs.eval_step_s, costs.load, costs.measured_at)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in numbers) or costs.cores < 1:
            return None
        return costs

    def slowdown(self, workers: int, load_now: float | None = None) -> float:
        """How much slower each of ``workers`` jobs runs than the one job measured: the jobs share the
        cores with what other processes want now (``load_now``, cores), the measured job shared them with
        what they wanted then."""
        other = max(0.0, self.load if load_now is None else load_now)
        measured = max(1.0, (self.load + 1.0) / self.cores)
        return max(1.0, (other + workers) / self.cores) / measured


def forecast_seconds(costs: Costs, generations: list[list[dict]], workers: int, episodes: int,
                     episode_length: int, load_now: float | None = None) -> float:
    """Seconds to train and evaluate ``generations`` (each a schedule plan: rungs of ``{"target",
    "candidates"}``) with ``workers`` jobs at once beside other processes that want ``load_now`` cores;
    evaluations of full-length episodes (a trained policy rarely ends early)."""
    evaluation = costs.eval_fixed_s + costs.eval_step_s * episodes * episode_length
    total = 0.0
    for plan in generations:
        before = 0
        for rung in plan:
            n, steps = int(rung["candidates"]), max(0, int(rung["target"]) - before)
            before = int(rung["target"])
            if n <= 0:
                continue
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
    and two trusted evaluations of its policy. RuntimeError when the training or evaluation fails."""
    from rewardgen.run.executors import usable_cores
    from rewardgen.run.step import save_training_output, training_failure, trusted_fitness
    from rewardgen.tasks.baselines import sparse_reward_source

    started = time.monotonic()
    own_start_done(executor)
    probe = setup.job(None, seed, 1)
    batch = (probe.num_envs or 8) * int(task.ppo.get("rollout_steps", 16)) if setup.trainer == "ppo" else 2048
    steps = calibration_steps(batch, setup.budget)
    check = SmokeCheck(steps=check_steps, seed=seed, num_envs=4, seconds=60.0)
    job = setup.job(sparse_reward_source(task), seed, steps, cpu_threads, None, check)
    began = time.monotonic()
    with OtherDemand(own=cpu_threads) as demand:
        res = executor.submit(job, setup.limits(steps)).result()
    wall = time.monotonic() - began
    failure = training_failure(res)
    if failure is not None:
        raise RuntimeError(f"calibration training failed ({failure[0]}): {failure[1]}")
    result = res.result or {}
    trained = int(result.get("env_steps") or steps)
    timing = (result.get("extra") or {}).get("timing") or {}
    # the steps' own cost (PPO reports collection and updates apart from its set-up); the rest of the
    # job's wall time is paid once per slice whatever its length
    train_s = float(timing.get("collect_s", 0) + timing.get("update_s", 0)) or float(result.get("seconds") or wall)
    with tempfile.TemporaryDirectory(prefix="rewardgen-calibration-") as tmp:
        files = RunFiles(Path(tmp))
        save_training_output(files, Path(tmp), res)
        began = time.monotonic()
        short, error = trusted_fitness(replace(task, episode_length=min(task.episode_length, 10)), files, Path(tmp),
                                       1, seed)
        fixed = time.monotonic() - began
        began = time.monotonic()
        full, error = trusted_fitness(task, files, Path(tmp), episodes, seed) if short else (None, error)
        whole = time.monotonic() - began
        if full is None or not (Path(tmp) / POLICY_FILE).is_file():
            raise RuntimeError(f"calibration evaluation failed: {error}")
    simulated = sum(int(e.get("length") or 0) for e in full.get("episodes") or []) or 1
    return Costs(job_s=max(0.0, wall - train_s), step_s=train_s / max(1, trained), eval_fixed_s=fixed,
                 eval_step_s=max(0.0, whole - fixed) / simulated, load=round(demand.cores(), 3),
                 cores=usable_cores(), measured_at=time.time(), seconds=round(time.monotonic() - started, 2))


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
