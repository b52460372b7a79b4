"""What a person sees while commands run: the live progress display with its time estimate, and the tables."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

from rewardgen.bench.suite import SuiteEstimateUpdate, SuiteStarted, SuiteTask
from rewardgen.cli.common import CURRENT_RUN
from rewardgen.envsteps import fmt as human_steps
from rewardgen.errors import flatten
from rewardgen.loadavg import load_text
from rewardgen.run.events import (
    AwaitingFeedback,
    Calibrating,
    CandidateFinished,
    CandidateProgress,
    CandidateStarted,
    ConfirmFinished,
    ConfirmRun,
    ConfirmStarted,
    EstimateUpdate,
    Evaluating,
    Event,
    FinalRun,
    GenerationFinished,
    GenerationStarted,
    LLMStatus,
    Proposing,
    RenderingVideo,
    RungFinished,
    RunStarted,
    RunWarning,
    SliceFinished,
    TaskEvent,
)
from rewardgen.safetext import one_line, term
from rewardgen.store import VIDEO_FILE, as_label, candidate_label, gen_dirname
from rewardgen.tables import Col, clip, fitted_table


class RichProgress:
    """Live progress for evolve/train/resume: one bar per candidate, a line per generation.

    A candidate's bar counts env-steps against the budget it has now: under the halving schedule
    that is its rung's target (a fifth of the full budget first), so a candidate cut early ends at
    its own budget, never at the full one, and no bar passes its total (PPO trains whole batches, so
    the last update may go a little past the target: the bar stops at the target, the count shows
    what was trained). Candidates not started yet say "queued". A generation row estimates the time
    left from the env-steps the schedule still plans and the recent rate.

    On a terminal the bars redraw in place; piped (``--json``, the web UI's job log) there are no
    bars, just one plain line per event, never wrapped mid-line. All text from rewards, proposers
    or errors goes through ``rewardgen.safetext``.
    """

    def __init__(self, console):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Column

        self.console = console
        self.live = console.is_terminal
        # the description gives way (cut with an ellipsis) so that the bar, the counts and the time
        # left keep their width at 80 columns
        self.bars = Progress(TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True,
                                                                                   overflow="ellipsis")),
                             BarColumn(bar_width=12 if console.width < 100 else 24),
                             TextColumn("{task.fields[count]}", table_column=Column(no_wrap=True)),
                             TimeElapsedColumn(),
                             TextColumn("{task.fields[eta]}", table_column=Column(no_wrap=True)),
                             console=console, transient=False, disable=not self.live, expand=True)
        self.rows: dict[tuple[int, int], Any] = {}
        self.state: dict[tuple[int, int], dict] = {}
        self.gen_rows: dict[int, Any] = {}
        self.plans: dict[int, int] = {}
        self.first_target: dict[int, int] = {}
        self.started: dict[int, float] = {}
        self.resumed: set[int] = set()
        self.lock = threading.Lock()
        self.steps = 0
        self.kind = "evolve"
        self.llm = False

    def __enter__(self):
        if self.live:
            self.bars.start()
        return self

    def __exit__(self, *exc):
        self._llm_done()
        if self.live:
            self.bars.stop()

    def print(self, text: str) -> None:
        """A line above the bars (markup allowed: untrusted parts must already be escaped)."""
        self.console.print(text, soft_wrap=not self.live, highlight=False)

    # ----- rows
    def _label(self, g: int, c: int) -> str:
        return f"{candidate_label(g, c):<5}"

    def _row(self, g: int, c: int):
        key = (g, c)
        if key not in self.rows:
            self.rows[key] = self.bars.add_task(f"{self._label(g, c)} queued", start=False, count="", eta="",
                                                total=self.first_target.get(g) or self.steps or 1)
            self.state[key] = {"steps": 0}
        return self.rows[key]

    def _count(self, done: int, total: int) -> str:
        return f"{human_steps(min(done, total))}/{human_steps(total)}"

    def _update_eta(self, g: int) -> None:
        """The generation row: env-steps trained of those the schedule plans, and the time left at the
        rate so far (wall time since the generation started, so checks, evaluations and videos count);
        no estimate before the first slice of training is done."""
        row = self.gen_rows.get(g)
        if row is None:
            return
        total = max(self.plans.get(g, 1), 1)
        done = min(sum(st.get("steps", 0) for (gg, _), st in self.state.items() if gg == g), total)
        eta = ""
        if done >= self.first_target.get(g, total) and g in self.started:
            left = (time.monotonic() - self.started[g]) * (total - done) / done
            eta = f"~{_clock(left)} left"
        self.bars.update(row, completed=done, total=total, count=f"{human_steps(done)}/{human_steps(total)}",
                         eta=eta)

    def event(self, event: Event) -> None:
        with self.lock:
            self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        """The handler of the event's type; the events a person need not see (a video ready, the final
        evaluation's) show nothing here."""
        match event:
            case RunStarted():
                self._on_run_started(event)
            case Proposing():
                self._on_proposing(event)
            case GenerationStarted():
                self._on_generation_started(event)
            case CandidateStarted():
                self._on_candidate_started(event)
            case CandidateProgress():
                self._on_candidate_progress(event)
            case Evaluating():
                self._on_evaluating(event)
            case SliceFinished():
                self._on_slice_finished(event)
            case RenderingVideo():
                self._on_rendering_video(event)
            case RungFinished():
                self._on_rung_finished(event)
            case CandidateFinished():
                self._on_candidate_finished(event)
            case ConfirmStarted():
                self._on_confirm_started(event)
            case ConfirmRun():
                self._on_confirm_run(event)
            case ConfirmFinished():
                self._on_confirm_finished(event)
            case RunWarning():
                self._on_warning(event)
            case Calibrating():
                self._on_calibrating(event)
            case EstimateUpdate():
                self._on_estimate(event)
            case LLMStatus():
                self._on_llm_status(event)
            case AwaitingFeedback():
                self._on_awaiting_feedback(event)
            case GenerationFinished():
                self._on_generation_finished(event)

    # ----- events
    def _on_run_started(self, e: RunStarted) -> None:
        run_dir, task, proposer, config, run_kind, steps = e.run_dir, e.task, e.proposer, e.config, e.run_kind, e.steps
        CURRENT_RUN["run_dir"] = str(run_dir)
        self.kind = run_kind
        self.llm = run_kind == "evolve" and (config or {}).get("proposer") == "openai"
        if run_kind == "train":
            self.print(f"[bold]rewardgen train[/]: task [cyan]{term(task)}[/], the reward file as one candidate, "
                       f"{human_steps(steps)} env-steps")
        else:
            self.print(f"[bold]rewardgen evolve[/]: task [cyan]{term(task)}[/], proposer: {term(proposer)}")
        self.print(f"run directory: {term(run_dir)}")

    def _on_proposing(self, e: Proposing) -> None:
        generation, proposer = e.generation, e.proposer
        self.print(f"generation {generation}: asking the {term(proposer)} for candidates")

    def _on_generation_started(self, e: GenerationStarted) -> None:
        generation, candidates, pending, steps, schedule = e.generation, e.candidates, e.pending, e.steps, e.schedule
        plan = e.plan
        self._llm_done()
        self.steps = steps
        done = candidates - len(pending)
        if not pending:
            self.resumed.add(generation)
            self.print(f"generation {generation}: already finished")
            return
        noun = "candidate" if candidates == 1 else "candidates"
        extra = f" ({done} already finished)" if done else ""
        left = getattr(self, "_estimate", None)
        extra += f", ~{duration(left[0])} left" if left and left[1] == "measured" else ""
        how = ""
        if plan and len(plan) > 1 and schedule == "adaptive":
            how = (f" under the adaptive schedule: all train in increments of {human_steps(plan[0]['target'])}, "
                   f"those clearly behind stop early, {len(plan)} rungs at most")
        elif plan and len(plan) > 1:
            how = (" under successive halving: all train to " + human_steps(plan[0]["target"]) + ", the best "
                   + ", then ".join(f"{p['candidates']} go{'es' if p['candidates'] == 1 else ''} on to "
                                    f"{human_steps(p['target'])}" for p in plan[1:]))
        if self.kind != "train":
            self.print(f"generation {generation}: {candidates} {noun}, budget {human_steps(steps)} env-steps "
                       f"each{how}{extra}")
        plan = plan or [{"target": steps, "candidates": len(pending)}]
        prev, total = 0, 0
        for p in plan:
            total += p["candidates"] * (p["target"] - prev)
            prev = p["target"]
        self.plans[generation] = total
        self.first_target[generation] = plan[0]["target"]
        self.started[generation] = time.monotonic()
        self.gen_rows[generation] = self.bars.add_task(f"gen {generation} overall", total=max(total, 1), count="",
                                                       eta="")
        for c in pending:
            self._row(generation, c)

    def _on_candidate_started(self, e: CandidateStarted) -> None:
        generation, candidate, rung, rungs, target = e.generation, e.candidate, e.rung, e.rungs, e.target
        row = self._row(generation, candidate)
        self.bars.start_task(row)
        what = "checking" if rung == 0 else f"continuing (rung {rung + 1} of {rungs})"
        total = target or self.steps or 1
        self.bars.update(row, description=f"{self._label(generation, candidate)} {what}", total=total,
                         completed=min(self.state[(generation, candidate)]["steps"], total),
                         count=self._count(self.state[(generation, candidate)]["steps"], total))

    def _on_candidate_progress(self, e: CandidateProgress) -> None:
        generation, candidate, steps, total, rung, rungs = e.generation, e.candidate, e.steps, e.total, e.rung, e.rungs
        row = self._row(generation, candidate)
        self.state[(generation, candidate)]["steps"] = steps
        stage = "training" if rungs == 1 else f"training, rung {rung + 1}/{rungs}"
        self.bars.update(row, completed=min(steps, total), total=total, count=self._count(steps, total),
                         description=f"{self._label(generation, candidate)} {stage}")
        self._update_eta(generation)

    def _on_evaluating(self, e: Evaluating) -> None:
        generation, candidate = e.generation, e.candidate
        self.bars.update(self._row(generation, candidate),
                         description=f"{self._label(generation, candidate)} evaluating")

    def _on_slice_finished(self, e: SliceFinished) -> None:
        generation, candidate, rung, rungs, fitness = e.generation, e.candidate, e.rung, e.rungs, e.fitness
        if rung < rungs - 1:
            self.bars.update(self._row(generation, candidate),
                             description=f"{self._label(generation, candidate)} fitness {fitness:.3g}, waiting")

    def _on_rendering_video(self, e: RenderingVideo) -> None:
        generation, candidate = e.generation, e.candidate
        if self.state.get((generation, candidate), {}).get("finished"):
            return  # videos render in the background: a finished row keeps its fitness and fate
        self.bars.update(self._row(generation, candidate),
                         description=f"{self._label(generation, candidate)} rendering its video")

    def _on_rung_finished(self, e: RungFinished) -> None:
        generation, rung, rungs, continuing = e.generation, e.rung, e.rungs, e.continuing
        for c in continuing:
            self.bars.update(self._row(generation, c), description=f"{self._label(generation, c)} queued for "
                                                                   f"rung {rung + 2}/{rungs}")

    def _on_candidate_finished(self, e: CandidateFinished) -> None:
        generation, candidate, status, fitness, error = e.generation, e.candidate, e.status, e.fitness, e.error
        success, fate, env_steps, budget = e.success, e.fate, e.env_steps, e.budget
        key = (generation, candidate)
        row = self._row(generation, candidate)
        steps = int(env_steps or self.state[key].get("steps") or 0)
        self.state[key]["steps"] = steps
        self.state[key]["finished"] = True
        label = self._label(generation, candidate)
        if status == "ok":
            text = f"{label} [green]fitness {fitness:.3g}[/]" + (" (success)" if success else "")
            if fate == "eliminated":
                text += ", [dim]cut early[/]"  # by halving; the count column says at how many steps
        else:
            text = f"{label} [red]{term(status)}[/]: {one_line(error, 60)}"
        own = max(steps, 1)  # the bar ends at the candidate's own budget: what it actually trained
        count = f"{human_steps(steps)}/{human_steps(budget or self.steps)}" if fate == "eliminated" else \
            (human_steps(steps) + " steps" if steps else "")
        self.bars.update(row, description=text, total=own, completed=own if status == "ok" else 0, count=count)
        self.bars.stop_task(row)
        self._update_eta(generation)
        if not self.live:
            self.print(text + (f" at {count} env-steps" if fate == "eliminated" else ""))

    def _on_confirm_started(self, e: ConfirmStarted) -> None:
        contenders, seeds, steps = e.contenders, e.seeds, e.steps
        self._confirm_started = time.monotonic()
        self._confirm_trained = 0
        named = ", ".join(f"{candidate_label(c['generation'], c['candidate'])} ({c['fitness']:.4g})" for c in contenders)
        self.print(f"confirming the best: retraining {named} from scratch on {seeds} new training seed(s) each, "
                   f"{human_steps(steps)} env-steps per training")

    def _on_confirm_run(self, e: ConfirmRun) -> None:
        ref, seed_index, status, fitness, error = e.ref, e.seed_index, e.status, e.fitness, e.error
        reused, done, total = e.reused, e.done, e.total
        what = "finished before: reused" if reused else (
            f"fitness {fitness:.4g}" if status == "ok" else f"[red]{term(status)}[/]: {one_line(error, 60)}")
        self._confirm_trained += not reused
        eta = ""
        if self._confirm_trained and done < total:
            eta = f" (~{_clock((time.monotonic() - self._confirm_started) / self._confirm_trained * (total - done))} left)"
        self.print(f"confirm {done}/{total}: {term(as_label(ref))}, seed {seed_index}: {what}{eta}")

    def _on_confirm_finished(self, e: ConfirmFinished) -> None:
        confirm = e.confirm
        if not confirm:
            self.print("confirming the best: fewer than two candidates succeeded, nothing to choose between")
            return
        rows = {(r["generation"], r["candidate"]): r for r in confirm["contenders"]}
        if not confirm.get("best"):
            self.print("confirming the best: no retraining succeeded; the best stays the highest single-seed fitness")
            return
        b = rows[(confirm["best"]["generation"], confirm["best"]["candidate"])]
        line = (f"confirmed best: {candidate_label(b['generation'], b['candidate'])}, mean fitness {b['mean']:.4g} "
                f"± {b['std']:.2g} over {confirm['seeds']} new seed(s) (picked at {b['selection_fitness']:.4g})")
        if confirm.get("changed"):
            first = confirm["contenders"][0]
            mean = "failed" if first["mean"] is None else f"mean {first['mean']:.4g}"
            line += (f"; the highest single-seed fitness, {candidate_label(first['generation'], first['candidate'])} "
                     f"({first['selection_fitness']:.4g}), had {mean}")
        self.print(line)

    def _on_warning(self, e: RunWarning) -> None:
        message = e.message
        self.print(f"[yellow]warning:[/] {term(message)}")

    def _on_calibrating(self, e: Calibrating) -> None:
        task, trainer = e.task, e.trainer
        self.print(f"measuring how fast {term(task)} trains with {term(trainer)} here, for the time estimate")
        self.print("  (a few seconds on this machine; remembered for the next run)")

    def _on_estimate(self, e: EstimateUpdate) -> None:
        """The run's duration: printed up front (measured on this machine, or remembered from the last
        run) and once this run's own pace is measured; kept for generation starts."""
        seconds_left, basis = e.seconds_left, e.basis
        shown: set[str] = getattr(self, "_estimate_shown", set())
        self._estimate = (seconds_left, basis)
        first = not shown
        if basis not in shown and (first or basis == "measured"):
            self._estimate_shown = shown | {basis}
            what = {"calibrated": "estimated duration (measured on this machine)",
                    "remembered": "estimated duration (from the last run of this setup)",
                    "guess": "estimated duration (a rough guess: nothing measured yet)",
                    "measured": "estimated time left (measured)"}.get(basis, "estimated duration")
            llm = "; the LLM's answers not counted" if self.llm and basis != "measured" else ""
            self.print(f"{what}: ~{duration(seconds_left)}{llm}")

    def _on_llm_status(self, e: LLMStatus) -> None:
        """While the LLM is asked: one live row with the requests in flight and the time so far."""
        generation, in_flight, answered, failed = e.generation, e.in_flight, e.answered, e.failed
        text = f"gen {generation} asking the LLM: {in_flight} request(s) in flight, {answered} answered" + \
            (f", {failed} failed" if failed else "")
        if getattr(self, "_llm_row", None) is None:
            self._llm_row = self.bars.add_task(text, total=None, count="", eta="")
        self.bars.update(self._llm_row, description=text)

    def _llm_done(self):
        row = getattr(self, "_llm_row", None)
        if row is not None:  # kept (rows are looked up by position), shown as done
            self.bars.update(row, total=1, completed=1)
            self._llm_row = None

    def _on_awaiting_feedback(self, e: AwaitingFeedback) -> None:
        generation, run_dir = e.generation, e.run_dir
        if self.live:
            self.bars.stop()
        self.print(f"generation {generation} is done: watch the videos ({gen_dirname(generation)}/cand-*/{VIDEO_FILE} "
                   f"in {term(run_dir)}, or `rewardgen serve`) and give feedback")

    def _on_generation_finished(self, e: GenerationFinished) -> None:
        generation, summary, best, report, resumed = e.generation, e.summary, e.best, e.report, e.resumed
        row = self.gen_rows.pop(generation, None)
        if row is not None:
            self.bars.update(row, eta="", count=human_steps(summary.get("steps_spent") or 0) + " steps")
            self.bars.stop_task(row)
        if resumed or generation in self.resumed or self.kind == "train":
            return  # said so when it started; `train` prints its own verdict
        b = summary.get("best")
        line = (f"generation {generation} done: best {candidate_label(generation, b['candidate'])} fitness "
                f"{b['fitness']:.4g}") if b else f"generation {generation} done: no candidate succeeded"
        if best:
            line += f"; best so far {candidate_label(best['generation'], best['candidate'])} ({best['fitness']:.4g})"
        self.print(line)
        if report:
            self.print(f"report: {term(report)}")


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def summary_table(summary: dict, width: int = 80):
    """The run's candidates: label (``*`` the best), status ("success": trained, at or above the task's
    success threshold), fitness, env-steps trained, error."""
    best = summary.get("best") or {}
    errors = any(c.get("error") for gen in summary.get("generations", []) for c in gen["candidates"])
    cols = [Col("candidate"), Col("status", 1), Col("fitness", justify="right"),
            Col("trained env-steps", 2, justify="right")] + ([Col("error", 3, wrap=True)] if errors else [])
    rows = []
    cut = False
    for gen in summary.get("generations", []):
        for cand in gen["candidates"]:
            mark = " *" if (best.get("generation"), best.get("candidate")) == (gen["generation"], cand["candidate"]) else ""
            trained = human_steps(cand["env_steps"]) if cand.get("env_steps") else ""
            if cand.get("fate") == "eliminated":
                trained, cut = trained + " (cut)", True
            status = "success" if cand["status"] == "ok" and cand.get("success") else term(cand["status"], markup=False)
            cells = [candidate_label(gen["generation"], cand["candidate"]) + mark, status,
                     "" if cand["fitness"] is None else f"{cand['fitness']:.4g}", trained]
            rows.append(cells + ([clip(one_line(cand.get("error"), markup=False), 240, "in the report")]
                                 if errors else []))
    caption = "* the best candidate of the run" + ("; (cut): stopped early by the schedule" if cut else "")
    return fitted_table(cols, rows, width, title=f"run {term(Path(summary['run_dir']).name, markup=False)}",
                        caption=caption)


BASELINES = {"env": "the env's own reward", "sparse": "a sparse success reward"}


def tasks_text(tasks: list, width: int) -> list[str]:
    """``rewardgen tasks`` as lines of at most ``width`` columns (at least 40): per task a head line
    (id, robot, default budget), its fitness, success threshold and baseline, and the description
    wrapped and indented, so nothing is cut at 80 columns or in a pipe."""
    import textwrap

    width = max(40, width)
    out = [*textwrap.wrap(f"{len(tasks)} tasks; train with `rewardgen evolve --task ID`, see what a proposer is "
                          "told with `rewardgen describe ID`.", width), ""]
    for t in tasks:
        params = ", ".join(f"{k}={v}" for k, v in t.fitness.get("params", {}).items())
        fitness = f"{t.fitness['name']}({params})"
        out.append(f"{t.id}  ·  {t.robot_label}  ·  {human_steps(t.default_steps)} steps")
        for facts in (f"fitness: {fitness}, success at >= {t.success_threshold:g}",
                      f"baseline: {BASELINES.get(t.baseline_kind, t.baseline_kind)}"):
            out += textwrap.wrap(facts, width, initial_indent="  ", subsequent_indent="    ",
                                 break_on_hyphens=False)
        out += textwrap.wrap(t.description, width, initial_indent="  ", subsequent_indent="  ",
                             break_on_hyphens=False)
        out.append("")
    return out[:-1]


def component_shares(training: dict) -> list[dict]:
    """Per component: mean per step at the first and last checkpoint of training, and its share of the
    reward's magnitude at the end (|mean| / sum of |means|), largest share first."""
    comps = training.get("components") or {}
    rows = []
    for name, points in comps.items():
        pts = [p for p in points or [] if isinstance(p, dict) and isinstance(p.get("mean"), (int, float))]
        if pts:
            rows.append({"name": name, "first": float(pts[0]["mean"]), "last": float(pts[-1]["mean"])})
    total = sum(abs(r["last"]) for r in rows)
    for r in rows:
        r["share"] = abs(r["last"]) / total if total > 0 else None
    return sorted(rows, key=lambda r: -(r["share"] or 0))


def components_table(training: dict, width: int = 80):
    """Each reward component's mean per step at the start and the end of training and its share at the end."""
    rows = [[clip(one_line(r["name"], markup=False), 64), f"{r['first']:.4g}", f"{r['last']:.4g}",
             "-" if r["share"] is None else f"{r['share']:.0%}"] for r in component_shares(training)]
    cols = [Col("component", wrap=True), Col("start of training", 1, justify="right"),
            Col("end of training", justify="right"), Col("share at end", justify="right")]
    return fitted_table(cols, rows, width, title="reward components (mean per step)") if rows else None


def final_table(result: dict, run_name: str, width: int = 80):
    """``rewardgen final``'s rows: per method the seeds that trained, fitness mean and std, success rate
    and the human-normalised score."""
    def f(v: float | None) -> str:
        return "" if v is None else f"{v:.4g}"

    cols = [Col("method"), Col("seeds ok", 2, justify="right"), Col("fitness mean", justify="right"),
            Col("fitness std", 1, justify="right"), Col("success rate", 3, justify="right"),
            Col("normalised score", 1, justify="right")]
    rows = [[term(row["label"], markup=False), f"{row['ok']}/{row['seeds']}", f(row["fitness_mean"]),
             f(row["fitness_std"]), f(row["success_rate"]), f(row.get("human_normalized"))] for row in result["rows"]]
    return fitted_table(cols, rows, width, title=f"final evaluation of {run_name}")


def suite_table(result: dict, out: str | Path, width: int = 80):
    """``rewardgen bench suite``'s table (the columns of ``suite.md``), fitted to ``width``."""
    from rewardgen.bench.suite import HEADER, table_rows

    priority = {"task": 0, "evolved (mean ± std)": 0, "human (env reward)": 0, "evolved >= human": 0,
                "human-normalised score": 1, "evolved - human (standard errors)": 1, "budget": 2,
                "sparse": 3}  # success, >= both: 4
    wrapped = ("human-normalised score", "evolved - human (standard errors)")
    cols = [Col(h, priority.get(h, 4), wrap=h in wrapped) for h in HEADER]
    return fitted_table(cols, [[term(c, markup=False) for c in r] for r in table_rows(result)], width,
                        title=f"bench suite ({out})", more=f"every column: {Path(out) / 'suite.md'}")


def debug_table(report, width: int = 80):
    """``rewardgen debug``'s statistics per component (the ``DebugReport.render`` columns), fitted to ``width``."""
    def _g(x: float | None, digits: int = 4) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"

    cols = [Col("component", wrap=True), Col("mean", justify="right"), Col("std", 2, justify="right"),
            Col("min", 3, justify="right"), Col("max", 3, justify="right"), Col("share", justify="right"),
            Col("const", 2, justify="right"), Col("nan/inf", 2, justify="right"),
            Col("corr(step)", 1, justify="right"), Col("corr(ep)", 1, justify="right")]
    rows = [[clip(one_line(c.name, markup=False), 64), _g(c.mean), _g(c.std), _g(c.min), _g(c.max),
             "-" if c is report.total else f"{100 * c.share:.0f}%", f"{100 * c.constant_fraction:.0f}%",
             str(c.nonfinite), _g(c.corr_step, 2), _g(c.corr_episode, 2)] for c in [*report.components, report.total]]
    return fitted_table(cols, rows, width)


class SuiteProgress:
    """The suite's progress as plain lines, stamped with the time (a suite runs for hours, into a log):
    each task's phase, every finished candidate, generation and final training, and the time left
    for the whole suite at most once a minute."""

    def __init__(self, console):
        self.console, self.last_estimate = console, 0.0

    def say(self, text: str) -> None:
        self.console.print(f"{time.strftime('%H:%M:%S')} {term(text, markup=False)}", highlight=False, markup=False,
                           soft_wrap=True)

    def event(self, event: Event) -> None:
        match event:
            case SuiteStarted(tasks=tasks, done=done, out=out):
                self.say(f"suite of {len(tasks)} task(s) in {out}" + (f"; already done: {', '.join(done)}" if done else ""))
            case SuiteTask():
                extra = " (resumed)" if event.resumed else ""
                self.say(f"[{event.index + 1}/{event.count} {event.task}] {event.phase}{extra}: {event.run_dir}")
            case SuiteEstimateUpdate():
                now = time.monotonic()
                if now - self.last_estimate >= 60 or event.task is None:
                    self.last_estimate = now
                    left = event.seconds_left
                    self.say(f"suite: about {duration(left)} left, done near "
                             f"{time.strftime('%H:%M', time.localtime(time.time() + left))} "
                             f"({event.basis}: {human_steps(event.env_steps_left)} of "
                             f"{human_steps(event.env_steps_planned)} env-steps to go at {human_steps(event.rate)}/s; "
                             f"load {load_text()})")
            case TaskEvent(task=task, event=inner):
                self._task_event(task, inner)

    def _task_event(self, task: str, event: Event) -> None:
        match event:
            case CandidateFinished():
                fit = "" if event.fitness is None else f" fitness {event.fitness:.4g}"
                self.say(f"  {task} {candidate_label(event.generation, event.candidate)}: {event.status}{fit}"
                         + (f" ({flatten(event.error, 160)})" if event.error else ""))
            case GenerationFinished():
                best = event.best or {}
                self.say(f"  {task} generation {event.generation} done; best so far "
                         f"{best.get('fitness', float('nan')):.4g}")
            case FinalRun():
                fit = "" if event.fitness is None else f" fitness {event.fitness:.4g}"
                self.say(f"  {task} final {event.method} seed {event.seed_index}: {event.status}{fit}"
                         + (f" ({flatten(event.error, 160)})" if event.error else ""))
            case RunWarning():
                self.say(f"  {task} warning: {event.message}")


def throughput_table_view(result: dict, width: int = 80):
    """``rewardgen bench throughput``'s table: per task (one per env) a = bare ``mujoco.rollout``, b =
    rewardgen PPO in its worker, c = SB3 PPO (env-steps/s, medians), b/a and b/c (medians of the
    per-repeat ratios), and where b's time went."""
    def rate(v: float) -> str:
        return f"{v:,.0f}"

    def split(row: dict) -> str:
        s = row.get("b_split")
        if not s:
            return "-"
        return " ".join(f"{k[:4]} {s[k]:.0%}" for k in ("physics", "rules", "policy", "reward", "update"))

    # short headers: Rich does not wrap a header in a column whose cells may not wrap
    cols = [Col("task"), Col("worlds", 3, justify="right"), Col("a rollout", justify="right"),
            Col("a BatchSim", 4, justify="right"), Col("b PPO", justify="right"),
            Col("c SB3", justify="right"), Col("b/a", justify="right"), Col("b/c", justify="right"),
            Col("b's time", 2, wrap=True)]
    rows = [[term(r["task"], markup=False), str(r["num_worlds"]), rate(r["a_raw_rollout_env_steps_per_s"]),
             rate(r["a_raw_batchsim_env_steps_per_s"]), rate(r["b_rewardgen_ppo_env_steps_per_s"]),
             rate(r["c_sb3_ppo_env_steps_per_s"]), f"{r['ratio_b_over_a_rollout']:.2f}",
             f"{r['ratio_b_over_c']:.1f}", split(r)] for r in result["rows"]]
    caption = ("a: bare mujoco.rollout of the same model, worlds and cores; b: rewardgen PPO in its worker; c: SB3 "
               "PPO on the same reward; b's time: shares of its wall time in physics, rules (observations, "
               "terminations, State), policy inference, reward and update; "
               f"env-steps/s, medians over {result['repeats']} repeat(s); b/a and b/c: medians of each repeat's "
               f"ratio; b: {result['ppo_steps']:,} env-steps ({result['b_mode']}), c: {result['sb3_steps']:,}; "
               f"load {result['load']['before']} before, {result['load']['after']} after")
    return fitted_table(cols, rows, width, title="throughput", caption=caption)
