"""``rewardgen bench suite``: the offline proposer across the task suite, as one table (Eureka's headline).

Per task: ``evolve`` with the offline proposer at the task's budget, then ``final`` (the best reward,
the env's own "human" reward and the sparse success reward, retrained with the same seeds), through the
library (``rewardgen.run.evolve``, ``rewardgen.run.final``). The table is read back from each run's
``final.json``, so its numbers are the run stores' own.

Resumable: ``OUT/suite.json`` records each task's run directory before its evolve starts and is
rewritten atomically after every phase. A rerun reads it back: a task whose run has a ``final.json``
of the requested seeds is not run again, an interrupted evolve continues through the run store's
resume, and an interrupted final trains only what it had not finished (``rewardgen.run.final``).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rewardgen.envsteps import fmt as fmt_steps
from rewardgen.envsteps import parse as parse_env_steps
from rewardgen.errors import UserError
from rewardgen.run.events import EstimateUpdate, Event, FinalRun, RunWarning, TaskEvent
from rewardgen.run.final import installs_of
from rewardgen.run.progress import Progress
from rewardgen.runfiles import RunFiles
from rewardgen.software import software_text
from rewardgen.stats import finite, gap_in_standard_errors
from rewardgen.store import RUN_FILE, Stage, atomic_write_json, atomic_write_text, read_json

SUITE_FILE = "suite.json"
TABLE_FILE = "suite.md"


def default_tasks(directory: Path | None = None) -> list[str]:
    """The suite's tasks when ``--tasks`` is not given: every task whose human baseline is the env's own
    reward (the comparison the suite exists for), read from the task files so a new one joins by itself;
    cheapest budget first, so an interrupted suite has finished the most tasks."""
    from rewardgen.tasks.spec import ENVIRONMENTS_DIR, list_tasks

    tasks = list_tasks(directory or ENVIRONMENTS_DIR)
    return [t.id for t in sorted((t for t in tasks if t.has_env_reward), key=lambda t: (t.default_steps, t.id))]


class SuiteError(UserError):
    """Bad suite settings (unknown task, unusable output directory); one line for the user."""


@dataclass
class SuiteConfig:
    """What the suite runs. ``steps`` None: each task's default budget (the point of the suite);
    a number overrides every task's budget (quick runs, tests)."""

    tasks: list[str] = field(default_factory=default_tasks)
    out: str = "runs/suite"
    task_steps: dict[str, int] = field(default_factory=dict)  # one task's budget (``--tasks ant-run=300000``)
    seeds: int = 3
    steps: int | None = None
    workers: int | None = None
    samples: int = 4
    generations: int = 3
    seed: int = 0
    confirm_seeds: int = 0  # evolve's --confirm-seeds: the best named by its mean over this many new seeds

    def validate(self) -> None:
        from rewardgen.tasks.spec import get_task

        if not self.tasks:
            raise SuiteError("--tasks names no task")
        if len(set(self.tasks)) != len(self.tasks):
            raise SuiteError(f"--tasks names a task twice: {','.join(self.tasks)}")
        for name in ("seeds", "samples", "generations"):
            if getattr(self, name) <= 0:
                raise SuiteError(f"--{name} must be positive, got {getattr(self, name)}")
        if self.confirm_seeds < 0:
            raise SuiteError(f"--confirm-seeds must be 0 or more, got {self.confirm_seeds}")
        for name in ("steps", "workers"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise SuiteError(f"--{name} must be positive, got {getattr(self, name)}")
        for t in self.tasks:
            get_task(t)  # TaskError (a UserError) names the known tasks
        for t, n in self.task_steps.items():
            if t not in self.tasks or int(n) <= 0:
                raise SuiteError(f"a budget of {n} for {t} (a task of the suite, a positive number of env-steps)")

    def steps_for(self, task) -> int:
        """The task's budget here: its own override, else ``steps``, else the task's default."""
        return int(self.task_steps.get(task.id) or self.steps or task.default_steps)


def _out_dir(out: Path) -> Path:
    """``out``, created if missing; SuiteError naming ``--out`` when it cannot hold the suite."""
    if out.exists() and not out.is_dir():
        raise SuiteError(f"--out {out} is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SuiteError(f"cannot create --out {out} ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise SuiteError(f"cannot write to --out {out}: permission denied")
    return out


@dataclass(frozen=True)
class SuiteStarted(Event):
    kind: ClassVar[str] = "suite_started"
    tasks: list[str]
    done: list[str]
    out: str


@dataclass(frozen=True)
class SuiteTask(Event):
    """A task's phase begins (``evolve``, ``final``) or it was ``done already``."""

    kind: ClassVar[str] = "suite_task"
    task: str
    index: int
    count: int
    phase: str
    run_dir: str
    resumed: bool = False


@dataclass(frozen=True)
class SuiteEstimateUpdate(Event):
    """The suite's time left (``SuiteEstimate.fields``); ``task``: whose news moved it (None: the suite's)."""

    kind: ClassVar[str] = "suite_estimate"
    task: str | None
    seconds_left: float
    basis: str
    env_steps_left: int
    env_steps_planned: int
    rate: float


@dataclass(frozen=True)
class SuiteFinished(Event):
    kind: ClassVar[str] = "suite_finished"
    result: dict[str, Any]


def _emit(progress: Progress | None, event: Event) -> None:
    if progress is not None:
        progress.event(event)


def _run_key(config: SuiteConfig, task) -> dict:
    """The evolve settings a task's recorded run must have to be reused (else it is run afresh)."""
    key = {"steps": config.steps_for(task), "samples": config.samples,
           "generations": config.generations, "seed": config.seed}
    return key | ({"confirm_seeds": config.confirm_seeds} if config.confirm_seeds else {})  # old keys stay valid


def planned_steps(config: SuiteConfig, task) -> tuple[int, int]:
    """(evolve, final) env-steps a task plans: halving's generations, then seeds x methods full budgets."""
    from rewardgen.run.confirm import planned_confirm_steps
    from rewardgen.run.evolve import planned_env_steps

    steps = config.steps_for(task)
    methods = 3 if task.has_env_reward else 2
    evolve = config.generations * planned_env_steps(config.samples, steps, "halving")
    evolve += planned_confirm_steps(config.confirm_seeds, steps, config.samples, config.generations)
    return evolve, config.seeds * methods * steps


class SuiteEstimate:
    """Time left for the whole suite, from env-steps still planned over the rate this process measured.

    The current task's evolve reports its own ``estimate`` events (env-steps planned and done, time
    left); the suite adds the current task's final and the tasks still to come at the rate measured
    so far (env-steps trained here over wall time). Tasks differ in cost per env-step (Ant's physics
    is ~4x HalfCheetah's), so the part for tasks not yet started is rough; it sharpens as tasks finish."""

    GUESSED_RATE_PER_CORE = 10_000.0

    def __init__(self, plans: dict[str, tuple[int, int]], cores: int):
        self.plans = plans
        self.done: dict[str, int] = {t: 0 for t in plans}
        self.started = time.monotonic()
        self.here = 0
        self.cores = max(1, cores)
        self._evolve_seen: dict[str, int] = {}
        self.current: str | None = None
        self.current_left: float | None = None  # seconds, from the evolve's own estimate

    def finished(self, task: str) -> None:
        self.done[task] = sum(self.plans[task])
        self.current_left = None

    def evolve_estimate(self, task: str, seconds_left: float, basis: str, env_steps_planned: int,
                        env_steps_done: int) -> None:
        """One ``estimate`` event of the task's evolve: its done steps, and what this process trained."""
        first = task not in self._evolve_seen
        before = self._evolve_seen.get(task, env_steps_done)
        self._evolve_seen[task] = env_steps_done
        if not first:
            self.here += max(0, env_steps_done - before)
        evolve_plan = self.plans[task][0]
        self.done[task] = min(evolve_plan, int(env_steps_done * evolve_plan / max(1, env_steps_planned)))
        self.current = task
        self.current_left = float(seconds_left) if basis == "measured" else None

    def evolve_finished(self, task: str) -> None:
        """The task's evolve is over (here or in an earlier process): only its final is left."""
        self.done[task] = max(self.done[task], self.plans[task][0])
        self.current_left = None

    def final_run(self, task: str, env_steps: int | None, reused: bool = False) -> None:
        steps = int(env_steps or 0)
        if not reused:  # a training an interrupted final had finished: done, but not at this process's speed
            self.here += steps
        self.done[task] = min(sum(self.plans[task]), self.done[task] + steps)

    def fields(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        left_steps = sum(max(0, sum(p) - self.done[t]) for t, p in self.plans.items())
        if self.here > 0 and elapsed > 0:
            rate, basis = self.here / elapsed, "measured"
        else:
            rate, basis = self.GUESSED_RATE_PER_CORE * self.cores, "guess"
        return {"seconds_left": round(left_steps / rate, 1), "basis": basis, "env_steps_left": left_steps,
                "env_steps_planned": sum(sum(p) for p in self.plans.values()), "rate": round(rate, 1)}


class _TaskProgress:
    """Passes a run's events on to the suite's progress, feeding the suite's estimate on the way."""

    def __init__(self, suite: Suite, task: str):
        self.suite, self.task = suite, task

    def event(self, event: Event) -> None:
        if isinstance(event, EstimateUpdate):
            self.suite.estimate.evolve_estimate(self.task, event.seconds_left, event.basis, event.env_steps_planned,
                                                event.env_steps_done)
            _emit(self.suite.progress, SuiteEstimateUpdate(task=self.task, **self.suite.estimate.fields()))
            return
        if isinstance(event, FinalRun):
            self.suite.estimate.final_run(self.task, event.env_steps, event.reused)
        _emit(self.suite.progress, TaskEvent(task=self.task, event=event))
        if isinstance(event, FinalRun):
            _emit(self.suite.progress, SuiteEstimateUpdate(task=self.task, **self.suite.estimate.fields()))


class Suite:
    """One suite in ``config.out``: runs (or continues) every task, then writes the table."""

    def __init__(self, config: SuiteConfig, progress=None):
        config.validate()
        from rewardgen.tasks.spec import check_loads, get_task

        self.config, self.progress = config, progress
        self.out = _out_dir(Path(config.out))
        self.runs_dir = self.out / "runs"
        self.tasks = {}
        for t in config.tasks:
            task = get_task(t)
            check_loads(task)
            self.tasks[t] = task
        self.state = self._read_state()
        from rewardgen.run.executors import usable_cores

        self.estimate = SuiteEstimate({t: planned_steps(config, task) for t, task in self.tasks.items()},
                                      config.workers or usable_cores())

    # ----- state
    def _read_state(self) -> dict:
        path = self.out / SUITE_FILE
        if not path.is_file():
            return {"version": 1, "tasks": {}}
        try:
            state = read_json(path)
        except Exception as exc:  # a corrupt state file is the user's to remove
            raise SuiteError(f"{path} is not a suite state file ({exc}); remove it or choose another --out") from None
        if not isinstance(state, dict) or not isinstance(state.get("tasks"), dict):
            raise SuiteError(f"{path} is not a suite state file; remove it or choose another --out")
        return state

    def _write_state(self) -> None:
        self.state["config"] = asdict(self.config)
        atomic_write_json(self.out / SUITE_FILE, self.state)

    def _entry(self, task_id: str) -> dict | None:
        """The recorded run of a task, if it was made with the settings asked for now and still exists."""
        entry = self.state["tasks"].get(task_id)
        if not entry or entry.get("key") != _run_key(self.config, self.tasks[task_id]):
            return None
        if not RunFiles(self.out / entry["run_dir"]).is_file(RUN_FILE):
            return None
        return entry

    def _task_done(self, task_id: str) -> bool:
        """Finished: its final evaluation of the requested seeds exists, or its run ended with no best reward."""
        entry = self._entry(task_id)
        return bool(entry and (entry.get("failed") or self._final_done(entry)))

    def _final_done(self, entry: dict) -> dict | None:
        from rewardgen.run.final import read_final

        final = read_final(self.out / entry["run_dir"])
        return final if final and int(final.get("seeds", 0)) == self.config.seeds else None

    # ----- the loop
    def run(self) -> dict:
        started = time.monotonic()
        todo = [t for t in self.config.tasks if not self._task_done(t)]
        for t in self.config.tasks:
            if t not in todo:
                self.estimate.finished(t)
        _emit(self.progress, SuiteStarted(tasks=list(self.config.tasks), done=[t for t in self.config.tasks
                                                                              if t not in todo], out=str(self.out)))
        from rewardgen.run.config import effective_trainer

        for t in todo:  # say up front what will take far longer than the estimate assumes
            _, note = effective_trainer(self.tasks[t], "ppo")
            if note:
                _emit(self.progress, TaskEvent(task=t, event=RunWarning(
                    message=f"{note} (much slower: the estimate is low)")))
        _emit(self.progress, SuiteEstimateUpdate(task=None, **self.estimate.fields()))
        for i, task_id in enumerate(self.config.tasks):
            if task_id not in todo:
                _emit(self.progress, SuiteTask(task=task_id, index=i, count=len(self.config.tasks),
                                               phase="done already",
                                               run_dir=str(self.out / self.state["tasks"][task_id]["run_dir"])))
                continue
            self._run_task(i, task_id)
            self.estimate.finished(task_id)
        result = self.result()
        result["seconds_this_process"] = round(time.monotonic() - started, 1)
        atomic_write_json(self.out / "suite-result.json", result)
        atomic_write_text(self.out / TABLE_FILE, markdown_table(result))
        _emit(self.progress, SuiteFinished(result=result))
        return result

    def _run_task(self, i: int, task_id: str) -> None:
        from rewardgen.run.config import EvolveConfig
        from rewardgen.run.evolve import Evolution, start_run
        from rewardgen.run.final import final_evaluation
        from rewardgen.store import RunStore

        task = self.tasks[task_id]
        count = len(self.config.tasks)
        progress = _TaskProgress(self, task_id)
        entry = self._entry(task_id)
        if entry is None:
            config = EvolveConfig(task=task_id, samples=self.config.samples, generations=self.config.generations,
                                  steps=self.config.steps_for(task), seed=self.config.seed, workers=self.config.workers,
                                  llm="offline", proposer="offline", schedule="halving", trainer="ppo",
                                  video=False, confirm_seeds=self.config.confirm_seeds)
            store = start_run(config, self.runs_dir, task=task)
            entry = {"run_dir": str(store.path.relative_to(self.out)), "key": _run_key(self.config, task),
                     "evolve_seconds": 0.0, "final_seconds": 0.0}
            self.state["tasks"][task_id] = entry
            self._write_state()  # before training: a kill from here on resumes this run
        run_dir = self.out / entry["run_dir"]
        store = RunStore.open(run_dir)
        if store.read_run().get("status") != "finished":
            _emit(self.progress, SuiteTask(task=task_id, index=i, count=count, phase="evolve", run_dir=str(run_dir),
                                           resumed=bool(store.read_run().get("generations"))))
            t0 = time.monotonic()
            Evolution(store, progress).run()
            entry["evolve_seconds"] = round(entry.get("evolve_seconds", 0.0) + time.monotonic() - t0, 1)
            self._write_state()
        if not store.read_run().get("best"):  # nothing to evaluate: the row says why, the suite goes on
            from rewardgen.run.evolve import failure_summary

            entry["failed"] = failure_summary(store.read_run().get("generations") or []) or "no best reward"
            self._write_state()
            return
        self.estimate.evolve_finished(task_id)
        _emit(self.progress, SuiteTask(task=task_id, index=i, count=count, phase="final", run_dir=str(run_dir)))
        t0 = time.monotonic()
        final_evaluation(run_dir, seeds=self.config.seeds, progress=progress)
        entry["final_seconds"] = round(entry.get("final_seconds", 0.0) + time.monotonic() - t0, 1)
        self._write_state()

    # ----- the table
    def result(self) -> dict:
        """The table, from each task's ``final.json`` (tasks without one are listed as not finished)."""
        rows = []
        for task_id in self.config.tasks:
            entry = self._entry(task_id)
            final = self._final_done(entry) if entry else None
            if entry and entry.get("failed"):
                rows.append({"task": task_id, "finished": True, "failed": entry["failed"],
                             "run_dir": str(self.out / entry["run_dir"]), "evolved_ge_human": False, "score": None})
                continue
            if entry is None or final is None:  # no entry has no final either
                rows.append({"task": task_id, "finished": False})
                continue
            rows.append(task_row(task_id, final, self.out / entry["run_dir"], entry))
        return summarise(rows, asdict(self.config))


def task_row(task_id: str, final: dict, run_dir: Path, entry: dict | None = None) -> dict:
    """One row of the table from a run's final evaluation (its numbers unchanged)."""
    by = {r["method"]: r for r in final["rows"]}

    def method(m: str) -> dict | None:
        r = by.get(m)
        if r is None:
            return None
        return {"mean": r["fitness_mean"], "std": r["fitness_std"], "ok": r["ok"], "seeds": r["seeds"],
                "success_rate": r["success_rate"]}

    evolved, human, sparse = method("evolved"), method("human"), method("sparse")
    beats = beats_both = None
    if evolved and human and evolved["mean"] is not None and human["mean"] is not None:
        beats = evolved["mean"] >= human["mean"]
        if sparse and sparse["mean"] is not None:
            beats_both = beats and evolved["mean"] >= sparse["mean"]
    gap = gap_in_standard_errors(*(_seed_values(final, m) for m in ("evolved", "human")))
    run = RunFiles(run_dir).read_json(RUN_FILE) or {}
    return {"task": task_id, "finished": True, "run_dir": str(run_dir), "steps": final["steps"],
            "seeds": final["seeds"], "evolved": evolved, "human": human, "sparse": sparse,
            "score": final.get("score"), "score_note": final.get("score_note"), "evolved_ge_human": beats,
            "evolved_ge_both": beats_both, "gap": gap_verdict(gap),
            "gap_se": gap if gap is not None and math.isfinite(gap) else None,
            "best": final.get("best"), "selection_fitness": (run.get("best") or {}).get("fitness"),
            "evolve_seconds": (entry or {}).get("evolve_seconds"), "final_seconds": (entry or {}).get("final_seconds"),
            "software": installs_of(final.get("runs") or [])}


#: a gap between evolved and human of at least this many standard errors is read as more than the seeds' luck
CLEAR_GAP = 2.0


def _seed_values(final: dict, method: str) -> list[float]:
    """``method``'s trusted fitness on each of final's training seeds that finished."""
    return [r["fitness"] for r in final.get("runs") or []
            if isinstance(r, dict) and r.get("method") == method and r.get("status") == Stage.OK
            and finite(r.get("fitness"))]


def gap_verdict(gap: float | None) -> str | None:
    """"above" or "below" where evolved's mean is CLEAR_GAP standard errors or more from human's,
    "within noise" where less, None where the seeds cannot say (fewer than two a side)."""
    if gap is None:
        return None
    return "above" if gap >= CLEAR_GAP else "below" if gap <= -CLEAR_GAP else "within noise"


def summarise(rows: list[dict], config: dict) -> dict:
    """The suite's result: rows, and the share of tasks (with a human baseline) where evolved >= human."""
    compared = [r for r in rows if r.get("evolved_ge_human") is not None]
    wins = sum(1 for r in compared if r["evolved_ge_human"])
    both = [r for r in rows if r.get("evolved_ge_both") is not None]
    scores = [r["score"] for r in rows if r.get("score") is not None and math.isfinite(r["score"])]
    return {"config": config, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": rows,
            "tasks_finished": sum(1 for r in rows if r.get("finished")), "tasks": len(rows),
            "evolved_ge_human": wins, "compared": len(compared),
            "share_evolved_ge_human": wins / len(compared) if compared else None,
            "evolved_ge_both": sum(1 for r in both if r["evolved_ge_both"]), "compared_both": len(both),
            "evolved_below_human": sum(1 for r in compared if r.get("gap") == "below"),
            "median_score": statistics.median(scores) if scores else None,
            "software": installs_by_task(rows)}


def installs_by_task(rows: list[dict]) -> list[dict]:
    """The installs the rows' trainings ran under, each with the tasks that used it (``software``: None
    where a record names none). One entry: the table is one install's; more: its rows are not
    comparable seed for seed."""
    out: list[dict] = []
    for r in rows:
        for sw in r.get("software") or []:
            same = next((o for o in out if o["software"] == sw), None)
            if same is None:
                out.append(same := {"software": sw, "tasks": []})
            if r["task"] not in same["tasks"]:
                same["tasks"].append(r["task"])
    return out


def software_lines(result: dict) -> list[str]:
    """What the table was trained with, and a warning where its rows ran under more than one install."""
    installs = result.get("software") or []
    if not installs:
        return []
    if len(installs) == 1:
        sw = installs[0]["software"]
        return [f"Trained with {software_text(sw)}." if sw else "The trainings do not record their install."]
    lines = [f"Trained under {len(installs)} installs, so rows (or one row's methods) are not comparable seed "
             "for seed: a seed trains another policy under other package versions."]
    for o in installs:
        what = software_text(o["software"]) if o["software"] else "not recorded"
        lines.append(f"- {what}: {', '.join(o['tasks'])}")
    return lines


def _ms(m: dict | None) -> str:
    if not m or m.get("mean") is None:
        return "n/a"
    text = f"{m['mean']:.3g} ± {m['std']:.2g}"
    return text if m["ok"] == m["seeds"] else f"{text} ({m['ok']}/{m['seeds']} ok)"


def _rate(m: dict | None) -> str:
    return "n/a" if not m or m.get("success_rate") is None else f"{m['success_rate']:.0%}"


def _gap(row: dict) -> str:
    """The gap cell: evolved - human in standard errors and what that says."""
    verdict, gap = row.get("gap"), row.get("gap_se")
    if verdict is None:
        return "n/a"
    if gap is None:  # neither side varied and the means differ
        return f"{verdict} (every seed)"
    return f"{gap:+.1f} se ({verdict})" if gap else "0 (tie)"


def table_rows(result: dict) -> list[list[str]]:
    """The table's cells (shared by the markdown file and the terminal)."""
    out = []
    for r in result["rows"]:
        if not r.get("finished") or r.get("failed"):
            out.append([r["task"], "", "evolve found no usable reward" if r.get("failed") else "not finished",
                         "", "", "", "", "no" if r.get("failed") else "", "", ""])
            continue
        score = "n/a" if r["score"] is None else f"{r['score']:.2f}"
        human, sparse = (r.get(m) or {} for m in ("human", "sparse"))
        if r["score"] is not None and (sparse.get("mean") or 0) > (human.get("mean") or 0):
            score += " (sparse beat human)"  # the denominator is then the sparse reward's lead
        word = {True: "yes", False: "no", None: "n/a"}
        out.append([r["task"], fmt_steps(r["steps"]), _ms(r["evolved"]), _ms(r["human"]), _ms(r["sparse"]), score,
                    f"{_rate(r['evolved'])} / {_rate(r['human'])}", word[r["evolved_ge_human"]], _gap(r),
                    word[r.get("evolved_ge_both")]])
    return out


HEADER = ["task", "budget", "evolved (mean ± std)", "human (env reward)", "sparse", "human-normalised score",
          "success evolved / human", "evolved >= human", "evolved - human (standard errors)",
          "evolved >= human and sparse"]


def share_line(result: dict) -> str:
    share = result["share_evolved_ge_human"]
    median = result.get("median_score")
    return (f"evolved >= human on {result['evolved_ge_human']} of {result['compared']} tasks"
            + (f" ({share:.0%})" if share is not None else "")
            + (f"; >= both baselines on {result['evolved_ge_both']} of {result['compared_both']}"
               if result.get("compared_both") else "")
            + f"; below human by {CLEAR_GAP:g} standard errors or more on {result['evolved_below_human']}"
            + (f"; median human-normalised score {median:.2f}" if median is not None else "")
            + (f"; {result['tasks'] - result['tasks_finished']} task(s) not finished"
               if result["tasks_finished"] < result["tasks"] else ""))


def markdown_table(result: dict) -> str:
    c = result["config"]
    lines = [f"Suite: offline proposer, K={c['samples']}, {c['generations']} generations, halving, "
             + (f"the best confirmed on {c['confirm_seeds']} new seed(s), " if c.get("confirm_seeds") else "")
             + f"final with {c['seeds']} seeds per method"
             + ", budget per candidate and per final training as listed (the task's default unless said)" + ".", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(result)]
    lines += ["", share_line(result) + ".", ""]
    software = software_lines(result)
    return "\n".join(lines + software + ([""] if software else []))


def parse_tasks(text: str | None) -> tuple[list[str], dict[str, int]]:
    """``--tasks a,b=300000``: the task ids in order, and the budgets given to some of them."""
    if text is None:
        return default_tasks(), {}
    tasks, steps = [], {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        name, _, budget = item.partition("=")
        name = name.strip()
        if budget:
            try:
                steps[name] = parse_env_steps(budget)
            except ValueError as exc:
                raise SuiteError(f"--tasks {item}: the budget after '=': {exc}") from None
        tasks.append(name)
    return tasks, steps


def run_suite(config: SuiteConfig, progress=None) -> dict:
    """Run (or continue) the suite in ``config.out``; returns the result written to ``suite-result.json``."""
    return Suite(config, progress).run()


__all__ = [
    "HEADER",
    "Suite",
    "SuiteConfig",
    "SuiteError",
    "default_tasks",
    "markdown_table",
    "run_suite",
    "share_line",
    "table_rows",
]
