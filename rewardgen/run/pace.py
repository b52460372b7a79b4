"""A run's time estimate: the env-steps it plans, what earlier processes trained already, and the first
forecast, measured on this machine before it is promised (``rewardgen.run.forecast``); then refined
as slices finish, and remembered after the run for the next one of the same setup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rewardgen.errors import flatten
from rewardgen.run.config import EvolveConfig
from rewardgen.run.confirm import finished_confirm_trainings, planned_confirm_steps
from rewardgen.run.events import Calibrating, RunWarning
from rewardgen.run.executors import default_candidate_workers
from rewardgen.run.progress import Estimate, Progress
from rewardgen.run.schedule import planned_env_steps, rung_fractions, schedule_plan
from rewardgen.run.step import TrainingSetup
from rewardgen.store import RungRecord, RunStore, Stage, rung_file
from rewardgen.tasks.spec import Task


class RunPace:
    """The estimate of one run in this process. ``executor()`` gives the run's executor (made on first
    use); ``forecast``: measure (or recall) this machine's pace for the first estimate."""

    def __init__(self, store: RunStore, config: EvolveConfig, task: Task, setup: TrainingSetup, kind: str,
                 eval_seed: int, executor: Callable[[], Any], progress: Progress, forecast: bool = True):
        self.store, self.config, self.task, self.setup, self.kind = store, config, task, setup, kind
        self.steps, self.trainer = setup.budget, setup.trainer
        self.eval_seed, self.executor, self.progress, self.forecast = eval_seed, executor, progress, forecast
        self.estimate: Estimate | None = None
        self._pace: tuple[str, Any, float] | None = None

    def _confirming(self) -> bool:
        return bool(self.config.confirm_seeds) and self.kind == "evolve"

    def start(self) -> Estimate:
        """The run's planned env-steps, what earlier processes already trained, and the cores."""
        k, gens = self.config.samples, self.config.generations
        planned = gens * planned_env_steps(k, self.steps, self.config.schedule)
        done, left = 0, 0
        if self._confirming():
            confirming = planned_confirm_steps(self.config.confirm_seeds, self.steps, k, gens)
            planned += confirming
            done += min(confirming, self.steps * finished_confirm_trainings(self.store))
        for g in range(gens):
            gen = self.store.read_generation(g)
            for c in range(len((gen or {}).get("candidates", [])) or k):
                m = self.store.read_metrics(g, c) if gen is not None else None
                if m is not None:
                    # a finished candidate spent all it ever will: count it as its planned share
                    done += m.get("steps_spent", 0) if m.get("status") == Stage.OK else 0
                    continue
                left += 1
                r = 0
                while gen is not None and (rung := self._rung(g, c, r)) is not None:
                    if rung.get("status") == Stage.OK:
                        done += rung.get("env_steps", 0)
                    r += 1
        from rewardgen.run.executors import usable_cores

        cores_used = usable_cores() if self.config.executor == "local" else max(1, k)
        done = min(done, planned)
        forecast, basis = self._forecast(planned, done) if done < planned and self.forecast else (None, "guess")
        self.estimate = Estimate(planned, done, left, self.trainer, cores_used, forecast, basis)
        return self.estimate

    def _rung(self, g: int, c: int, r: int) -> RungRecord | None:
        return self.store.read_json(self.store.cand_dir(g, c) / rung_file(r))

    def trained(self, env_steps: int) -> None:
        """Count env-steps this process trained into the estimate and show the new time left."""
        if self.estimate is not None:
            self.estimate.add(env_steps)
            self.progress.event(self.estimate.update())

    def _setup_key(self) -> tuple[str, int, int]:
        """(the rate book's key for this run's training setup, jobs at once, each job's threads)."""
        from rewardgen.run.forecast import setup_key

        k = self.config.samples
        workers = k if self.config.executor == "ray" else (self.config.workers or default_candidate_workers(k))
        threads = self.executor().cpu_threads(workers)
        num_envs = self.setup.job(None, 0, 1).num_envs
        return setup_key(self.task.id, self.setup, num_envs, workers, threads), workers, threads

    def _forecast(self, planned: int, done: int) -> tuple[float | None, str]:
        """Seconds the work left will take, from costs remembered for this setup or measured now by a
        short calibration, and which of the two; (None, "guess") when neither is possible."""
        from rewardgen.run.forecast import RateBook, calibrate, forecast_seconds, other_demand, own_start_done

        key, workers, threads = self._setup_key()
        book = RateBook()
        remembered = book.get(key)
        episodes = self.config.eval_episodes or self.task.eval_episodes
        if remembered is not None:
            costs, correction, basis = *remembered, "remembered"
            own_start_done(self.executor())
            load_now = other_demand()
        else:
            self.progress.event(Calibrating(task=self.task.id, trainer=self.trainer))
            try:
                costs = calibrate(self.task, self.setup, self.executor(), episodes, self.eval_seed, threads,
                                  self.config.check_steps)
            except (RuntimeError, ValueError, OSError) as exc:
                self.progress.event(RunWarning(message=f"could not measure this machine's speed for the time "
                                                       f"estimate ({flatten(exc, 300)}); it is a rough guess"))
                return None, "guess"
            book.put(key, costs)
            correction, basis, load_now = 1.0, "calibrated", costs.load
        raw = forecast_seconds(costs, self._plans(), workers, episodes, self.task.episode_length, load_now)
        self._pace = (key, costs, raw * (planned - done) / max(1, planned))
        return correction * raw * (planned - done) / max(1, planned), basis

    def _plans(self) -> list[list[dict]]:
        """Every generation's schedule plan (the slices it trains when all goes well), and the
        confirmation's trainings as one more."""
        k = self.config.samples
        plan = schedule_plan(k, self.steps, rung_fractions(k, self.config.schedule), self.config.schedule)
        plans = [plan] * self.config.generations
        if self._confirming():
            plans.append([{"target": self.steps, "candidates": min(3, k * self.config.generations)
                           * self.config.confirm_seeds}])
        return plans

    def remember(self) -> None:
        """After a run this process took from its start to its end and trained as planned (candidates that
        failed early say nothing about the pace): how far its duration was from the forecast
        (``correction``), for the next run of the same setup. Not after a run whose duration held
        other waits (an LLM's answers, a person's feedback)."""
        pace, est = self._pace, self.estimate
        if pace is None or est is None or est.done_at_start or pace[2] <= 0 or est.here < 0.8 * est.planned:
            return
        if self.config.interactive or (self.kind == "evolve" and self.config.proposer == "openai"):
            return
        from rewardgen.run.forecast import RateBook

        key, costs, raw = pace
        RateBook().put(key, costs, est.elapsed() / raw)
