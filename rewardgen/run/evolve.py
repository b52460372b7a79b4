"""The evolve loop: propose K rewards, check and train each in a worker, evaluate, reflect, repeat.

One candidate's path, in the order this module takes it:

1. ``Evolution._propose`` asks a proposer for K sources (with the task's schema, prompt and history)
   and ``write_generation`` writes each to ``gen-NNN/cand-NN/reward.py`` before anything runs.
2. ``ScheduleRunner`` (``run/runner.py``) trains the generation under its schedule: each slice of a
   candidate is one ``Step`` (``run/step.py``): the smoke check folded into the training job, the
   training in a sandboxed worker, the log and policy saved, the trusted evaluator's fitness; its
   record is ``rung-R.json`` (``run/slices.py``).
3. The schedule (``run/schedule.py``) decides from trusted fitness only who trains further;
   ``metrics.json`` seals each candidate's fate, and its video renders in the background
   (``run/videos.py``).
4. The generation's summary goes into ``run.json``; the finished candidates, their statistics and any
   human feedback go into the next generation's prompt (``proposer_history``).
5. After the last generation the contenders may be retrained on new seeds (``run/confirm.py``), and
   ``report.html`` is written.

The orchestrator never executes candidate code, and it records everything atomically, so that
``resume`` can continue any interrupted run without retraining finished candidates.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rewardgen.errors import flatten
from rewardgen.inspect.report import write_report
from rewardgen.procs.check import CheckVerdict, check_reward
from rewardgen.proposers import CandidateRecord, Proposal, ProposalContext, get_proposer
from rewardgen.run.config import ConfigError, EvolveConfig, UserReach, continue_settings, effective_trainer, resolve_proposer
from rewardgen.run.confirm import CONFIRM_TOP, confirm_and_name_best
from rewardgen.run.events import (
    AwaitingFeedback,
    GenerationFinished,
    GenerationStarted,
    LLMStatus,
    Proposing,
    RunFinished,
    RunStarted,
    RunWarning,
)
from rewardgen.run.pace import RunPace
from rewardgen.run.progress import Fanout, LiveFile, Progress, SilentProgress
from rewardgen.run.runner import ScheduleRunner
from rewardgen.run.schedule import planned_env_steps, rung_fractions, schedule_plan
from rewardgen.run.slices import CandidateSlices, source_key
from rewardgen.run.step import Step, training_setup
from rewardgen.run.videos import VideoQueue
from rewardgen.stats import finite
from rewardgen.store import (
    FINAL_FILE,
    GENERATION_FILE,
    LIVE_FILE,
    PROPOSAL_FILE,
    REPORT_FILE,
    REWARD_FILE,
    RUN_FILE,
    CandidateMetrics,
    GenerationSummary,
    RungRecord,
    RunRecord,
    RunStore,
    RunStoreError,
    Stage,
    as_label,
    candidate_label,
    new_run_id,
    rung_file,
)
from rewardgen.tasks.spec import Task, check_loads, get_task, task_from_dict


class EndpointFailure(RuntimeError):
    """A generation got no usable candidate because every LLM request failed; the run stops
    (status "failed", its ``error`` in run.json) and ``resume`` asks that generation again."""


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
    run: RunRecord = {
        "kind": kind,
        "status": "created",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": asdict(config) | {"steps": steps},
        "task": task.to_dict(),
        "proposer": proposer_label,
        "generations": [],
        "best": None,
    }
    store = RunStore.create(runs_dir, new_run_id(task.id) + ("-train" if kind == "train" else ""), dict(run))
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


def _recorded_config(run: RunRecord, run_dir: Path) -> EvolveConfig:
    """``run.json``'s config as an EvolveConfig; ConfigError (one line) when it is not one."""
    try:
        return EvolveConfig.from_dict(run["config"])
    except (TypeError, AttributeError) as exc:
        raise ConfigError(f"corrupt run file {Path(run_dir) / RUN_FILE}: its config is not a run's ({exc})") from None


class Evolution:
    """Runs (or resumes) the run in ``store`` to completion: a generation is proposed and written, its
    schedule trains and evaluates every candidate (``ScheduleRunner``, one ``Step`` per slice), each
    candidate is sealed, and what happened goes into the next generation's prompt.

    ``forecast``: measure (or recall) this machine's pace for the first time estimate
    (``rewardgen.run.pace``); off where the run itself is being timed (``bench evolve``)."""

    def __init__(self, store: RunStore, progress: Progress | None = None, forecast: bool = True):
        self.store = store
        # whoever watches (the terminal), and live.json for the web UI: the same events
        self.progress = Fanout(progress or SilentProgress(), LiveFile(lambda obj: store.write_json(LIVE_FILE, obj)))
        run = store.read_run()
        self.config = EvolveConfig.from_dict(run["config"])
        self.task: Task = task_from_dict(run["task"], where=str(store.path / RUN_FILE))
        self.kind = run.get("kind", "evolve")
        self.steps = self.config.budget(self.task)
        self.eval_seed = 10_000 + 1000 * self.config.seed
        self._executor: Any = None
        self.trainer, self.trainer_note = effective_trainer(self.task, self.config.trainer)
        self.setup = training_setup(self.task, self.config, self.trainer, self.steps)
        self._checked: dict[str, tuple[CheckVerdict, float]] = {}  # source hash -> the proposer's verdict
        self.videos = VideoQueue(store, self.task, self.eval_seed, self.progress)
        self.pace = RunPace(store, self.config, self.task, self.setup, self.kind, self.eval_seed,
                            lambda: self.executor, self.progress, forecast)

    @property
    def executor(self) -> Any:
        """Where training jobs run: local worker processes, or Ray tasks (created on first use)."""
        if self._executor is None:
            from rewardgen.run.executors import make_executor

            self._executor = make_executor(self.config.executor, workers=self.config.workers,
                                           ray_address=self.config.ray_address)
        return self._executor

    def _step(self) -> Step:
        return Step(self.task, self.setup, self.store, self.executor, self.config.eval_episodes, self.eval_seed)

    # ----- the loop
    def run(self) -> dict:
        self.store.lock()
        try:
            self._set_status("running")
            self.progress.event(RunStarted(run_dir=str(self.store.path), task=self.task.id,
                                           proposer=self.store.read_run().get("proposer"), config=asdict(self.config),
                                           run_kind=self.kind, steps=self.steps))
            if self.trainer_note:
                self.progress.event(RunWarning(message=self.trainer_note))
            if self.config.executor == "local":
                from rewardgen.procs import zygote

                zygote.prestart()  # its imports overlap with the proposer's work
            if self.config.video:
                self.videos.queue_missing(self.config.generations)
            self.progress.event(self.pace.start().update())
            for g in range(self.config.generations):
                self._generation(g)
                if self.config.interactive and g < self.config.generations - 1 and self._needs_feedback(g):
                    self.videos.wait(g)  # the person looks at them next
                    self._ask_feedback(g)
            if self.config.confirm_seeds and self.kind == "evolve":
                confirm_and_name_best(self.store, self.task, self.setup, self.config.eval_episodes or
                                      self.task.eval_episodes, self.eval_seed, self.config.seed,
                                      self.config.confirm_seeds, self.executor, self.progress, self.pace.trained)
            if self.videos.wait():
                self._write_report()
            self._set_status("finished")
            self._write_report()  # again: the one written after the last generation still said "running"
            self.pace.remember()
            summary = self.summary()
            self.progress.event(RunFinished(summary=summary))
            return summary
        except EndpointFailure as exc:
            self._set_status("failed", error=str(exc))
            raise
        except BaseException:
            self._set_status("interrupted")
            raise
        finally:
            self.videos.close()
            if self._executor is not None:
                self._executor.close()
                self._executor = None
            self.store.unlock()

    def _generation(self, g: int) -> None:
        """Propose (or read) generation ``g``, train it under the schedule, and record it."""
        gen = self.store.read_generation(g) or self._propose(g)
        n = len(gen["candidates"])
        todo = [c for c in range(n) if self.store.read_metrics(g, c) is None]
        fractions = rung_fractions(n, self.config.schedule)
        self.progress.event(GenerationStarted(generation=g, candidates=n, pending=todo, steps=self.steps,
                                              schedule=self.config.schedule,
                                              plan=schedule_plan(len(todo), self.steps, fractions, self.config.schedule)))
        if todo:
            slices = CandidateSlices(self.store, self.config, self.steps, self._step(), self.progress, self.videos,
                                     self._checked, self.pace.trained)
            ScheduleRunner(self.config, self.task, self.steps, slices, self.executor, self.progress).run(g, n)
        self._record_generation(g, n, resumed=not todo)

    # ----- proposing: the proposer sees the task, the history and any feedback
    def _propose(self, g: int) -> dict:
        proposer = get_proposer(self.config.proposer, self.config)
        ctx = ProposalContext(task=self.task, schema=self.task.schema, generation=g, samples=self.config.samples,
                              seed=self.config.seed, history=self.history(g), feedback=self.feedback(g),
                              run_dir=self.store.path, record_dir=self.store.gen_dir(g) / "llm",
                              check=self._proposer_check, event=self._proposer_event,
                              plan=replace(self.setup.plan(self.config.samples, self.config.schedule,
                                                           self.config.eval_episodes),
                                           generations=self.config.generations,
                                           confirm_seeds=self.config.confirm_seeds or 0, confirm_top=CONFIRM_TOP))
        self.progress.event(Proposing(generation=g, proposer=proposer.label))
        proposals = proposer.propose(ctx)
        if len(proposals) != self.config.samples:
            raise RuntimeError(f"{proposer.label} returned {len(proposals)} proposals for {self.config.samples} samples")
        failure = getattr(proposer, "failure", None)
        if failure:  # nothing usable because of the endpoint: stop here; resume asks this generation again
            raise EndpointFailure(failure)
        return self.write_generation(g, proposals, proposer.name, tokens=getattr(proposer, "usage", None) or None)

    def _proposer_event(self, kind: str, **data: Any) -> None:
        """A proposer's news (``ProposalContext.event``: ``warning`` or ``llm_status``) as a typed event."""
        if kind == "warning":
            self.progress.event(RunWarning(**data))
        elif kind == "llm_status":
            self.progress.event(LLMStatus(**data))
        else:
            raise ValueError(f"a proposer sent an event of unknown kind {kind!r}")

    def _proposer_check(self, source: str) -> CheckVerdict:
        """The proposer's smoke check of a source; remembered, so the candidate is not checked twice."""
        started = time.monotonic()
        verdict = check_reward(source, self.task, steps=self.config.check_steps, seed=self.config.seed)
        self._checked[source_key(source)] = (verdict, round(time.monotonic() - started, 2))
        return verdict

    def history(self, upto: int) -> list[list[CandidateRecord]]:
        """Finished candidates of generations before ``upto``, as proposers see them."""
        return proposer_history(self.store, upto)

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

    # ----- the human in the loop
    def _needs_feedback(self, g: int) -> bool:
        """Interactive runs pause once per generation: not again when feedback for g + 1 exists."""
        return not self.feedback(g + 1) and self.store.read_generation(g + 1) is None

    def _ask_feedback(self, g: int) -> None:
        from rich.console import Console

        from rewardgen.run.interactive import ask_in_terminal

        self._set_status("awaiting_feedback")
        self.progress.event(AwaitingFeedback(generation=g, run_dir=str(self.store.path)))

        def ask(prompt: str) -> str:  # prompts on stderr: stdout stays clean for --json
            sys.stderr.write(prompt)
            sys.stderr.flush()
            return input()

        ask_in_terminal(self.store.path, g, getattr(self.progress, "console", None) or Console(stderr=True), ask)
        self._set_status("running")

    # ----- records
    def _set_status(self, status: str, error: str | None = None) -> None:
        run = self.store.read_run()
        run["status"] = status
        if error:
            run["error"] = error
        else:
            run.pop("error", None)
        run["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.store.write_run(run)

    def _record_generation(self, g: int, n: int, resumed: bool = False) -> None:
        """The generation's summary in ``run.json`` (and the run's best so far), then the report."""
        summary = generation_summary(self.store, g, n)
        run = self.store.read_run()
        gens = [x for x in run.get("generations", []) if x["generation"] != g] + [summary]
        run["generations"] = sorted(gens, key=lambda x: x["generation"])
        run["best"] = _overall_best(run["generations"])
        spent = [tokens for x in run["generations"] if (tokens := x.get("tokens"))]
        if spent:
            run["tokens"] = {k: sum(int(t.get(k, 0)) for t in spent) for k in spent[0]}
        self.store.write_run(run)
        if g == self.config.generations - 1 and self.videos.pending(g):
            report: Path | None = self.store.path / REPORT_FILE  # written once its videos are there (``run``)
        else:
            report = self._write_report()
        self.progress.event(GenerationFinished(generation=g, summary=dict(summary), best=run["best"],
                                               report=str(report) if report else None, resumed=resumed))

    def _write_report(self) -> Path | None:
        """(Re)write ``report.html``; a failure is a warning, never fatal."""
        try:
            return write_report(self.store.path)
        except Exception as exc:
            self.progress.event(RunWarning(message=f"report not written: {exc}"))
            return None

    def summary(self) -> dict:
        run = self.store.read_run()
        return {"run_dir": str(self.store.path), "status": run["status"], "task": self.task.id,
                **labelled(run.get("best"), run.get("generations", []))}


def generation_summary(store: RunStore, g: int, n: int) -> GenerationSummary:
    """Generation ``g``'s summary as ``run.json`` keeps it: every candidate's outcome, the env-steps the
    generation spent, the LLM's tokens and its best candidate by trusted fitness."""
    candidates: list[dict[str, Any]] = []
    for c in range(n):
        m: CandidateMetrics = store.read_metrics(g, c) or {}
        candidates.append({"candidate": c, "status": m.get("status", "missing"), "fitness": m.get("fitness"),
                           "success": bool(m.get("success")), "error": (m.get("error") or None),
                           "fate": m.get("fate"), "env_steps": m.get("env_steps"),
                           "steps_spent": m.get("steps_spent", 0)})
    ok = [x for x in candidates if x["status"] == Stage.OK and x["fitness"] is not None]
    best = max(ok, key=lambda x: x["fitness"]) if ok else None
    return {"generation": g, "candidates": candidates, "tokens": (store.read_generation(g) or {}).get("tokens"),
            "steps_spent": sum(x["steps_spent"] for x in candidates),
            "best": {"candidate": best["candidate"], "fitness": best["fitness"]} if best else None}


def _final_retrainings(store: RunStore) -> dict[tuple, list[float]]:
    """The best reward's fitness on each new training seed of ``rewardgen final`` (``final.json``), when it
    retrained at the run's own budget: {(generation, candidate): [fitness, ...]}. The file is read like
    any in a run (untrusted): only finite numbers of the evolved method's finished trainings count."""
    try:
        final = store.read_json(FINAL_FILE)
    except (OSError, ValueError, RunStoreError):  # a final.json that cannot be read tells nothing
        return {}
    budget = (store.read_run().get("config") or {}).get("steps")
    if not isinstance(final, dict) or not isinstance(final.get("best"), dict) or final.get("steps") != budget:
        return {}
    g, c = final["best"].get("generation"), final["best"].get("candidate")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (g, c)):
        return {}
    values = [float(r["fitness"]) for r in final.get("runs") or [] if isinstance(r, dict)
              and r.get("method") == "evolved" and r.get("status") == "ok" and finite(r.get("fitness"))]
    return {(g, c): values} if values else {}


def proposer_history(store: RunStore, upto: int) -> list[list[CandidateRecord]]:
    """Finished candidates of generations before ``upto``, as proposers see them: each with its trusted
    evaluation after every slice, and the fitness of any retraining a confirmation made."""
    out = []
    retrained: dict[tuple, list[float]] = {}  # from a confirmation this run made earlier (an extended run)
    for row in ((store.read_run().get("confirm") or {}).get("contenders") or []):
        if isinstance(row, dict) and isinstance(row.get("fitness"), list):
            values = [float(x) for x in row["fitness"] if finite(x)]
            if values:
                retrained[(row.get("generation"), row.get("candidate"))] = values
    for key, values in _final_retrainings(store).items():  # and from `rewardgen final` on it
        retrained[key] = retrained.get(key, []) + values
    for g in range(upto):
        gen = store.read_generation(g) or {"candidates": []}
        records = []
        for c in range(len(gen["candidates"])):
            m = store.read_metrics(g, c)
            if m is None:
                continue
            proposal = gen["candidates"][c]
            if proposal.get("parent"):  # the parent by its label (runs made before labels stored "0/1")
                proposal = proposal | {"parent": as_label(proposal["parent"])}
            records.append(CandidateRecord(
                generation=g, candidate=c, source=store.read_source(g, c), status=m["status"],
                fitness=m.get("fitness"), error=m.get("error"),
                proposal=dict(proposal), stats=dict(m.get("training") or {}, hacking=m.get("hacking"),
                                                    trajectories=(m.get("evaluation") or {}).get("trajectories")),
                rungs=_evaluations(store, g, c, m.get("rungs", 0)), fate=m.get("fate"),
                retrained=retrained.get((g, c), [])))
        out.append(records)
    return out


def _evaluations(store: RunStore, g: int, c: int, rungs: int) -> list[dict]:
    """The trusted evaluation after each of a candidate's slices: env-steps so far, fitness, and each
    episode's fitness (so a child cut early is compared with its parent at the same env-steps)."""
    out = []
    for r in range(rungs):
        rung: RungRecord = store.read_json(store.cand_dir(g, c) / rung_file(r)) or RungRecord()
        episodes = [e.get("fitness") for e in (rung.get("evaluation") or {}).get("episodes") or []]
        out.append({"env_steps": rung.get("env_steps_total", 0),
                    "fitness": rung.get("fitness") if rung.get("status") == Stage.OK else None,
                    "episodes": [float(x) for x in episodes if isinstance(x, (int, float))]})
    return out


def failure_summary(generations: Sequence[GenerationSummary]) -> str | None:
    """One line naming the dominant cause when no candidate of any generation trained successfully
    (None when one did): e.g. "no candidate of the 8 trained successfully: 6 failed at runtime: ..."."""
    from collections import Counter

    cands = [c for gen in generations for c in gen.get("candidates", [])]
    if not cands or any(c.get("status") == Stage.OK for c in cands):
        return None
    stages: dict[str, str] = {Stage.PROPOSAL: "were never usable rewards", Stage.STATIC: "failed the static checks",
                              Stage.CONTRACT: "broke the reward contract", Stage.RUNTIME: "failed at runtime",
                              Stage.TIMEOUT: "timed out", Stage.EVALUATION: "failed the trusted evaluation"}
    causes = Counter((c.get("status") or "?", flatten(c.get("error") or "no error recorded", 300)) for c in cands)
    (status, error), count = causes.most_common(1)[0]
    per_status = Counter(c.get("status") or "?" for c in cands)[status]
    what = stages.get(status, f"failed ({status})")
    return (f"no candidate of the {len(cands)} trained successfully: {per_status} {what}"
            + (f", {count} of them with: {error}" if count < per_status else f": {error}"))


def labelled(best: dict | None, generations: Sequence[Any]) -> dict:
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


def _overall_best(generations: Sequence[GenerationSummary]) -> dict | None:
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
        evolution.progress.event(RunWarning(message=note))
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


__all__ = [
    "ConfigError",
    "EndpointFailure",
    "Evolution",
    "EvolveConfig",
    "RunStoreError",
    "check_reach",
    "evolve",
    "extend_run",
    "failure_summary",
    "generation_summary",
    "labelled",
    "planned_env_steps",
    "proposer_history",
    "resume",
    "start_run",
    "train_file",
]
