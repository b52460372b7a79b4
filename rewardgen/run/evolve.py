"""The evolve loop: propose K rewards, check and train each in a worker, evaluate, reflect, repeat.

The orchestrator (this module) never executes candidate code. It writes every proposal to the run
store before training starts, runs each candidate in ``rewardgen.sandbox`` workers, gets trusted
fitness from ``rewardgen.evaluate.evaluator`` in yet another process, and records everything atomically, so
that ``resume`` can continue any interrupted run without retraining finished candidates.
"""

from __future__ import annotations

from rewardgen import interrupt
from rewardgen.errors import flatten

import base64
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rewardgen.procs.check import CHECK_LIMITS, CheckVerdict, check_reward, jail_flags, verdict_from_result
from rewardgen.contract.job import SmokeCheck
from rewardgen.run.config import (ConfigError, EvolveConfig, UserReach, continue_settings, effective_trainer,
                                  resolve_proposer)
from rewardgen.run.progress import Estimate, Fanout, LiveFile, Progress, SilentProgress
from rewardgen.run.executors import default_candidate_workers
from rewardgen.run.confirm import confirm_best, finished_confirm_trainings, planned_confirm_steps
from rewardgen.run.step import save_training_output, training_failure, training_setup, trusted_fitness
from rewardgen.evaluate.hacking import hacking_alarm
from rewardgen.proposers import CandidateRecord, Proposal, ProposalContext, get_proposer
from rewardgen.inspect.report import write_report
from rewardgen.store import (CandidateMetrics, RungRecord, cand_dirname, candidate_label, gen_dirname, GENERATION_FILE, METRICS_FILE, POLICY_FILE, PROPOSAL_FILE, REPORT_FILE,
    LIVE_FILE, REWARD_FILE, RUN_FILE, RunStore, RunStoreError, TRAIN_LOG, VIDEO_FILE, VIDEO_INFO_FILE, as_label, new_run_id,
    rung_file, state_file)
from rewardgen.procs import WorkerLimits
from rewardgen.tasks.spec import Task, check_loads, get_task, task_from_dict
from rewardgen.run.schedule import (HALVING_RUNGS, SCHEDULES, Evaluation, adaptive_decision,  # noqa: F401
                                    merge_training_stats, planned_env_steps, rung_fractions, schedule_plan,
                                    survivors)


class EndpointFailure(RuntimeError):
    """A generation got no usable candidate because every LLM request failed; the run stops
    (status "failed", its ``error`` in run.json) and ``resume`` asks that generation again."""


@dataclass
class CandidateOutcome:
    generation: int
    candidate: int
    status: str
    fitness: float | None
    error: str | None = None
    success: bool = False
    extra: dict = field(default_factory=dict)


def start_run(config: EvolveConfig, runs_dir: Path, kind: str = "evolve", task: Task | None = None) -> RunStore:
    """Validate the config and task, and create the run directory with its ``run.json``.

    ``task`` overrides ``config.task`` (a robot brought as an MJCF file has no task file)."""
    config.validate()
    if task is not None:
        config.task = task.id
    task = task or get_task(config.task)
    check_loads(task)  # an env that cannot be built fails here, before the run directory exists
    if kind == "evolve":
        config.proposer = resolve_proposer(config)
        if config.proposer == "openai" and not config.replay:
            from rewardgen.proposers.client import missing_key_problem

            problem = missing_key_problem(config.base_url)
            if problem:
                raise ConfigError(problem)
    proposer_label = get_proposer(config.proposer, config).label if kind == "evolve" else "user-supplied reward file"
    steps = config.budget(task)
    run = {
        "kind": kind,
        "status": "created",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": asdict(config) | {"steps": steps},
        "task": task.to_dict(),
        "proposer": proposer_label,
        "generations": [],
        "best": None,
    }
    store = RunStore.create(runs_dir, new_run_id(task.id) + ("-train" if kind == "train" else ""), run)
    if config.replay:  # the replayed run's recorded answers become this run's cache (files only, no links)
        store.copy_from(RunStore(Path(config.replay)), "llm-cache")
    return store


def replay_config(run_dir: Path, reach: UserReach | None = None) -> tuple[EvolveConfig, Task]:
    """The config of a past run, set to replay its recorded LLM answers (``evolve --replay``). The run
    is someone else's perhaps: what it names to reach (prompt templates, a Ray cluster) is used only
    when the user names it too (``reach``; ``continue_settings``)."""
    old_store = RunStore.open(run_dir)
    old = old_store.read_run()
    if not old_store.is_dir("llm-cache"):
        raise ConfigError(f"{run_dir} has no recorded LLM answers to replay (llm-cache/ is missing)")
    config = _recorded_config(old, run_dir)
    config.llm, config.proposer, config.replay = "openai", "openai", str(Path(run_dir).resolve())
    config, _ = continue_settings(config, reach or UserReach(), f"run {Path(run_dir).name}")
    return config, task_from_dict(old["task"], where=str(Path(run_dir) / RUN_FILE))


def _recorded_config(run: dict, run_dir: Path) -> EvolveConfig:
    """``run.json``'s config as an EvolveConfig; ConfigError (one line) when it is not one."""
    try:
        return EvolveConfig.from_dict(run["config"])
    except (TypeError, AttributeError) as exc:
        raise ConfigError(f"corrupt run file {Path(run_dir) / RUN_FILE}: its config is not a run's ({exc})") from None


class Evolution:
    """Runs (or resumes) the run in ``store`` to completion.

    ``forecast``: measure (or recall) this machine's pace for the first time estimate
    (``rewardgen.run.forecast``); off where the run itself is being timed (``bench evolve``)."""

    def __init__(self, store: RunStore, progress: Progress | None = None, forecast: bool = True):
        self.store = store
        self.forecast = forecast
        # whoever watches (the terminal), and live.json for the web UI: the same events
        self.progress = Fanout(progress or SilentProgress(), LiveFile(lambda obj: store.write_json(LIVE_FILE, obj)))
        run = store.read_run()
        self.config = EvolveConfig.from_dict(run["config"])
        self.task: Task = task_from_dict(run["task"], where=str(store.path / RUN_FILE))
        self.kind = run.get("kind", "evolve")
        self.steps = self.config.budget(self.task)
        self.eval_seed = 10_000 + 1000 * self.config.seed
        self._executor = None
        self.trainer, self.trainer_note = effective_trainer(self.task, self.config.trainer)
        self.setup = training_setup(self.task, self.config, self.trainer, self.steps)
        self._checked: dict[str, tuple[CheckVerdict, float]] = {}  # source hash -> the proposer's verdict
        self._video_lock = threading.Lock()
        self._estimate: Estimate | None = None
        self._video_pool: ThreadPoolExecutor | None = None
        self._video_jobs: dict[tuple[int, int], Any] = {}

    @property
    def executor(self):
        """Where training jobs run: local worker processes, or Ray tasks (created on first use)."""
        if self._executor is None:
            from rewardgen.run.executors import make_executor

            self._executor = make_executor(self.config.executor, workers=self.config.workers,
                                           ray_address=self.config.ray_address)
        return self._executor

    # ----- the loop
    def run(self) -> dict:
        self.store.lock()
        try:
            self._set_status("running")
            self.progress.event("run_started", run_dir=str(self.store.path), task=self.task.id,
                                proposer=self.store.read_run().get("proposer"), config=asdict(self.config),
                                run_kind=self.kind, steps=self.steps)
            if self.trainer_note:
                self.progress.event("warning", message=self.trainer_note)
            if self.config.executor == "local":
                from rewardgen.procs import zygote

                zygote.prestart()  # its imports overlap with the proposer's work
            self._queue_missing_videos()
            self._estimate = self._new_estimate()
            self.progress.event("estimate", **self._estimate.fields())
            for g in range(self.config.generations):
                self._generation(g)
                if self.config.interactive and g < self.config.generations - 1 and self._needs_feedback(g):
                    self._wait_videos(g)  # the person looks at them next
                    self._ask_feedback(g)
            if self.config.confirm_seeds and self.kind == "evolve":
                self._confirm()
            if self._wait_videos():
                self._write_report()
            self._set_status("finished")
            self._write_report()  # again: the one written after the last generation still said "running"
            self._remember_pace()
            summary = self.summary()
            self.progress.event("run_finished", summary=summary)
            return summary
        except EndpointFailure as exc:
            self._set_status("failed", error=str(exc))
            raise
        except BaseException:
            self._set_status("interrupted")
            raise
        finally:
            if self._video_pool is not None:
                self._video_pool.shutdown(wait=True, cancel_futures=True)
                self._video_pool = None
            if self._executor is not None:
                self._executor.close()
                self._executor = None
            self.store.unlock()

    def _new_estimate(self) -> Estimate:
        """The run's planned env-steps, what earlier processes already trained, and the cores."""
        k, gens = self.config.samples, self.config.generations
        planned = gens * planned_env_steps(k, self.steps, self.config.schedule)
        done, left = 0, 0
        if self.config.confirm_seeds and self.kind == "evolve":
            confirming = planned_confirm_steps(self.config.confirm_seeds, self.steps, k, gens)
            planned += confirming
            done += min(confirming, self.steps * finished_confirm_trainings(self.store))
        for g in range(gens):
            gen = self.store.read_generation(g)
            for c in range(len((gen or {}).get("candidates", [])) or k):
                if gen is not None and self.store.read_metrics(g, c) is not None:
                    m = self.store.read_metrics(g, c) or {}
                    # a finished candidate spent all it ever will: count it as its planned share
                    done += int(m.get("steps_spent") or 0) if m.get("status") == "ok" else 0
                    continue
                left += 1
                r = 0
                while gen is not None and (rung := self._rung(g, c, r)) is not None:
                    if rung.get("status") == "ok":
                        done += int(rung.get("env_steps") or 0)
                    r += 1
        from rewardgen.run.executors import usable_cores

        cores_used = usable_cores() if self.config.executor == "local" else max(1, k)
        done = min(done, planned)
        forecast, basis = self._forecast(planned, done) if done < planned and self.forecast else (None, "guess")
        return Estimate(planned, done, left, self.trainer, cores_used, forecast, basis)

    # ----- the first time estimate: measured before it is promised (rewardgen.run.forecast)
    def _pace_setup(self) -> tuple[str, int, int]:
        """(the rate book's key for this run's training setup, jobs at once, each job's threads)."""
        from rewardgen.run.forecast import setup_key

        k = self.config.samples
        workers = k if self.config.executor == "ray" else (self.config.workers or default_candidate_workers(k))
        threads = self.executor.cpu_threads(workers)
        num_envs = self.setup.job(None, 0, 1).num_envs
        return setup_key(self.task.id, self.setup, num_envs, workers, threads), workers, threads

    def _forecast(self, planned: int, done: int) -> tuple[float | None, str]:
        """Seconds the work left will take, from costs remembered for this setup or measured now by a
        short calibration, and which of the two; (None, "guess") when neither is possible."""
        from rewardgen.run.forecast import RateBook, calibrate, forecast_seconds, loadavg

        key, workers, threads = self._pace_setup()
        book = RateBook()
        remembered = book.get(key)
        if remembered is not None:
            costs, correction, basis = *remembered, "remembered"
        else:
            self.progress.event("calibrating", task=self.task.id, trainer=self.trainer)
            try:
                costs = calibrate(self.task, self.setup, self.executor, self.config.eval_episodes or
                                  self.task.eval_episodes, self.eval_seed, threads, self.config.check_steps)
            except (RuntimeError, ValueError, OSError) as exc:
                self.progress.event("warning", message=f"could not measure this machine's speed for the time "
                                                       f"estimate ({flatten(exc, 300)}); it is a rough guess")
                return None, "guess"
            book.put(key, costs)
            correction, basis = 1.0, "calibrated"
        plans = self._plans()
        raw = forecast_seconds(costs, plans, workers, self.config.eval_episodes or self.task.eval_episodes,
                               self.task.episode_length, loadavg())
        self._pace = (key, costs, raw * (planned - done) / max(1, planned))
        return correction * raw * (planned - done) / max(1, planned), basis

    def _plans(self) -> list[list[dict]]:
        """Every generation's schedule plan (the slices it trains when all goes well), and the
        confirmation's trainings as one more."""
        k = self.config.samples
        plan = schedule_plan(k, self.steps, rung_fractions(k, self.config.schedule), self.config.schedule)
        plans = [plan] * self.config.generations
        if self.config.confirm_seeds and self.kind == "evolve":
            plans.append([{"target": self.steps, "candidates": min(3, k * self.config.generations)
                           * self.config.confirm_seeds}])
        return plans

    def _remember_pace(self) -> None:
        """After a run this process took from its start to its end and trained as planned (candidates that
        failed early say nothing about the pace): how far its duration was from the forecast
        (``correction``), for the next run of the same setup. Not after a run whose duration held
        other waits (an LLM's answers, a person's feedback)."""
        pace = getattr(self, "_pace", None)
        est = self._estimate
        if pace is None or est is None or est.done_at_start or pace[2] <= 0 or est.here < 0.8 * est.planned:
            return
        if self.config.interactive or (self.kind == "evolve" and self.config.proposer == "openai"):
            return
        from rewardgen.run.forecast import RateBook

        key, costs, raw = pace
        RateBook().put(key, costs, est.elapsed() / raw)

    def _trained(self, env_steps: int) -> None:
        """Count env-steps this process trained into the run's estimate and show the new time left."""
        if self._estimate is not None:
            self._estimate.add(env_steps)
            self.progress.event("estimate", **self._estimate.fields())

    def _needs_feedback(self, g: int) -> bool:
        """Interactive runs pause once per generation: not again when feedback for g + 1 exists."""
        return not self.feedback(g + 1) and self.store.read_generation(g + 1) is None

    def _ask_feedback(self, g: int) -> None:
        from rich.console import Console

        from rewardgen.run.interactive import ask_in_terminal

        self._set_status("awaiting_feedback")
        self.progress.event("awaiting_feedback", generation=g, run_dir=str(self.store.path))
        def ask(prompt: str) -> str:  # prompts on stderr: stdout stays clean for --json
            sys.stderr.write(prompt)
            sys.stderr.flush()
            return input()

        ask_in_terminal(self.store.path, g, getattr(self.progress, "console", None) or Console(stderr=True), ask)
        self._set_status("running")

    def _set_status(self, status: str, error: str | None = None) -> None:
        run = self.store.read_run()
        run["status"] = status
        if error:
            run["error"] = error
        else:
            run.pop("error", None)
        run["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.store.write_run(run)

    def history(self, upto: int) -> list[list[CandidateRecord]]:
        """Finished candidates of generations before ``upto``, as proposers see them."""
        out = []
        retrained: dict[tuple, list[float]] = {}  # from a confirmation this run made earlier (an extended run)
        for row in ((self.store.read_run().get("confirm") or {}).get("contenders") or []):
            if isinstance(row, dict) and isinstance(row.get("fitness"), list):
                values = [float(x) for x in row["fitness"] if isinstance(x, (int, float)) and not isinstance(x, bool)]
                if values:
                    retrained[(row.get("generation"), row.get("candidate"))] = values
        for g in range(upto):
            gen = self.store.read_generation(g) or {"candidates": []}
            records = []
            for c in range(len(gen["candidates"])):
                m = self.store.read_metrics(g, c)
                if m is None:
                    continue
                proposal = gen["candidates"][c]
                if proposal.get("parent"):  # the parent by its label (runs made before labels stored "0/1")
                    proposal = proposal | {"parent": as_label(proposal["parent"])}
                records.append(CandidateRecord(
                    generation=g, candidate=c, source=self.store.read_source(g, c), status=m["status"],
                    fitness=m.get("fitness"), error=m.get("error"),
                    proposal=proposal, stats=dict(m.get("training") or {}, hacking=m.get("hacking"),
                                                  trajectories=(m.get("evaluation") or {}).get("trajectories")),
                    rungs=self._evaluations(g, c, int(m.get("rungs") or 0)), fate=m.get("fate"),
                    retrained=retrained.get((g, c), [])))
            out.append(records)
        return out

    def _evaluations(self, g: int, c: int, rungs: int) -> list[dict]:
        """The trusted evaluation after each of a candidate's slices: env-steps so far, fitness, and each
        episode's fitness (so a child cut early is compared with its parent at the same env-steps)."""
        out = []
        for r in range(rungs):
            rung = self._rung(g, c, r) or {}
            episodes = [e.get("fitness") for e in (rung.get("evaluation") or {}).get("episodes") or []]
            out.append({"env_steps": int(rung.get("env_steps_total") or 0),
                        "fitness": rung.get("fitness") if rung.get("status") == "ok" else None,
                        "episodes": [float(x) for x in episodes if isinstance(x, (int, float))]})
        return out

    def _propose(self, g: int) -> dict:
        proposer = get_proposer(self.config.proposer, self.config)
        ctx = ProposalContext(task=self.task, schema=self.task.schema, generation=g, samples=self.config.samples,
                              seed=self.config.seed, history=self.history(g), feedback=self.feedback(g),
                              run_dir=self.store.path, record_dir=self.store.gen_dir(g) / "llm",
                              check=self._proposer_check,
                              event=self.progress.event,
                              plan=self.setup.plan(self.config.samples, self.config.schedule, self.config.eval_episodes))
        self.progress.event("proposing", generation=g, proposer=proposer.label)
        proposals = proposer.propose(ctx)
        if len(proposals) != self.config.samples:
            raise RuntimeError(f"{proposer.label} returned {len(proposals)} proposals for {self.config.samples} samples")
        failure = getattr(proposer, "failure", None)
        if failure:  # nothing usable because of the endpoint: stop here; resume asks this generation again
            raise EndpointFailure(failure)
        return self.write_generation(g, proposals, proposer.name, tokens=getattr(proposer, "usage", None) or None)

    def _proposer_check(self, source: str) -> CheckVerdict:
        """The proposer's smoke check of a source; remembered, so the candidate is not checked twice."""
        started = time.monotonic()
        verdict = check_reward(source, self.task, steps=self.config.check_steps, seed=self.config.seed)
        self._checked[_source_key(source)] = (verdict, round(time.monotonic() - started, 2))
        return verdict

    def feedback(self, g: int) -> list[dict]:
        """Human feedback given after generation ``g - 1`` finished, for generation ``g`` to use."""
        from rewardgen.run.feedback import for_generation

        return for_generation(self.store.path, g)

    def write_generation(self, g: int, proposals: list[Proposal], proposer: str, tokens: dict | None = None) -> dict:
        """Write every candidate's source, then the generation record that marks it complete."""
        records = []
        for c, p in enumerate(proposals):
            d = self.store.cand_dir(g, c)
            self.store.write_text(d / REWARD_FILE, p.source)
            record = p.record(proposer)
            self.store.write_json(d / PROPOSAL_FILE, record)
            records.append(record)
        gen = {"generation": g, "proposer": proposer, "candidates": records, "tokens": tokens,
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.store.write_json(self.store.gen_dir(g) / GENERATION_FILE, gen)
        return gen

    def _generation(self, g: int) -> None:
        gen = self.store.read_generation(g) or self._propose(g)
        n = len(gen["candidates"])
        todo = [c for c in range(n) if self.store.read_metrics(g, c) is None]
        fractions = rung_fractions(n, self.config.schedule)
        self.progress.event("generation_started", generation=g, candidates=n, pending=todo, steps=self.steps,
                            schedule=self.config.schedule,
                            plan=schedule_plan(len(todo), self.steps, fractions, self.config.schedule))
        if todo and self.config.schedule == "adaptive" and n > 1:
            self._run_adaptive(g, n)
        elif todo:
            self._run_rungs(g, n, fractions)
        self._record_generation(g, n, resumed=not todo)

    # ----- the schedule: rungs of a growing budget; survivors continue from their saved state
    def _run_rungs(self, g: int, n: int, fractions: list[float]) -> None:
        """Train every candidate to ``fractions[0]`` of the budget, keep the share ``HALVING_RUNGS`` says
        (the best 3/8, then a third of those, by trusted fitness), continue them to the next fraction, ... A candidate's fate is sealed in
        ``metrics.json`` when it fails, is eliminated, or finishes the last rung. Every slice is
        recorded in ``rung-R.json``, so a resumed run recomputes the same survivors."""
        participants = list(range(n))
        workers = n if self.config.executor == "ray" else (self.config.workers or default_candidate_workers(n))
        for r, fraction in enumerate(fractions):
            target = max(1, int(round(self.steps * fraction)))
            pending = [c for c in participants if self._rung(g, c, r) is None]
            if pending:
                # ``workers`` slices train at once; a slice that finished training gives its slot to the
                # next one while its trusted evaluation runs (one more thread per slot for that)
                slots = threading.BoundedSemaphore(min(workers, len(pending)))
                with ThreadPoolExecutor(max_workers=min(2 * workers, len(pending)), thread_name_prefix="candidate") as pool:
                    threads = self.executor.cpu_threads(min(workers, len(pending)))
                    for fut in [pool.submit(self._slice, g, c, r, target, len(fractions), threads, slots)
                                for c in pending]:
                        interrupt.wait(fut)
            records = {c: self._rung(g, c, r) for c in participants}
            ok = sorted((c for c in participants if records[c]["status"] == "ok"),
                        key=lambda c: (-records[c]["fitness"], c))
            for c in participants:
                if records[c]["status"] != "ok":
                    self._seal(g, c, r, "failed")
            if r == len(fractions) - 1:
                for c in ok:
                    self._seal(g, c, r, "final")
                return
            keep = ok[: survivors(len(ok), r)] if ok else []
            for c in ok[len(keep):]:
                self._seal(g, c, r, "eliminated")
            self.progress.event("rung_finished", generation=g, rung=r, rungs=len(fractions), continuing=keep,
                                next_target=max(1, int(round(self.steps * fractions[r + 1]))))
            participants = keep
            if not participants:
                return

    def _run_adaptive(self, g: int, n: int) -> None:
        """The adaptive schedule: rung after rung, ``adaptive_decision`` picks who trains the next
        increment from the trusted fitness of the rungs before it. Each decision is recomputed from the
        ``rung-R.json`` records written before that rung, so a resumed run takes the same decisions and
        trains only the slices whose record is missing."""
        workers = n if self.config.executor == "ray" else (self.config.workers or default_candidate_workers(n))
        longest = len(rung_fractions(n, "adaptive")) + 2  # every rung adds an increment: a safe bound
        for r in range(longest + 1):
            history = [[Evaluation.from_rung(self._rung(g, c, q)) for q in range(r) if self._rung(g, c, q)]
                       for c in range(n)]
            decision = adaptive_decision(history, self.steps, scale=self.task.success_threshold)
            for c in decision.failed:
                self._seal(g, c, r - 1, "failed")
            for c in decision.dropped:
                self._seal(g, c, r - 1, "eliminated")
            for c in decision.finished:
                self._seal(g, c, r - 1, "final")
            if not decision.train:
                return
            if r == longest:
                raise RuntimeError(f"adaptive schedule of generation {g} did not finish in {longest} rungs")
            pending = [c for c in sorted(decision.train) if self._rung(g, c, r) is None]
            if r:
                self.progress.event("rung_finished", generation=g, rung=r - 1, rungs=longest,
                                    continuing=sorted(decision.train), next_target=max(decision.train.values()))
            if not pending:
                continue
            slots = threading.BoundedSemaphore(min(workers, len(pending)))
            with ThreadPoolExecutor(max_workers=min(2 * workers, len(pending)), thread_name_prefix="candidate") as pool:
                threads = self.executor.cpu_threads(min(workers, len(pending)))
                # the slice that reaches the full budget is its candidate's last: no state kept, video queued
                futures = [pool.submit(self._slice, g, c, r, decision.train[c],
                                       r + 1 if decision.train[c] >= self.steps else longest, threads, slots)
                           for c in pending]
                for fut in futures:
                    interrupt.wait(fut)

    def _rung(self, g: int, c: int, r: int) -> RungRecord | None:
        return self.store.read_json(self.store.cand_dir(g, c) / rung_file(r))

    def _slice(self, g: int, c: int, r: int, target: int, rungs: int, cpu_threads: int = 1,
               slots: threading.Semaphore | None = None) -> None:
        """Check (first rung only, folded into the training), train up to ``target`` env-steps,
        evaluate; record ``rung-r.json``. ``cpu_threads``: the training job's share of the cores
        while this rung's slices run together; ``slots``: held while checking and training only."""
        with _Slot(slots) as slot:
            return self._train_slice(g, c, r, target, rungs, cpu_threads, slot)

    def _train_slice(self, g: int, c: int, r: int, target: int, rungs: int, cpu_threads: int, slot: "_Slot") -> None:
        d = self.store.cand_dir(g, c)
        source = self.store.read_source(g, c)
        seed = self.config.seed * 1000 + g * 100 + c
        record: RungRecord = {"rung": r, "target_steps": target}

        def fail(status: str, error: str | None, **more: Any) -> None:
            self.store.write_json(d / rung_file(r), record | {"status": status, "error": error, "fitness": None} | more)

        self.progress.event("candidate_started", generation=g, candidate=c, rung=r, rungs=rungs, target=target,
                            budget=self.steps)
        if r == 0:
            proposal_error = self._proposal_error(g, c)
            if proposal_error:
                return fail("proposal", proposal_error)
            known = self._checked.get(_source_key(source))  # the proposer checked this source already
            if known is not None:
                check, seconds = known
                record["check"] = check.to_json() | {"seconds": seconds, "isolation": check.isolation,
                                                     "warnings": check.warnings, "by": "proposer"}
                if not check.ok:
                    self.store.write_text(d / TRAIN_LOG, check.log)
                    return fail(check.stage, check.error, traceback="\n".join(check.details) or check.error)
        previous = self._rung(g, c, r - 1) if r > 0 else None
        done_steps = int(previous["env_steps_total"]) if previous else 0
        steps, resume = max(1, target - done_steps), None
        saved_state = d / state_file(r - 1)
        if previous and self.store.is_file(saved_state):
            resume = base64.b64encode(self.store.read_bytes(saved_state)).decode()
        elif previous:  # the trainer gave no resumable state: train this rung's budget from scratch
            steps, done_steps = target, 0
            record["restarted"] = "the trainer returned no resumable state; this rung trained from scratch"
        check = None
        if r == 0 and "check" not in record:  # the smoke check, folded into the start of the training
            check = SmokeCheck(steps=self.config.check_steps, seed=seed, num_envs=4, seconds=CHECK_LIMITS.wall_seconds)
        job = self.setup.job(source, seed + 7919 * r, steps, cpu_threads, resume, check)

        def on_event(ev: dict) -> None:
            self.progress.event("candidate_progress", generation=g, candidate=c,
                                steps=done_steps + ev.get("steps", 0), total=target, budget=self.steps,
                                rung=r, rungs=rungs)

        on_event({"steps": 0})  # checked (or continuing): training now
        limits = self.setup.limits(job.steps)
        res = self.executor.submit(job, limits, on_event).result()
        if job.check is not None and (res.check is not None or res.stage not in ("protocol", "lost")):
            # (a worker that lied, or a lost machine, says nothing about the candidate: failed as such below)
            check = verdict_from_result(res, source, WorkerLimits(wall_seconds=CHECK_LIMITS.wall_seconds,
                                                                  memory_bytes=limits.memory_bytes,
                                                                  output_bytes=CHECK_LIMITS.output_bytes))
            seconds = (res.check or {}).get("seconds", res.seconds)
            record["check"] = check.to_json() | {"seconds": round(float(seconds), 2), "isolation": check.isolation,
                                                 "warnings": check.warnings, "by": "training worker"}
            if not check.ok:
                self.store.write_text(d / TRAIN_LOG, check.log)
                return fail(check.stage, check.error, traceback="\n".join(check.details) or check.error)
        if jail_flags(res.jail):  # what the reward tried in its jail during this slice (verdict flags)
            record["flags"] = jail_flags(res.jail)
        save_training_output(self.store, d, res, f"--- rung {r}: training to {target} env-steps ---\n", append=r > 0)
        failure = training_failure(res)
        if failure is not None:
            return fail(*failure, traceback=res.traceback, train_seconds=round(res.seconds, 2))
        result = res.result or {}
        resume_state = getattr(res, "resume_state", None)
        if resume_state and r < rungs - 1:
            self.store.write_bytes(d / state_file(r), resume_state)
        extra = result.get("extra") or {}
        steps = int(extra.get("slice_env_steps") or 0) if job.resume is not None else int(result.get("env_steps") or 0)
        self._trained(steps)
        record |= {"training": result.get("stats", {}), "extra": result.get("extra") or {},
                   "env_steps": steps, "env_steps_total": done_steps + steps,
                   "train_seconds": round(res.seconds, 2), "trainer": result.get("trainer"),
                   "env_steps_per_second": round(float(extra.get("env_steps_per_second") or 0)
                                                 or steps / max(result.get("seconds") or 1e-9, 1e-9), 1)}
        slot.release()  # training is over: the next slice may train while this one is evaluated
        if r == rungs - 1 and self.config.video:  # its last policy: the video renders beside the evaluation
            self._queue_video(g, c)
        self.progress.event("evaluating", generation=g, candidate=c)
        started = time.monotonic()
        evaluation, error = trusted_fitness(self.task, self.store, d, self.config.eval_episodes, self.eval_seed)
        if evaluation is None:
            return fail("evaluation", error, **{k: record[k] for k in ("training", "env_steps_total")})
        record["evaluation_seconds"] = round(time.monotonic() - started, 2)
        self.store.write_json(d / rung_file(r), record | {"status": "ok", "error": None,
                                                          "fitness": evaluation["fitness"], "evaluation": evaluation})
        self.progress.event("slice_finished", generation=g, candidate=c, rung=r, rungs=rungs,
                            fitness=evaluation["fitness"])

    def _seal(self, g: int, c: int, last: int, fate: str) -> None:
        """Write the candidate's ``metrics.json`` from its rung records (once)."""
        if self.store.read_metrics(g, c) is not None:
            return
        rungs = [self._rung(g, c, r) for r in range(last + 1)]
        final = rungs[-1]
        metrics: CandidateMetrics = {"generation": g, "candidate": c, "status": final["status"],
                                   "error": final.get("error"), "fitness": final.get("fitness"),
                                   "schedule": self.config.schedule, "fate": fate, "rungs": len(rungs),
                                   "check": rungs[0].get("check")}
        for key in ("traceback", "evaluation", "extra", "trainer", "env_steps_per_second", "train_seconds"):
            if key in final:
                metrics[key] = final[key]
        trained = [x for x in rungs if x.get("training")]
        if trained:
            metrics["training"] = merge_training_stats(trained)
            metrics["hacking"] = hacking_alarm(metrics["training"])
        flags = list(dict.fromkeys(f for x in rungs for f in [*((x.get("check") or {}).get("flags") or []),
                                                               *(x.get("flags") or [])]))
        if flags:
            metrics["flags"] = flags
            for flag in flags:
                self.progress.event("warning", message=f"{candidate_label(g, c)}: the reward {flag}")
        metrics["env_steps"] = max((int(x.get("env_steps_total") or 0) for x in rungs), default=0)
        metrics["steps_spent"] = sum(int(x.get("env_steps") or 0) for x in rungs)
        if final["status"] == "ok":
            metrics["success"] = bool(final["evaluation"]["success"])
        self._finish(self.store.cand_dir(g, c), metrics)
        if final["status"] == "ok" and self.config.video:
            self._queue_video(g, c)

    # ----- videos: rendered off the critical path, at the lowest CPU priority, while training goes on
    def _queue_video(self, g: int, c: int) -> None:
        """Render the candidate's video in the background (one at a time, ``SCHED_IDLE``); ``video.json``
        (file, length, frames, or the error) is written when it is done. ``_wait_videos`` waits."""
        with self._video_lock:
            if (g, c) in self._video_jobs:
                return
            if self._video_pool is None:
                self._video_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video")
            self._video_jobs[(g, c)] = self._video_pool.submit(self._render_video, g, c)

    def _render_video(self, g: int, c: int) -> None:
        info = self._video(g, c)
        # beside metrics.json, which stays as it was sealed
        self.store.write_json(self.store.cand_dir(g, c) / VIDEO_INFO_FILE, info)
        self.progress.event("video_ready", generation=g, candidate=c, video=info)

    def _wait_videos(self, generation: int | None = None) -> bool:
        """Wait for the queued videos (of ``generation``, or all); True when any was waited for."""
        with self._video_lock:
            jobs = [f for (g, _), f in self._video_jobs.items() if generation is None or g == generation]
        for fut in jobs:
            interrupt.wait(fut)
        return bool(jobs)

    def _videos_pending(self, generation: int) -> bool:
        with self._video_lock:
            return any(not f.done() for (g, _), f in self._video_jobs.items() if g == generation)

    def _queue_missing_videos(self) -> None:
        """On resume: videos of finished candidates that a killed run had not rendered yet."""
        if not self.config.video:
            return
        for g in range(self.config.generations):
            gen = self.store.read_generation(g)
            for c in range(len((gen or {}).get("candidates", []))):
                m = self.store.read_metrics(g, c)
                if m is not None and m.get("status") == "ok" and not self.store.is_file(self.store.cand_dir(g, c) / VIDEO_INFO_FILE):
                    self._queue_video(g, c)

    def _video(self, g: int, c: int) -> dict:
        """Render the candidate's trained policy to ``video.mp4`` (trusted code: plain policy arrays),
        in a process forked from the zygote at idle priority."""
        from rewardgen.evaluate.video import video_path
        from rewardgen.procs.trusted import render_video

        d = self.store.cand_dir(g, c)
        self.progress.event("rendering_video", generation=g, candidate=c)
        try:
            with tempfile.TemporaryDirectory(prefix="rewardgen-video-") as scratch:  # rendered outside the run
                out = Path(scratch) / VIDEO_FILE
                info = render_video(self.task, self.store.read_bytes(d / POLICY_FILE), out, self.eval_seed,
                                    timeout=600.0, idle=True)
                self.store.write_bytes(video_path(d), out.read_bytes())
            return {"file": video_path(d).name, "seconds": info.get("seconds"), "frames": info.get("frames"),
                    "render_seconds": info.get("render_seconds"), "renderer": info.get("renderer")}
        except (RuntimeError, ValueError, OSError) as exc:
            self.progress.event("warning", message=f"video of {candidate_label(g, c)} not rendered: {exc}")
            return {"error": str(exc)}

    def _proposal_error(self, g: int, c: int) -> str | None:
        """Why the proposer could not produce this candidate (e.g. an LLM answer without code)."""
        gen = self.store.read_generation(g) or {}
        cands = gen.get("candidates", [])
        return cands[c].get("error") if c < len(cands) else None

    def _finish(self, d: Path, metrics: CandidateMetrics) -> CandidateOutcome:
        for stale in self.store.listdir(d, "state-*.npz"):  # resumable states: only while a candidate lives
            self.store.unlink(d / stale)
        self.store.write_json(d / METRICS_FILE, metrics)
        if metrics.get("training"):
            try:
                from rewardgen.inspect.tensorboard import write_scalars

                folder = f"{gen_dirname(metrics['generation'])}-{cand_dirname(metrics['candidate'])}"
                with self.store.folder_path(self.store.path / "tensorboard" / folder) as logdir:
                    write_scalars(Path(logdir), metrics)
            except Exception as exc:  # noqa: BLE001 - TensorBoard logs are a convenience, never fatal
                self.progress.event("warning", message=f"TensorBoard scalars not written: {exc}")
        outcome = CandidateOutcome(metrics["generation"], metrics["candidate"], metrics["status"],
                                   metrics.get("fitness"), metrics.get("error"), bool(metrics.get("success")))
        self.progress.event("candidate_finished", generation=outcome.generation, candidate=outcome.candidate,
                            status=outcome.status, fitness=outcome.fitness, error=outcome.error,
                            success=outcome.success, fate=metrics.get("fate"), env_steps=metrics.get("env_steps"),
                            budget=self.steps, rungs=metrics.get("rungs"))
        return outcome

    def _confirm(self) -> None:
        """Retrain the contenders for the run's best on new seeds and name the best by their mean
        (``rewardgen.run.confirm``); ``run.json`` keeps the record as ``confirm``."""
        episodes = self.config.eval_episodes or self.task.eval_episodes
        result = confirm_best(self.store, self.task, self.setup, self.steps, self.trainer, episodes, self.eval_seed,
                              self.config.seed, self.config.confirm_seeds, self.executor, self.progress,
                              trained=self._trained)
        run = self.store.read_run()
        run["confirm"] = result
        if result and result["best"]:
            b = result["best"]
            row = next(r for r in result["contenders"]
                       if (r["generation"], r["candidate"]) == (b["generation"], b["candidate"]))
            run["best"] = {"generation": b["generation"], "candidate": b["candidate"], "fitness": row["selection_fitness"],
                           "confirmed": {"seeds": result["seeds"], "mean": row["mean"], "std": row["std"]}}
        self.store.write_run(run)
        self.progress.event("confirm_finished", confirm=result, best=run["best"])

    # ----- summaries
    def _record_generation(self, g: int, n: int, resumed: bool = False) -> None:
        candidates = []
        for c in range(n):
            m = self.store.read_metrics(g, c) or {}
            candidates.append({"candidate": c, "status": m.get("status", "missing"), "fitness": m.get("fitness"),
                               "success": bool(m.get("success")), "error": (m.get("error") or None),
                               "fate": m.get("fate"), "env_steps": m.get("env_steps"),
                               "steps_spent": m.get("steps_spent", 0)})
        ok = [x for x in candidates if x["status"] == "ok" and x["fitness"] is not None]
        best = max(ok, key=lambda x: x["fitness"]) if ok else None
        tokens = (self.store.read_generation(g) or {}).get("tokens")
        summary = {"generation": g, "candidates": candidates, "tokens": tokens,
                   "steps_spent": sum(int(x.get("steps_spent") or 0) for x in candidates),
                   "best": {"candidate": best["candidate"], "fitness": best["fitness"]} if best else None}
        run = self.store.read_run()
        gens = [x for x in run.get("generations", []) if x["generation"] != g] + [summary]
        run["generations"] = sorted(gens, key=lambda x: x["generation"])
        run["best"] = _overall_best(run["generations"])
        spent = [x["tokens"] for x in run["generations"] if x.get("tokens")]
        if spent:
            run["tokens"] = {k: sum(int(t.get(k, 0)) for t in spent) for k in spent[0]}
        self.store.write_run(run)
        if g == self.config.generations - 1 and self._videos_pending(g):
            report = self.store.path / REPORT_FILE  # written once its videos are there (``run``)
        else:
            report = self._write_report()
        self.progress.event("generation_finished", generation=g, summary=summary, best=run["best"],
                            report=str(report) if report else None, resumed=resumed)

    def _write_report(self) -> Path | None:
        """(Re)write ``report.html``; a failure is a warning, never fatal."""
        try:
            return write_report(self.store.path)
        except Exception as exc:  # noqa: BLE001 - a report failure never stops a run
            self.progress.event("warning", message=f"report not written: {exc}")
            return None

    def summary(self) -> dict:
        run = self.store.read_run()
        return {"run_dir": str(self.store.path), "status": run["status"], "task": self.task.id,
                **labelled(run.get("best"), run.get("generations", []))}


class _Slot:
    """Holds one of ``sem``'s slots from ``with`` until ``release`` or the block's end (once)."""

    def __init__(self, sem: threading.Semaphore | None):
        self.sem, self.held = sem, False

    def __enter__(self) -> "_Slot":
        if self.sem is not None:
            self.sem.acquire()
            self.held = True
        return self

    def release(self) -> None:
        if self.held:
            self.held = False
            self.sem.release()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _source_key(source: str) -> str:
    import hashlib

    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def failure_summary(generations: list[dict]) -> str | None:
    """One line naming the dominant cause when no candidate of any generation trained successfully
    (None when one did): e.g. "no candidate of the 8 trained successfully: 6 failed at runtime: ..."."""
    from collections import Counter

    cands = [c for gen in generations for c in gen.get("candidates", [])]
    if not cands or any(c.get("status") == "ok" for c in cands):
        return None
    stages = {"proposal": "were never usable rewards", "static": "failed the static checks",
              "contract": "broke the reward contract", "runtime": "failed at runtime", "timeout": "timed out",
              "evaluation": "failed the trusted evaluation"}
    causes = Counter((c.get("status") or "?", flatten(c.get("error") or "no error recorded", 300)) for c in cands)
    (status, error), count = causes.most_common(1)[0]
    per_status = Counter(c.get("status") or "?" for c in cands)[status]
    what = stages.get(status, f"failed ({status})")
    return (f"no candidate of the {len(cands)} trained successfully: {per_status} {what}"
            + (f", {count} of them with: {error}" if count < per_status else f": {error}"))


def labelled(best: dict | None, generations: list[dict]) -> dict:
    """``{"best", "generations"}`` as output shows them (JSON, the API's summary): copies in which every
    candidate also carries its ``label`` (``g1c3``) beside the numeric ``generation`` and ``candidate``."""
    def one(item: Any, g: Any) -> Any:
        if isinstance(item, dict) and isinstance(g, int) and isinstance(item.get("candidate"), int):
            return item | {"label": candidate_label(g, item["candidate"])}
        return item

    gens = [gen | {"candidates": [one(c, gen.get("generation")) for c in gen.get("candidates") or []],
                   "best": one(gen.get("best"), gen.get("generation"))} if isinstance(gen, dict) else gen
            for gen in generations]
    return {"best": one(best, (best or {}).get("generation")), "generations": gens}


def _overall_best(generations: list[dict]) -> dict | None:
    best = None
    for gen in generations:
        b = gen.get("best")
        if b and (best is None or b["fitness"] > best["fitness"]):
            best = {"generation": gen["generation"], "candidate": b["candidate"], "fitness": b["fitness"]}
    return best


def evolve(config: EvolveConfig, runs_dir: Path = Path("runs"), progress: Progress | None = None,
           task: Task | None = None) -> dict:
    """Start a new run and take it to completion; returns the run summary."""
    store = start_run(config, runs_dir, task=task)
    return Evolution(store, progress).run()


def extend_run(run_dir: Path, generations: int) -> RunStore:
    """Plan ``generations`` generations in all for the run at ``run_dir`` (the new total, as
    ``evolve --generations`` counts them), so that ``resume`` trains the ones it lacks.

    A finished run is set back to ``queued``; its finished generations, candidates and feedback stay
    as they are and the next generation reads them like any other. Only ``run.json`` changes (one
    atomic write, under the run's lock): a process killed before or after it leaves a run that a plain
    ``resume`` continues. ConfigError (a user error) for a ``train`` run, for a total that would
    drop generations already proposed, or for a finished run's own count (nothing to add)."""
    if not isinstance(generations, int) or isinstance(generations, bool) or generations < 1:
        raise ConfigError(f"--generations must be a positive integer, got {generations!r}")
    store = RunStore.open(run_dir)
    store.lock()  # RunStoreError when another process works on the run
    try:
        run = store.read_run()
        if run.get("kind", "evolve") != "evolve":
            raise ConfigError(f"{store.path} is a `rewardgen {run.get('kind')}` run of one reward file; it has no "
                              "generations to add (start `rewardgen evolve` instead)")
        done = len(run.get("generations") or [])
        proposed = 0
        while store.read_generation(proposed) is not None:
            proposed += 1
        planned = int((run.get("config") or {}).get("generations") or 0)
        if run.get("status") == "finished" and generations <= done:
            raise ConfigError(f"{store.path.name} already has {done} generation(s); --generations is the new total, "
                              f"so give more than {done} (e.g. --generations {done + 1} adds one)")
        if generations < max(proposed, done):
            raise ConfigError(f"{store.path.name} has proposed {max(proposed, done)} generation(s) already; "
                              f"--generations is the new total and cannot be less than that")
        if generations != planned or run.get("status") == "finished":
            run["config"] = dict(run.get("config") or {}, generations=generations)
            if run.get("status") == "finished":
                run["status"] = "queued"
            run["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            store.write_run(run)
    finally:
        store.unlock()
    return store


def check_reach(run_dir: Path, reach: UserReach | None = None) -> None:
    """ConfigError (one line) when the run names an LLM endpoint, prompt templates or a Ray cluster that
    ``reach`` (the user's own settings) does not: what ``resume`` would refuse, checked before anything
    changes the run."""
    run = RunStore.open(run_dir).read_run()
    continue_settings(_recorded_config(run, run_dir), reach or UserReach(), f"run {Path(run_dir).name}")


def resume(run_dir: Path, progress: Progress | None = None, reach: UserReach | None = None,
           generations: int | None = None) -> dict:
    """Continue an interrupted run; finished candidates are kept as they are. ``generations``: the
    run's new total of generations (``extend_run``), to add generations to a finished run.

    The run directory is untrusted input: the LLM endpoint, prompt templates and Ray cluster come from
    ``reach`` (the user's command line and environment), never silently from ``run.json``
    (``continue_settings`` refuses, in one line, a run that names others). The settings used are
    written back to ``run.json`` before anything runs, so the record says what the run continued with."""
    if generations is not None:
        check_reach(run_dir, reach)  # a foreign endpoint is refused before the run is changed
        extend_run(run_dir, generations)
    store = RunStore.open(run_dir)
    run = store.read_run()
    if run.get("status") == "finished":
        return Evolution(store, progress).summary()
    config, notes = continue_settings(_recorded_config(run, run_dir), reach or UserReach(), f"run {store.path.name}")
    if asdict(config) != {k: v for k, v in run["config"].items() if k in asdict(config)}:
        store.lock()  # nobody else may be running it while its settings change
        try:
            run = store.read_run()
            run["config"] = dict(run["config"], **asdict(config))
            if run.get("kind", "evolve") == "evolve":  # what the display and the report say it talks to
                run["proposer"] = get_proposer(config.proposer, config).label
            store.write_run(run)
        finally:
            store.unlock()
    evolution = Evolution(store, progress)
    for note in notes:
        evolution.progress.event("warning", message=note)
    return evolution.run()


def train_file(source: str, config: EvolveConfig, runs_dir: Path = Path("runs"),
               progress: Progress | None = None, task: Task | None = None) -> dict:
    """Train one reward source (``rewardgen train``) as a one-candidate run; returns its metrics."""
    config.samples, config.generations = 1, 1
    store = start_run(config, runs_dir, kind="train", task=task)
    evo = Evolution(store, progress)
    evo.write_generation(0, [Proposal(source, origin="user-supplied reward file")], "file")
    summary = evo.run()
    metrics = store.read_metrics(0, 0) or {}
    return {"run_dir": str(store.path), "summary": summary, "metrics": metrics}


__all__ = ["ConfigError", "EndpointFailure", "EvolveConfig", "failure_summary", "Evolution", "evolve", "check_reach", "extend_run", "resume", "train_file", "start_run", "RunStoreError"]
