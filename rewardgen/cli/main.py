"""``rewardgen`` command line: a thin shell over the library.

Every command's bad input ends with one line on stderr and exit code 2 (any ``UserError``, mapped in
``main``); nothing on disk is harmed. A run with nothing usable ends with one line and exit code 1.
With ``--json`` the last line of stdout is one JSON object and the progress display goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rewardgen.errors import UserError, flatten
from rewardgen.safetext import one_line, term

EXIT_FAILED = 1  # the command ran but produced nothing usable (a run with no trained candidate)
EXIT_USAGE = 2


class UsageError(UserError):
    """Bad input on the command line: reported in one line with exit code 2.

    ``prog`` names the command in the printed line (``rewardgen evolve: error: ...``)."""

    def __init__(self, message: str, prog: str = "rewardgen"):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise UsageError(f"{message} (see {self.prog} --help)", prog=self.prog)


def _number(kind: type, ok, wanted: str):
    """An argparse type: parse ``kind`` and require ``ok(value)``, saying ``wanted`` when not."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value
    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_port = _number(int, lambda v: 1 <= v <= 65535, "a TCP port from 1 to 65535")


# --------------------------------------------------------------------------- progress display
#: the run directory of the command in progress, for the Ctrl-C message
CURRENT_RUN: dict[str, str] = {}


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
        return f"gen {g} cand {c:<2}"

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

    def event(self, kind: str, **d: Any) -> None:
        with self.lock:
            handler = getattr(self, f"_on_{kind}", None)
            if handler is not None:
                handler(**d)

    # ----- events
    def _on_run_started(self, run_dir, task, proposer, config, run_kind="evolve", steps=None, **_):
        CURRENT_RUN["run_dir"] = str(run_dir)
        self.kind = run_kind
        if run_kind == "train":
            self.print(f"[bold]rewardgen train[/]: task [cyan]{term(task)}[/], the reward file as one candidate, "
                       f"{human_steps(steps)} env-steps")
        else:
            self.print(f"[bold]rewardgen evolve[/]: task [cyan]{term(task)}[/], proposer: {term(proposer)}")
        self.print(f"run directory: {term(run_dir)}")

    def _on_proposing(self, generation, proposer, **_):
        self.print(f"generation {generation}: asking the {term(proposer)} for candidates")

    def _on_generation_started(self, generation, candidates, pending, steps, schedule="full", plan=None, **_):
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
        extra += f", ~{_duration(left[0])} left" if left and left[1] == "measured" else ""
        how = ""
        if plan and len(plan) > 1:
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

    def _on_candidate_started(self, generation, candidate, rung=0, rungs=1, target=None, budget=None, **_):
        row = self._row(generation, candidate)
        self.bars.start_task(row)
        what = "checking" if rung == 0 else f"continuing (rung {rung + 1} of {rungs})"
        total = target or self.steps or 1
        self.bars.update(row, description=f"{self._label(generation, candidate)} {what}", total=total,
                         completed=min(self.state[(generation, candidate)]["steps"], total),
                         count=self._count(self.state[(generation, candidate)]["steps"], total))

    def _on_candidate_progress(self, generation, candidate, steps, total, budget=None, rung=0, rungs=1, **_):
        row = self._row(generation, candidate)
        self.state[(generation, candidate)]["steps"] = steps
        stage = "training" if rungs == 1 else f"training, rung {rung + 1}/{rungs}"
        self.bars.update(row, completed=min(steps, total), total=total, count=self._count(steps, total),
                         description=f"{self._label(generation, candidate)} {stage}")
        self._update_eta(generation)

    def _on_evaluating(self, generation, candidate, **_):
        self.bars.update(self._row(generation, candidate),
                         description=f"{self._label(generation, candidate)} evaluating")

    def _on_slice_finished(self, generation, candidate, rung, rungs, fitness, **_):
        if rung < rungs - 1:
            self.bars.update(self._row(generation, candidate),
                             description=f"{self._label(generation, candidate)} fitness {fitness:.3g}, waiting")

    def _on_rendering_video(self, generation, candidate, **_):
        if self.state.get((generation, candidate), {}).get("finished"):
            return  # videos render in the background: a finished row keeps its fitness and fate
        self.bars.update(self._row(generation, candidate),
                         description=f"{self._label(generation, candidate)} rendering its video")

    def _on_rung_finished(self, generation, rung, rungs, continuing, next_target, **_):
        for c in continuing:
            self.bars.update(self._row(generation, c), description=f"{self._label(generation, c)} queued for "
                                                                   f"rung {rung + 2}/{rungs}")

    def _on_candidate_finished(self, generation, candidate, status, fitness, error, success, fate=None,
                               env_steps=None, budget=None, rungs=None, **_):
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

    def _on_warning(self, message, **_):
        self.print(f"[yellow]warning:[/] {term(message)}")

    def _on_estimate(self, seconds_left, seconds_total, basis, **_):
        """The run's duration: printed up front (a guess) and once measured; kept for generation starts."""
        shown = getattr(self, "_estimate_shown", set())
        self._estimate = (seconds_left, basis)
        if basis not in shown:
            self._estimate_shown = shown | {basis}
            what = "estimated duration" if basis == "guess" else "estimated time left (measured)"
            self.print(f"{what}: ~{_duration(seconds_left)}")

    def _on_llm_status(self, generation, in_flight, answered, failed, **_):
        """While the LLM is asked: one live row with the requests in flight and the time so far."""
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

    def _on_awaiting_feedback(self, generation, run_dir, **_):
        if self.live:
            self.bars.stop()
        self.print(f"generation {generation} is done: watch the videos (gen-{generation:03d}/cand-*/video.mp4 "
                   f"in {term(run_dir)}, or `rewardgen serve`) and give feedback")

    def _on_generation_finished(self, generation, summary, best, report=None, resumed=False, **_):
        row = self.gen_rows.pop(generation, None)
        if row is not None:
            self.bars.update(row, eta="", count=human_steps(summary.get("steps_spent") or 0) + " steps")
            self.bars.stop_task(row)
        if resumed or generation in self.resumed or self.kind == "train":
            return  # said so when it started; `train` prints its own verdict
        b = summary.get("best")
        line = f"generation {generation} done: best candidate {b['candidate']} fitness {b['fitness']:.4g}" if b \
            else f"generation {generation} done: no candidate succeeded"
        if best:
            line += f"; best so far gen {best['generation']} cand {best['candidate']} ({best['fitness']:.4g})"
        self.print(line)
        if report:
            self.print(f"report: {term(report)}")


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _summary_table(summary: dict, budget: int | None = None):
    from rich.table import Table

    table = Table(title=f"run {term(Path(summary['run_dir']).name)}", caption="* the best candidate of the run",
                  caption_justify="left")
    for col in ("gen", "cand", "status", "fitness", "success", "trained"):
        table.add_column(col, no_wrap=True)
    errors = any(c.get("error") for gen in summary.get("generations", []) for c in gen["candidates"])
    if errors:  # no empty squeezed column when every candidate ran
        table.add_column("error", overflow="fold", max_width=60)
    best = summary.get("best") or {}
    for gen in summary.get("generations", []):
        for cand in gen["candidates"]:
            mark = " *" if (best.get("generation"), best.get("candidate")) == (gen["generation"], cand["candidate"]) else ""
            fit = "" if cand["fitness"] is None else f"{cand['fitness']:.4g}{mark}"
            trained = f"{human_steps(cand['env_steps'])} steps" if cand.get("env_steps") else ""
            if cand.get("fate") == "eliminated":
                trained += " (cut by halving)"
            cells = [str(gen["generation"]), str(cand["candidate"]), term(cand["status"]), fit,
                     "yes" if cand.get("success") else "", trained]
            table.add_row(*cells, *([one_line(cand.get("error"), 120)] if errors else []))
    return table


# --------------------------------------------------------------------------- commands
def _consoles(as_json: bool):
    from rich.console import Console

    out = Console(stderr=as_json, highlight=False)
    return out


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def human_steps(n: Any) -> str:
    """Env-steps for people: 1000000 -> "1M", 300000 -> "300k", 2048 -> "2,048"."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return str(n)
    n = int(n)
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if abs(n) >= div and n % (div // 100) == 0:
            return f"{n / div:g}{unit}"
    return f"{n:,}"


BASELINES = {"env": "the env's own reward", "sparse": "a sparse success reward"}


def tasks_text(tasks: list, width: int) -> list[str]:
    """``rewardgen tasks`` as lines of at most ``width`` columns (at least 40): per task a head line
    (id, robot, default budget), its fitness, success threshold and baseline, and the description
    wrapped and indented, so nothing is cut at 80 columns or in a pipe."""
    import textwrap

    width = max(40, width)
    out = textwrap.wrap(f"{len(tasks)} tasks; train with `rewardgen evolve --task ID`, see what a proposer is "
                        "told with `rewardgen describe ID`.", width) + [""]
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


def cmd_tasks(args) -> int:
    from rich.console import Console

    from rewardgen.tasks.spec import list_tasks

    tasks = list_tasks()
    if args.json:
        _emit_json([{"id": t.id, "description": t.description, "robot": t.robot_label, "baseline": t.baseline_kind,
                     "fitness": t.fitness, "success_threshold": t.success_threshold,
                     "default_steps": t.default_steps} for t in tasks])
        return 0
    console = Console(highlight=False, soft_wrap=True)
    ids = {t.id for t in tasks}
    for line in tasks_text(tasks, min(console.width, 100)):
        head = line.split("  ·  ", 1)
        if len(head) == 2 and head[0] in ids:  # the task id in colour on a terminal
            console.print(f"[bold cyan]{term(head[0])}[/]  ·  {term(head[1])}")
        else:
            console.print(term(line))
    return 0


def cmd_describe(args) -> int:
    from rewardgen.proposers.prompts import task_prompts

    task = _task(args.task)
    prompts = task_prompts(task)
    if args.json:
        _emit_json({"task": task.id, "system": prompts["system"], "user": prompts["task"]})
        return 0
    sys.stdout.write("=== system prompt ===\n" + prompts["system"] + "\n=== task prompt ===\n" + prompts["task"])
    return 0


def _task(name: str):
    """The task ``name`` (an id or a YAML path), checked to build its env: TaskError (exit 2) if not."""
    from rewardgen.tasks.spec import check_loads, get_task

    task = get_task(name)
    check_loads(task)
    return task


def _config_from_args(args):
    from rewardgen.run.evolve import EvolveConfig

    llm = {k: getattr(args, k) for k in ("llm", "model", "base_url", "temperature", "llm_timeout", "critic", "prompts",
                                         "schedule", "mode", "interactive", "executor", "ray_address", "sim",
                                         "device")
           if hasattr(args, k)}
    if hasattr(args, "no_video"):
        llm["video"] = not args.no_video
    return EvolveConfig(task=args.task, samples=getattr(args, "samples", 1), generations=getattr(args, "generations", 1),
                        steps=args.steps, seed=args.seed, workers=args.workers, trainer=args.trainer,
                        num_envs=args.num_envs, timeout=args.timeout, eval_episodes=args.eval_episodes, **llm)


def _task_from_env_args(args):
    from rewardgen.tasks.spec import task_from_mjcf

    if not args.describe or not args.fitness:
        raise UsageError("--env needs --describe \"what to do\" and --fitness \"name(param=value)\"")
    extra = {k: v for k, v in (("episode_length", args.episode_length), ("success_threshold", args.success_threshold),
                               ("frame_skip", args.frame_skip), ("task_id", args.id)) if v is not None}
    if getattr(args, "steps", None):
        extra["default_steps"] = args.steps
    return task_from_mjcf(args.env, args.describe, args.fitness, **extra)


def _add_env_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("bring your own robot (no task file needed)")
    g.add_argument("--env", default=None, metavar="ROBOT.xml", help="an MJCF model file to use instead of --task")
    g.add_argument("--describe", default=None, help='what the robot should do, e.g. "make it walk forward"')
    g.add_argument("--fitness", default=None,
                   help='trusted fitness from rewardgen\'s library, e.g. "forward_velocity(body=base)"')
    g.add_argument("--episode-length", type=_positive_int, default=None, help="steps per episode (default 1000)")
    g.add_argument("--success-threshold", type=float, default=None, help="fitness that counts as success")
    g.add_argument("--frame-skip", type=_positive_int, default=None, help="physics steps per env step (default 5)")
    g.add_argument("--id", default=None, help="task id (default: derived from the file name)")


def cmd_task_new(args) -> int:
    from rewardgen.tasks.spec import write_task_yaml

    task = _task_from_env_args(args)
    path = write_task_yaml(task, Path(args.output), overwrite=args.force)
    print(f"wrote {path}; use it with: rewardgen evolve --task {path}")
    return 0


def _run_with_progress(args, fn) -> dict:
    console = _consoles(args.json)
    with RichProgress(console) as progress:
        summary = fn(progress)
    return summary


def cmd_evolve(args) -> int:
    from rewardgen.run.evolve import Evolution, replay_config, start_run

    task = None
    if args.replay:
        config, task = replay_config(Path(args.replay))
    elif args.env:
        if args.task:
            raise UsageError("give either --task or --env, not both", prog="rewardgen evolve")
        task = _task_from_env_args(args)
        args.task = task.id
        config = _config_from_args(args)
    elif not args.task:
        raise UsageError("the following arguments are required: --task (or --env ROBOT.xml, or --replay RUN_DIR)",
                         prog="rewardgen evolve")
    else:
        config = _config_from_args(args)
    config.validate()
    task = task or _task(config.task)
    store = start_run(config, Path(args.runs_dir), task=task)
    return _run_or_stop(args, lambda progress: Evolution(store, progress).run(), store.path)


def _run_or_stop(args, fn, run_dir: Path) -> int:
    """Run an evolve/resume with progress; a run the LLM endpoint stopped ends in one line, exit 1."""
    from rewardgen.run.evolve import EndpointFailure

    try:
        summary = _run_with_progress(args, fn)
    except EndpointFailure as exc:
        if args.json:
            from rewardgen.store import RunStore

            run = RunStore(run_dir).read_run()
            _emit_json({"run_dir": str(run_dir), "best": run.get("best"), "generations": run.get("generations", []),
                        "error": str(exc)})
        print(term(f"rewardgen: the run stopped: {flatten(exc, 1000)} (once fixed: rewardgen resume {run_dir})",
                   markup=False),
              file=sys.stderr)
        return EXIT_FAILED
    return _report_run(args, summary)


def _report_run(args, summary: dict) -> int:
    if args.json:
        _emit_json({"run_dir": summary["run_dir"], "best": summary["best"], "generations": summary["generations"]})
    else:
        from rich.console import Console

        console = Console(highlight=False)
        console.print(_summary_table(summary))
        best = summary.get("best")
        if best:
            path = Path(summary["run_dir"]) / f"gen-{best['generation']:03d}" / f"cand-{best['candidate']:02d}" / "reward.py"
            console.print(f"best: generation {best['generation']} candidate {best['candidate']} "
                          f"fitness {best['fitness']:.4g}", highlight=False)
            console.print(f"  reward: {term(path)}", soft_wrap=True)
        report = Path(summary["run_dir"]) / "report.html"
        if report.is_file():
            console.print(f"  report: {term(report)}", soft_wrap=True)
    from rewardgen.run.evolve import failure_summary

    cause = failure_summary(summary.get("generations") or [])
    if cause:  # nothing usable came out of the run: say why in one line, exit non-zero
        print(term(f"rewardgen: {cause} (details: rewardgen report {summary['run_dir']})", markup=False),
              file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_resume(args) -> int:
    from rewardgen.run.evolve import resume
    from rewardgen.store import RunStore

    run = RunStore.open(Path(args.run)).read_run()
    if run.get("status") == "finished" and not args.json:
        done = len(run.get("generations", []))
        print(f"rewardgen resume: {args.run} already finished all {done} generation(s); nothing to do. To train "
              "more generations, start the next one from the web UI (`rewardgen serve`) or run `rewardgen evolve "
              "--replay` / a new `rewardgen evolve`.", file=sys.stderr)
    return _run_or_stop(args, lambda progress: resume(Path(args.run), progress), Path(args.run))


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


def _components_table(training: dict):
    from rich.table import Table

    rows = component_shares(training)
    table = Table(title="reward components (mean per step)", title_justify="left")
    table.add_column("component", overflow="fold", max_width=32)
    for col in ("start of training", "end of training", "share at end"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(one_line(r["name"], 64), f"{r['first']:.4g}", f"{r['last']:.4g}",
                      "-" if r["share"] is None else f"{r['share']:.0%}")
    return table if rows else None


def cmd_train(args) -> int:
    from rewardgen.run.evolve import train_file
    from rewardgen.sandbox.validate import validate_source

    source = _read_reward(args.reward)
    config = _config_from_args(args)
    config.validate()
    task = _task(config.task)
    issues = validate_source(source)
    if issues:  # refused before anything runs: no run directory for a file that cannot be trained
        if args.json:
            _emit_json({"run_dir": None, "status": "static", "fitness": None, "success": False,
                        "error": str(issues[0]), "env_steps": 0, "env_steps_per_second": None})
        else:
            print(term(f"rejected before training (static check) - {args.reward}:", markup=False), file=sys.stderr)
            for issue in issues:
                print("  " + term(str(issue), markup=False), file=sys.stderr)
            print("nothing was trained; fix the file (`rewardgen check` explains more) and run again", file=sys.stderr)
        return 1
    result = _run_with_progress(args, lambda progress: train_file(source, config, Path(args.runs_dir), progress))
    m = result["metrics"]
    out = {"run_dir": result["run_dir"], "status": m.get("status"), "fitness": m.get("fitness"),
           "success": bool(m.get("success")), "error": m.get("error"), "env_steps": m.get("env_steps"),
           "env_steps_per_second": m.get("env_steps_per_second")}
    if args.json:
        _emit_json(out)
    else:
        from rich.console import Console

        console = Console(highlight=False)
        if m.get("status") == "ok":
            verdict = (f"success: at or above the threshold {task.success_threshold:g}" if m.get("success")
                       else f"below the success threshold {task.success_threshold:g}")
            fitness_name = task.fitness.get("name", "fitness")
            console.print(f"trusted fitness ({term(fitness_name)}): [bold]{m['fitness']:.4g}[/], {verdict}")
            console.print(f"trained {human_steps(m.get('env_steps'))} env-steps at "
                          f"{human_steps(round(m.get('env_steps_per_second') or 0))} env-steps/s")
            table = _components_table(m.get("training") or {})
            if table is not None:
                console.print(table)
        else:
            console.print(f"[red]{term(m.get('status'))}[/]: {term(m.get('error'))}")
            tb = m.get("traceback")
            if tb and tb.strip() != (m.get("error") or "").strip():
                console.print(term(tb, markup=False), markup=False)
        console.print(f"run directory: {term(result['run_dir'])}", soft_wrap=True)
    return 0 if m.get("status") == "ok" else 1


def _read_reward(path_text: str) -> str:
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"no such reward file: {path}")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def cmd_check(args) -> int:
    from rewardgen.sandbox.check import check_reward

    source = _read_reward(args.reward)
    task = _task(args.task)
    verdict = check_reward(source, task, steps=args.steps, seed=args.seed)
    if args.json:
        _emit_json(verdict.to_json())
    else:
        print(term(verdict.explain(), markup=False))  # the reward's own text: shown, never obeyed
    return 0 if verdict.ok else 1


def cmd_bench(args) -> int:
    from rich.console import Console

    from rewardgen.bench import train as bench

    _task(args.task)
    args.steps_given = args.steps is not None
    args.steps = args.steps or 300_000
    if args.what == "schedule":
        args.samples = args.samples or 8
    console = Console(stderr=args.json)
    if args.what == "schedule":
        from rewardgen.bench.schedule import compare_schedules

        seeds = list(range(args.seed, args.seed + (args.seeds or 1)))
        from rewardgen.bench.schedule import COMPARED

        schedules = [x.strip() for x in (args.schedules or ",".join(COMPARED)).split(",") if x.strip()]
        unknown = [x for x in schedules if x not in COMPARED]
        if unknown or not schedules:
            raise UsageError(f"--schedules takes a comma-separated list of {', '.join(COMPARED)}, got "
                             f"{args.schedules!r}")
        if args.runs_dir is not None:
            from rewardgen.store import check_runs_dir

            check_runs_dir(args.runs_dir)  # a path that cannot hold runs: one line, exit 2, before any training
        console.print(f"bench schedule on {args.task}: full vs successive halving vs adaptive, {args.samples} "
                      f"candidates, same proposals and seeds per seed (seeds {', '.join(map(str, seeds))}); "
                      f"load {_loadavg()}")
        result = compare_schedules(args.task, samples=args.samples, steps=args.schedule_steps, trainer=args.trainer,
                                   seeds=seeds, runs_dir=args.runs_dir, schedules=schedules,
                                   say=lambda line: console.print(line, highlight=False))
        if not args.json:
            for name, med in result["median"].items():
                share = f" ({med['steps_ratio']:.1%} of full's)" if med.get("steps_ratio") is not None else ""
                gap = med.get("fitness_gap")
                fit = med.get("best_fitness")
                console.print(f"median over {len(seeds)} seed(s) {name:>8}: {med['env_steps']:,.0f} env-steps{share}, "
                              f"best fitness {fit if fit is None else round(fit, 3)}"
                              + ("" if gap is None else f", {abs(gap):.1%} {'below' if gap > 0 else 'above'} "
                                 "full's best"), highlight=False)
    elif args.what == "evolve":
        from rewardgen.bench.evolve import bench_evolve

        if args.sim != "cpu":
            raise UserError("bench evolve measures the CPU simulator only (the Warp path: bench throughput --sim warp)")
        quick = args.quick
        steps = 4096 if quick and not args.steps_given else args.steps
        samples = args.samples or (2 if quick else 4)
        repeats = args.repeats or (1 if quick else 3)
        halving = args.halving_steps or (4096 if quick else None)
        console.print(f"bench evolve on {args.task}: trainer alone vs evolve (K={samples}, {steps} env-steps, full "
                      f"schedule, with and without video; halving at {halving or 'the default'} budget), "
                      f"{args.workers} worker(s), {repeats} repeat(s), interleaved; load {_loadavg()}")
        result = bench_evolve(args.task, steps=steps, samples=samples, repeats=repeats, halving_steps=halving,
                              workers=args.workers, seed=args.seed, eval_episodes=1 if quick else None,
                              say=lambda line: console.print(line, highlight=False))
        if not args.json:
            console.print(f"trainer alone: {result['trainer_alone_env_steps_per_s']:,.0f} env-steps/s (median)")
            for row in ("full", "full+video", "halving"):
                r = result[row]
                console.print(f"{row:>10}: {r['env_steps_per_s']:,.0f} env-steps/s, efficiency {r['efficiency']:.2f}, "
                              f"overhead {r['overhead_per_candidate_s']:.2f} s/candidate (measured "
                              f"{r['overhead_measured_s']:.2f} s), wall {r['wall_seconds']:.1f} s (medians)")
    elif args.what == "throughput" and args.sim == "warp":
        from rewardgen.sim.warp import warp_throughput

        console.print(f"bench throughput on {args.task}: MuJoCo Warp on {args.device}")
        result = warp_throughput(args.task, device=args.device)
    elif args.what == "throughput":
        console.print(f"bench throughput on {args.task}: raw simulation, rewardgen PPO (sandboxed worker), "
                      f"SB3 PPO over 8 gymnasium envs - side by side in one run")
        result = bench.throughput(args.task)
    else:
        console.print(f"bench learning on {args.task}: rewardgen PPO vs SB3 PPO, {args.steps} steps x {args.seeds} seeds")
        result = bench.learning(args.task, args.steps, seeds=tuple(range(args.seeds or 3)))
    if args.json:
        _emit_json(result)
    elif args.what not in ("schedule", "evolve"):
        console.print_json(json.dumps(result, default=str))
    return 0


def cmd_debug(args) -> int:
    from rewardgen.inspect.debug import DebugError, PolicyMismatch, check_policy_fits, debug_reward
    from rewardgen.contract.policy import PolicyExport, PolicyFormatError

    source = _read_reward(args.reward)
    task = _task(args.task)
    policy = None
    if args.policy:
        path = Path(args.policy)
        if not path.is_file():
            raise UsageError(f"no such policy file: {path}")
        try:
            policy = PolicyExport.from_bytes(path.read_bytes())
        except PolicyFormatError as exc:
            raise UsageError(f"{path}: {exc}") from None
        try:
            check_policy_fits(policy, task)
        except PolicyMismatch as exc:
            raise UsageError(f"--policy {path}: {exc}", prog="rewardgen debug") from None
    try:
        report = debug_reward(source, task, policy=policy, episodes=args.episodes, seed=args.seed)
    except DebugError as exc:
        if args.json:
            _emit_json({"ok": False, "stage": exc.stage, "error": str(exc)})
        else:
            print(f"the reward could not be run ({exc.stage}): {exc}", file=sys.stderr)
        return 1
    if args.json:
        _emit_json(report.to_json())
    else:
        rendered = report.render()
        if isinstance(rendered, str):
            print(rendered)
        else:
            from rich.console import Console

            Console().print(rendered)
    return 0


def cmd_report(args) -> int:
    from rewardgen.inspect.report import write_report
    from rewardgen.store import RunStore

    RunStore.open(Path(args.run))
    out = _writable_output(Path(args.output)) if args.output else Path(args.run) / "report.html"
    try:
        out = write_report(Path(args.run), out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}", prog="rewardgen report") from None
    print(out)
    return 0


def _writable_output(out: Path) -> Path:
    """``out`` when a file can be written there: UsageError (one line) for a directory, a missing or
    unwritable folder, before any work is done."""
    if out.is_dir():
        raise UsageError(f"-o {out} is a directory; give a file name")
    folder = out.parent
    if not folder.exists():
        raise UsageError(f"-o {out}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise UsageError(f"-o {out}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"-o {out}: cannot write to {folder} (permission denied)")
    return out


def cmd_export(args) -> int:
    from rewardgen.inspect.export import export_reward, parse_candidate
    from rewardgen.store import RunStore

    RunStore.open(Path(args.run))
    out = _writable_output(Path(args.output))
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to overwrite it")
    try:
        path = export_reward(Path(args.run), parse_candidate(args.candidate) if args.candidate else None, out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}", prog="rewardgen export") from None
    print(path)
    return 0


def cmd_feedback(args) -> int:
    from rewardgen.run import feedback

    item = feedback.add_text(Path(args.run), args.text, args.candidate)
    print(f"feedback stored; generation {item['applies_to']} will use it")
    return 0


def cmd_prefer(args) -> int:
    from rewardgen.run import feedback

    ranking = None
    if args.ranking:
        try:
            ranking = [int(x) for x in args.ranking.split(",")]
        except ValueError:
            raise UsageError(f"--ranking must be candidate numbers separated by commas, got {args.ranking!r}") from None
    best = args.best if args.best is not None else (ranking[0] if ranking else None)
    if best is None:
        raise UsageError("give --best C (and optionally --worst C) or --ranking C,C,...")
    item = feedback.add_preference(Path(args.run), args.generation, best, args.worst, ranking)
    print(f"preference stored; generation {item['applies_to']} will use it")
    return 0


def cmd_serve(args) -> int:
    from rewardgen.web import check_bind, serve

    runs_dir = Path(args.runs_dir)
    if not runs_dir.is_dir():
        raise UsageError(f"no runs directory at {runs_dir}")
    try:
        check_bind(args.host, args.token)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_port_free(args.host, args.port)
    serve(runs_dir, host=args.host, port=args.port, token=args.token)  # it prints the URL once bound
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` once, the way the server will, so a busy port or a bad address is one line
    (UsageError) before anything says the UI started."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"cannot serve on --host {host}: {getattr(exc, 'strerror', None) or exc}",
                         prog="rewardgen serve") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is already in use (another `rewardgen serve`?); "
                                 f"stop it or choose another with --port", prog="rewardgen serve") from None
            raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}", prog="rewardgen serve") from None


def cmd_final(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from rewardgen.run.executors import make_executor
    from rewardgen.run.final import final_evaluation

    console = Console(stderr=args.json)
    executor = make_executor(args.executor, ray_address=args.ray_address)

    class _Progress:
        def event(self, kind: str, **d: Any) -> None:
            if kind == "final_run":
                fit = "" if d.get("fitness") is None else f" fitness {d['fitness']:.4g}"
                console.print(f"  {d['method']} seed {d['seed_index']}: {d['status']}{fit}")

    try:
        result = final_evaluation(Path(args.run), seeds=args.seeds, steps=args.steps, executor=executor,
                                  progress=_Progress(), episodes=args.episodes)
    finally:
        executor.close()
    if args.json:
        _emit_json(result)
        return 0
    table = Table(title=f"final evaluation of {Path(args.run).name}")
    for col in ("method", "seeds ok", "fitness mean", "fitness std", "success rate", "normalised score"):
        table.add_column(col)
    def f(v: float | None) -> str:
        return "" if v is None else f"{v:.4g}"

    for row in result["rows"]:
        table.add_row(row["label"], f"{row['ok']}/{row['seeds']}", f(row["fitness_mean"]), f(row["fitness_std"]),
                      f(row["success_rate"]), f(row.get("human_normalized")))
    console.print(table)
    score = result.get("score")
    console.print(f"human-normalised score of the evolved reward: {score:.3f}" if score is not None
                  else f"human-normalised score: n/a ({result.get('score_note')})")
    return 0


# --------------------------------------------------------------------------- parser
def _add_training_args(p: argparse.ArgumentParser, task_required: bool = True) -> None:
    p.add_argument("--task", required=task_required, help="task id (see `rewardgen tasks`) or path to a task YAML file")
    p.add_argument("--steps", type=_positive_int, default=None, help="training env-steps per candidate (default: the task's)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--runs-dir", default="runs", help="where run directories are created (default ./runs)")
    p.add_argument("--workers", type=_positive_int, default=None, help="candidates trained in parallel (default: CPU cores)")
    p.add_argument("--trainer", default="ppo", choices=["ppo", "sb3"],
                   help="RL trainer run in the worker: ppo (rewardgen's batched PPO, default) or sb3 (stable-baselines3 PPO)")
    p.add_argument("--num-envs", type=_positive_int, default=None,
                   help="simulated worlds per training batch (default: the trainer's own)")
    p.add_argument("--timeout", type=_positive_float, default=None,
                   help="wall-clock seconds per candidate's training (default: derived from --steps)")
    p.add_argument("--eval-episodes", type=_positive_int, default=None,
                   help="episodes of trusted evaluation (default: the task's)")
    p.add_argument("--sim", choices=["cpu", "warp"], default="cpu",
                   help="batched simulator for --trainer ppo: cpu (default) or warp (MuJoCo Warp, rewardgen[gpu])")
    p.add_argument("--device", default="cpu", help="training device: cpu (default), cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print a JSON object as the last line of stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rewardgen", description="Write, train and select reward functions for MuJoCo robots.",
                     epilog="Exit codes: 0 done; 1 the command ran but produced nothing usable (e.g. a run in which "
                            "no candidate trained, or the LLM endpoint failed: the cause is named in one line); "
                            "2 bad input (one line on stderr, nothing on disk changed).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("evolve", help="evolve reward functions for a task (propose, train, evaluate, reflect)",
                       description="Evolve reward functions: K candidates per generation, each trained in a sandboxed "
                                   "worker and judged by the task's trusted fitness. The offline proposer is used "
                                   "unless an LLM is configured.")
    _add_training_args(p, task_required=False)
    p.add_argument("--samples", type=_positive_int, default=4, help="candidates per generation, K (default 4)")
    p.add_argument("--generations", type=_positive_int, default=3, help="generations, G (default 3)")
    p.add_argument("--mode", choices=["code", "params"], default="code",
                   help="code (default): proposers write reward code; params: they fill weights and targets of a "
                        "reward template derived from the robot (Language-to-Rewards style)")
    _add_env_args(p)
    p.add_argument("--interactive", action="store_true",
                   help="pause after each generation for text feedback and a best/worst choice in the terminal "
                        "(or the web UI); Ctrl-C while waiting and `rewardgen resume` later")
    p.add_argument("--no-video", action="store_true", help="do not render rollout videos of the candidates")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local (default): worker processes here; ray: each candidate a Ray task (rewardgen[ray])")
    p.add_argument("--ray-address", default=None, help="Ray cluster address for --executor ray (default: local)")
    p.add_argument("--schedule", choices=["halving", "adaptive", "full"], default="halving",
                   help="halving (default): train all candidates for a slice of the budget, continue the better "
                        "half from their saved state, up to the full budget; adaptive: all train in small "
                        "increments from their saved state, a candidate stops when the trusted fitness shows it "
                        "clearly behind or the generation's step budget (1 + 0.18 log2 K budgets) cannot carry "
                        "it, the last one trains the full budget; full: every candidate gets it all")
    llm = p.add_argument_group("proposer")
    llm.add_argument("--llm", choices=["auto", "openai", "offline"], default="auto",
                     help="auto (default): an LLM when OPENAI_API_KEY, OPENAI_BASE_URL or --base-url is set, "
                          "else the offline proposer; openai: any OpenAI-compatible endpoint (OpenAI's own needs "
                          "OPENAI_API_KEY); offline: no LLM. How rewardgen copes with each server: docs/llm.md")
    llm.add_argument("--model", default="gpt-4o-mini", help="LLM model name (default gpt-4o-mini)")
    llm.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                                                      "(vLLM, Ollama, llama.cpp server, LM Studio)")
    llm.add_argument("--temperature", type=float, default=1.0, help="LLM sampling temperature (default 1.0)")
    llm.add_argument("--llm-timeout", type=_positive_float, default=120.0,
                     help="seconds per LLM request before it is retried (default 120)")
    llm.add_argument("--critic", choices=["sandbox", "llm"], default="sandbox",
                     help="sandbox (default): check code in the sandbox before training; llm: also an LLM review")
    llm.add_argument("--prompts", default=None, help="directory of Jinja2 templates overriding prompts/")
    llm.add_argument("--replay", default=None, metavar="RUN_DIR",
                     help="re-run a past LLM run from its recorded answers, with no network")
    p.set_defaults(func=cmd_evolve)

    p = sub.add_parser("resume", help="continue an interrupted run without retraining finished candidates",
                       description="Continue a run from its run directory (after a crash, Ctrl-C or kill -9).")
    p.add_argument("run", help="the run directory, e.g. runs/20261123-120000-halfcheetah-run")
    p.add_argument("--json", action="store_true", help="print a JSON object as the last line of stdout")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("train", help="train one reward file and report its trusted fitness",
                       description="Train one reward file (the reward contract: compute_reward(s) -> (total, dict)) "
                                   "in a sandboxed worker and report its trusted fitness.")
    p.add_argument("reward", help="path to a reward .py file")
    _add_training_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("check", help="check a reward file: static checks, then a short sandboxed run",
                       description="Check a reward file the way evolve does before training: static validation, "
                                   "then a short run in the sandbox. Exit 0 accepted, 1 rejected, 2 usage error.")
    p.add_argument("reward", help="path to a reward .py file")
    p.add_argument("--task", required=True, help="task id or path to a task YAML file")
    p.add_argument("--steps", type=_positive_int, default=256, help="env-steps of the smoke run (default 256)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true",
                   help='print {"ok", "stage", "error", "components"} as the last line of stdout')
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="benchmarks: throughput, learning, schedule (adaptive, halving, full training), "
                       "evolve (evolve's speed against its trainer's)",
                       description="throughput: raw batched simulation vs rewardgen PPO vs SB3 PPO, side by side. "
                                   "learning: median trusted fitness of rewardgen PPO and SB3 PPO at equal steps. "
                                   "schedule: the same candidates under --schedule full, halving and adaptive: "
                                   "env-steps spent (share of full's), best trusted fitness and its gap to full's "
                                   "best, per seed and median. "
                                   "evolve: in one run, interleaved, the trainer alone with every core vs evolve "
                                   "generations (K candidates x --steps, full schedule with and without video; "
                                   "halving at the task's budget): env-steps/s, efficiency (evolve / trainer "
                                   "alone) and per-candidate fixed overhead, medians over --repeats.")
    p.add_argument("what", choices=["throughput", "learning", "schedule", "evolve"], help="which benchmark")
    p.add_argument("--task", default="halfcheetah-run", help="task id (default halfcheetah-run)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="learning: env-steps per run; evolve: per candidate of the full-schedule rows (default 300000)")
    p.add_argument("--seeds", type=_positive_int, default=None, help="learning: number of seeds, 0..N-1 (default 3; PPO's seed-to-seed "
                   "spread on HalfCheetah is wide, 10 tell the medians apart far better); schedule: number of run "
                   "seeds, --seed..--seed+N-1, each with its own proposals (default 1; rows per seed and medians)")
    p.add_argument("--samples", type=_positive_int, default=None, help="schedule: candidates (default 8); evolve: "
                   "candidates per generation (default 4)")
    p.add_argument("--repeats", type=_positive_int, default=None, help="evolve: repeats, medians reported (default 3)")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="evolve: candidates trained at once (default 1: nothing hides the per-candidate overhead)")
    p.add_argument("--halving-steps", type=_positive_int, default=None,
                   help="evolve: budget per candidate of the halving row (default: the task's)")
    p.add_argument("--quick", action="store_true", help="evolve: a tiny run (4096 env-steps, 2 candidates, 1 repeat, "
                   "1 evaluation episode) that checks the benchmark works, not the machine")
    p.add_argument("--schedule-steps", type=_positive_int, default=None,
                   help="schedule: full budget per candidate (default: the task's)")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="schedule: where the runs are kept (default: a new temporary directory)")
    p.add_argument("--schedules", default=None,
                   help="schedule: which schedules, comma-separated (default full,halving,adaptive; the shares and "
                        "gaps need full)")
    p.add_argument("--trainer", choices=["ppo", "sb3"], default="ppo", help="schedule: trainer (default ppo)")
    p.add_argument("--seed", type=_non_negative_int, default=0,
                   help="schedule, evolve: run seed; candidates' training seeds derive from it (default 0)")
    p.add_argument("--sim", choices=["cpu", "warp"], default="cpu", help="throughput: simulator (default cpu)")
    p.add_argument("--device", default="cpu", help="throughput with --sim warp: device, e.g. cuda")
    p.add_argument("--json", action="store_true", help="print the result as JSON on the last line of stdout")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("debug", help="why does this reward not work? per-component statistics and flags",
                       description="Run a reward (sandboxed) on rollouts of a random policy and, with --policy, a "
                                   "trained one; report per-component statistics and flag dominant, constant, "
                                   "wrong-sign, growing, mis-scaled or fitness-opposed terms.")
    p.add_argument("reward", help="path to a reward .py file")
    p.add_argument("--task", required=True, help="task id or path to a task YAML file")
    p.add_argument("--policy", default=None, help="a trained policy.npz (e.g. runs/<id>/gen-000/cand-00/policy.npz)")
    p.add_argument("--episodes", type=_positive_int, default=5, help="episodes per policy (default 5)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_debug)

    p = sub.add_parser("report", help="write a self-contained HTML report of a run",
                       description="Write a self-contained HTML report (plots, code, lineage, hacking flags).")
    p.add_argument("run", help="the run directory")
    p.add_argument("-o", "--output", default=None, help="output file (default RUN/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="export a reward as a standalone file with a gymnasium wrapper",
                       description="Write compute_reward plus a gymnasium.Wrapper applying it to the task's env, "
                                   "usable from stable-baselines3 or any gymnasium trainer without rewardgen.")
    p.add_argument("run", help="the run directory")
    p.add_argument("--candidate", default=None, metavar="G/C", help="which candidate (default: the run's best)")
    p.add_argument("-o", "--output", required=True, help="output .py file")
    p.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("final", help="final evaluation: retrain the best reward with several seeds vs baselines",
                       description="Retrain the run's best reward with several seeds, and the env's own (human) "
                                   "reward and a sparse success reward at the same budget; report trusted fitness "
                                   "and the human-normalised score (method - sparse) / |human - sparse|.")
    p.add_argument("run", help="the run directory")
    p.add_argument("--seeds", type=_positive_int, default=5, help="training seeds per method (default 5)")
    p.add_argument("--steps", type=_positive_int, default=None, help="env-steps per training (default: the run's)")
    p.add_argument("--episodes", type=_positive_int, default=None, help="evaluation episodes per policy")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="where training runs")
    p.add_argument("--ray-address", default=None, help="Ray cluster address for --executor ray")
    p.add_argument("--json", action="store_true", help="print the result as JSON on the last line of stdout")
    p.set_defaults(func=cmd_final)

    p = sub.add_parser("feedback", help="give text feedback on a run (used by its next generation)",
                       description="Store text feedback for a run, optionally about one candidate; the next "
                                   "generation's proposer uses it.")
    p.add_argument("run", help="the run directory")
    p.add_argument("--text", required=True, help="what you saw and what you want instead")
    p.add_argument("--candidate", default=None, metavar="G/C", help="the candidate it is about, e.g. 0/2")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("prefer", help="say which candidates of a generation you prefer (ICPL-style)",
                       description="Store a preference between the candidates of a finished generation; the "
                                   "preferred one becomes the next generation's parent.")
    p.add_argument("run", help="the run directory")
    p.add_argument("--generation", type=_non_negative_int, required=True, help="the generation")
    p.add_argument("--best", type=_non_negative_int, default=None, help="the candidate you like most")
    p.add_argument("--worst", type=_non_negative_int, default=None, help="the candidate you like least")
    p.add_argument("--ranking", default=None, metavar="C,C,...", help="a full ranking, best first")
    p.set_defaults(func=cmd_prefer)

    p = sub.add_parser("serve", help="web UI: watch candidates' videos, give feedback, start the next generation",
                       description="Serve the web UI over a runs directory (127.0.0.1 by default; any other host "
                                   "needs --token).")
    p.add_argument("--runs-dir", default="runs", help="the runs directory (default ./runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port, 1-65535 (default 8000)")
    p.add_argument("--token", default=None, help="access token, required when binding beyond loopback")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("task", help="task files: `rewardgen task new` writes one for your own robot",
                       description="Manage task files.")
    task_sub = p.add_subparsers(dest="task_command", metavar="SUBCOMMAND", parser_class=_Parser)
    task_sub.required = True
    q = task_sub.add_parser("new", help="write a task YAML for an MJCF robot",
                            description="Write a task file for an MJCF model (keep it, edit it, pass it to --task).")
    _add_env_args(q)
    q.add_argument("-o", "--output", required=True, help="the YAML file to write")
    q.add_argument("--steps", type=_positive_int, default=None, help="default training steps")
    q.add_argument("--force", action="store_true", help="overwrite an existing file")
    q.set_defaults(func=cmd_task_new)

    p = sub.add_parser("tasks", help="list the available tasks", description="List the tasks in environments/.")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("describe", help="print exactly what a proposer sees for a task",
                       description="Print the system and task prompts (derived robot schema + task) for a task.")
    p.add_argument("task", help="task id or path to a task YAML file")
    p.add_argument("--json", action="store_true", help="print the prompts as JSON")
    p.set_defaults(func=cmd_describe)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    import warnings

    warnings.filterwarnings("ignore", module="gymnasium")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.func in (cmd_evolve, cmd_train, cmd_resume):
            from rewardgen.sandbox import zygote

            zygote.prestart()  # its imports overlap this command's own (docs/speed.md)
        return args.func(args)
    except UserError as exc:  # every user error, from any module: one line, exit 2
        print(f"{getattr(exc, 'prog', 'rewardgen')}: error: {one_line(exc, 1000, markup=False)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        run_dir = CURRENT_RUN.get("run_dir")
        print("rewardgen: interrupted" + (f"; continue with `rewardgen resume {term(run_dir, markup=False)}`"
                                          if run_dir else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
