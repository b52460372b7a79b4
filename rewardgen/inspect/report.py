"""``write_report``: one self-contained HTML file describing a run, readable while it is still going.

Everything is read from the run store (``run.json``, ``gen-NNN/generation.json``, each candidate's
``metrics.json``, ``rung-R.json``, ``proposal.json``, ``reward.py``); nothing is executed. The page is
the Jinja2 template ``templates/report.html``, rendered through ``rewardgen.inspect.pages`` (the
environment, escaping policy and candidate card the web UI uses too, so both show a candidate the
same way). Charts are inline SVG from ``rewardgen.inspect.charts`` (the web UI's), so the file opens
anywhere without network access. Each candidate's rollout video (``video.mp4``, written by
``rewardgen.evaluate.video``) is shown in a ``<video>`` element by a path relative to the report.

Sections: summary (task, goal, fitness and its meaning, status, proposer, setup in words, best, LLM
tokens if ``run.json`` has ``tokens``); "which reward won and why" (the winner marked, its diff
against its parent, its components' shares, winner and runner-up side by side with their trajectory
summaries, videos); fitness per generation; the schedule (what successive halving is, and each
candidate's fate: how far it trained and where it was cut); lineage; final evaluation; reward-hacking
flags; every candidate. Missing or corrupt files become notes, never errors. Every piece of text from
the run (reward code, errors, component names, LLM notes) reaches the page as a template value, so
autoescaping passes it through ``rewardgen.safetext.html``; nothing here builds HTML by hand.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from rewardgen.inspect import pages
from rewardgen.inspect.charts import fitness_chart, training_chart
from rewardgen.inspect.pages import as_dict, finite, num, steps_text
from rewardgen.runfiles import RunFiles
from rewardgen.safetext import html
from rewardgen.store import (
    FINAL_FILE,
    MAX_SOURCE_BYTES,
    METRICS_FILE,
    PROPOSAL_FILE,
    REWARD_FILE,
    RUN_FILE,
    VIDEO_FILE,
    VIDEO_INFO_FILE,
    CorruptFileError,
    as_label,
    atomic_write_text,
    candidate_label,
    parse_candidate_label,
)

REPORT_NAME = "report.html"


@dataclass
class Cand:
    g: int
    c: int
    path: Path
    files: RunFiles | None = None  # the run's files (how everything of the candidate is read)
    metrics: dict | None = None
    proposal: dict = field(default_factory=dict)
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    rungs: list[dict] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return candidate_label(self.g, self.c)

    @property
    def status(self) -> str:
        if self.metrics is None:
            return "unreadable" if any(n.startswith("metrics.json") for n in self.notes) else "pending"
        return str(self.metrics.get("status", "unknown"))

    @property
    def fitness(self) -> float | None:
        f = (self.metrics or {}).get("fitness")
        return float(f) if finite(f) else None

    @property
    def training(self) -> dict:
        t = (self.metrics or {}).get("training")
        return t if isinstance(t, dict) else {}

    @property
    def hacking(self) -> dict | None:
        return pages.hacking(self.metrics)


def _read_json(files: RunFiles, path: Path, notes: list[str]) -> Any:
    """``RunFiles.read_json``, but a damaged or refused file becomes a note and None: a report shows a
    broken run (and nothing from outside it: a symlink is refused, never followed)."""
    try:
        return files.read_json(path)
    except CorruptFileError as exc:
        notes.append(f"{path.name}: unreadable ({exc.reason[:120]})")
        return None


def _numbered(files: RunFiles, parent: Path, prefix: str, suffix: str = "") -> list[tuple[int, Path]]:
    """``(N, path)`` of ``prefix-N`` folders (or, with a ``suffix`` such as ".json", ``prefix-N.json``
    files) in ``parent``, in order of N; links are skipped."""
    out = []
    for name in files.listdir(parent, f"{prefix}-*{suffix}"):
        m = re.fullmatch(rf"{prefix}-(\d+){re.escape(suffix)}", name)
        if m and files.kind(parent / name) == ("file" if suffix else "dir"):
            out.append((int(m.group(1)), parent / name))
    return sorted(out)


def load_run(run_dir: Path) -> tuple[dict, list[list[Cand]], list[str]]:
    """(run.json or {}, candidates per generation, notes about missing/corrupt files)."""
    notes: list[str] = []
    files = RunFiles(run_dir)
    run = _read_json(files, run_dir / RUN_FILE, notes)
    if run is None and not notes:
        notes.append("run.json is missing")
    run = run if isinstance(run, dict) else {}
    gens: list[list[Cand]] = []
    for g, gdir in _numbered(files, run_dir, "gen"):
        while len(gens) < g:
            gens.append([])
        cands = []
        for c, cdir in _numbered(files, gdir, "cand"):
            cand = Cand(g, c, cdir, files)
            metrics = _read_json(files, cdir / METRICS_FILE, cand.notes)
            cand.metrics = metrics if isinstance(metrics, dict) else None
            proposal = _read_json(files, cdir / PROPOSAL_FILE, cand.notes)
            cand.proposal = proposal if isinstance(proposal, dict) else {}
            try:
                cand.source = files.read_text(cdir / REWARD_FILE, MAX_SOURCE_BYTES)
            except CorruptFileError as exc:
                cand.source = None
                cand.notes.append(f"{REWARD_FILE}: unreadable ({exc.reason[:120]})")
            except (OSError, UnicodeDecodeError):
                cand.source = None
            for r, rpath in _numbered(files, cdir, "rung", ".json"):
                rec = _read_json(files, rpath, cand.notes)
                if isinstance(rec, dict):
                    cand.rungs.append(rec | {"rung": r})
            cands.append(cand)
        gens.append(cands)
    return run, gens, notes


# ------------------------------------------------------------------------------------------------
# what the template shows
# ------------------------------------------------------------------------------------------------

def _parse_ref(ref: Any) -> tuple[int, int] | None:
    return parse_candidate_label(ref)


def lineage(gens: list[list[Cand]], cand: Cand) -> list[Cand]:
    """``cand`` and its ancestors through ``proposal.json`` "parent" refs, newest first."""
    index = {(c.g, c.c): c for cands in gens for c in cands}
    chain, seen, cur = [cand], {(cand.g, cand.c)}, cand
    while True:
        ref = _parse_ref(cur.proposal.get("parent"))
        if ref is None or ref in seen or ref not in index:
            break
        seen.add(ref)
        cur = index[ref]
        chain.append(cur)
    return chain


def _fitness_key(c: Cand) -> float:
    """A candidate's fitness to rank by (the callers rank only candidates that have one)."""
    return c.fitness if c.fitness is not None else -math.inf


def _best(run: dict, gens: list[list[Cand]]) -> Cand | None:
    index = {(c.g, c.c): c for cands in gens for c in cands}
    b = run.get("best")
    if isinstance(b, dict) and (b.get("generation"), b.get("candidate")) in index:
        return index[(b["generation"], b["candidate"])]
    ok = [c for cands in gens for c in cands if c.status == "ok" and c.fitness is not None]
    return max(ok, key=_fitness_key) if ok else None


def _confirm_rows(run: dict) -> dict | None:
    """The confirmation of the best on new seeds (``run.json`` ``confirm``), as the report shows it."""
    conf = run.get("confirm")
    if not isinstance(conf, dict) or not isinstance(conf.get("contenders"), list) or not conf.get("best"):
        return None
    chosen = (conf["best"].get("generation"), conf["best"].get("candidate"))
    rows = [{"ref": as_label(f"{r.get('generation')}/{r.get('candidate')}"),
             "key": f"{r.get('generation')}-{r.get('candidate')}", "selection": r.get("selection_fitness"),
             "fitness": r.get("fitness") or [], "mean": r.get("mean"), "std": r.get("std"),
             "chosen": (r.get("generation"), r.get("candidate")) == chosen}
            for r in conf["contenders"] if isinstance(r, dict)]
    return {"seeds": conf.get("seeds"), "rows": rows, "changed": bool(conf.get("changed"))}


def _runner_up(gens: list[list[Cand]], best: Cand | None) -> Cand | None:
    ok = [c for cands in gens for c in cands if c.status == "ok" and c.fitness is not None and c is not best]
    return max(ok, key=_fitness_key) if ok else None


def fate_text(c: Cand, budget: int | None) -> str:
    """What the schedule did with a candidate, in words (``pages.fate_text``, which the web UI shows too)."""
    return pages.fate_text(c.metrics, budget)


def component_shares(c: Cand) -> list[tuple[str, float, float | None]]:
    """(component, mean per step at the end of training, share of the magnitude), largest first."""
    rows = []
    for name, points in (c.training.get("components") or {}).items():
        pts = [p for p in points or [] if isinstance(p, dict) and finite(p.get("mean"))]
        if pts:
            rows.append((name, float(pts[-1]["mean"])))
    total = sum(abs(v) for _, v in rows)
    return sorted(((n, v, abs(v) / total if total else None) for n, v in rows), key=lambda r: -(r[2] or 0))


def _trajectories(c: Cand) -> list[tuple[str, Any]]:
    traj = ((c.metrics or {}).get("evaluation") or {}).get("trajectories")
    if not isinstance(traj, dict):
        return []
    out = []
    for k, v in traj.items():
        text = v.get("summary") if isinstance(v, dict) else v
        if isinstance(text, str) and text.startswith(f"{k} episode: "):  # the template says "best episode:" itself
            text = text[len(f"{k} episode: "):]
        out.append((k, text))
    return out


def _diff(gens: list[list[Cand]], c: Cand) -> tuple[dict, Cand | None]:
    """The candidate's reward against its parent's (``pages.reward_diff``) and the parent, if found."""
    parent = c.proposal.get("parent")
    ref = _parse_ref(parent)
    index = {(x.g, x.c): x for cands in gens for x in cands}
    if not parent:
        return pages.reward_diff(None, c.source, None, c.ref), None
    if ref is None or ref not in index:
        return pages.reward_diff(None, c.source, str(as_label(parent)), c.ref,
                                 note=f"parent {as_label(parent)} is not in this run"), None
    p = index[ref]
    return pages.reward_diff(p.source, c.source, p.ref, c.ref), p


def _safe_chart(draw) -> Markup | None:
    """A chart, or a note when its data broke it: one bad chart must not lose the report."""
    try:
        return draw()
    except Exception as exc:
        return Markup("<p class='status-bad'>plot failed: {}</p>").format(html(f"{type(exc).__name__}: {str(exc)[:200]}"))


def _card(c: Cand, gens: list[list[Cand]], best: Cand | None, budget: Any, out_dir: Path) -> dict:
    """The shared card's fields (``pages.card``) plus what only the report shows of a candidate."""
    video = c.path / VIDEO_FILE
    rel = Path(os.path.relpath(video, out_dir)).as_posix() if c.files is not None and c.files.is_file(video) else None
    diff, parent = _diff(gens, c)
    # a damaged video.json: just "no video"
    item = pages.card(c.ref, f"{c.g}-{c.c}", c.metrics, c.proposal, c.source, diff, rel, budget, status=c.status,
                      video_info=_read_json(c.files, c.path / VIDEO_INFO_FILE, []) if c.files else None)
    m = c.metrics or {}
    facts = [f"{label}: {num(m[key])}" for key, label in (("env_steps", "env steps"), ("train_seconds", "training s"),
                                                            ("env_steps_per_second", "env-steps/s"), ("trainer", "trainer"))
             if m.get(key) is not None]
    corr = c.training.get("reward_fitness_correlation")
    if finite(corr):
        facts.append(f"reward/fitness correlation over training episodes: {corr:+.2f}")
    t = c.training
    has_training = bool(t.get("components") or t.get("total_reward") or t.get("episodes"))
    return item | {
        "winner": c is best, "fitness": c.fitness, "notes": [str(n) for n in item["notes"]],
        "shares": component_shares(c), "trajectories": _trajectories(c), "facts": facts, "file_notes": c.notes,
        "rungs": ", ".join(f"{steps_text(r.get('env_steps_total'))}: {num(r.get('fitness'))}" for r in c.rungs
                           if r.get("status") == "ok"),
        "training_chart": _safe_chart(lambda: training_chart(t, c.fitness)) if has_training else None,
        "parent_card": parent,
    }


SCHEDULE_TEXT = {
    "halving": ("Successive halving: every candidate first trains a fifth of the budget and is evaluated; the "
                "best 3/8 continue (from their saved state) to half the budget, the best third of those to the "
                "full budget. A candidate cut early trained fewer env-steps: its fitness is measured at that "
                "smaller budget."),
    "adaptive": ("Adaptive schedule: every candidate trains in increments of 1/40 of the budget from its saved "
                 "state and is evaluated after each; one clearly behind on trusted fitness at two evaluations "
                 "in a row stops, and when the generation's step budget (1 + 0.18 log2 K budgets) cannot carry "
                 "everyone the worst stop; the last one left trains the full budget. A candidate stopped early "
                 "trained fewer env-steps: its fitness is measured at that smaller budget."),
    "full": "Full schedule: every candidate trains the full budget.",
}


def _setup(run: dict) -> list[str]:
    """The run's configuration in words, one phrase each."""
    cfg = as_dict(run.get("config"))
    bits = []
    if cfg.get("samples") is not None and cfg.get("generations") is not None:
        bits.append(f"{cfg['samples']} candidates per generation, {cfg['generations']} generation(s)")
    if cfg.get("steps"):
        bits.append(f"budget {steps_text(cfg['steps'])} env-steps per candidate")
    if cfg.get("schedule"):
        bits.append(f"schedule: {cfg['schedule']}")
    if cfg.get("trainer"):
        bits.append(f"trainer: {cfg['trainer']}" + (f" on {cfg['device']}" if cfg.get("device") not in
                                                   (None, "cpu") else ""))
    if cfg.get("mode") == "params":
        bits.append("mode: params (template weights)")
    if cfg.get("seed") is not None:
        bits.append(f"seed {cfg['seed']}")
    if cfg.get("proposer") == "openai" or cfg.get("replay"):
        bits.append(f"LLM model {cfg.get('model')}" + (f" at {cfg['base_url']}" if cfg.get("base_url") else ""))
    if cfg.get("replay"):
        bits.append("replaying recorded LLM answers")
    if cfg.get("interactive"):
        bits.append("interactive (human feedback between generations)")
    return bits


def _fitness(task: dict, gens: list[list[Cand]]) -> dict:
    """The task's fitness: its name with parameters, its meaning (from an evaluation) and the threshold."""
    fit = as_dict(task.get("fitness"))
    params = fit.get("params") or {}
    name = str(fit.get("name", "?")) + (f"({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")
    doc = next((ev.get("fitness_doc") for cands in gens for c in cands
                for ev in [(c.metrics or {}).get("evaluation") or {}] if ev.get("fitness_doc")), None)
    thr = task.get("success_threshold")
    return {"name": name, "doc": doc, "threshold": float(thr) if finite(thr) else None}


def _generation_summaries(gens: list[list[Cand]]) -> list[dict]:
    """run.json-shaped generation summaries of the evaluated candidates, which ``fitness_chart`` reads."""
    out = []
    for g, cands in enumerate(gens):
        fits = [c.fitness for c in cands if c.fitness is not None and c.status == "ok"]
        if fits:
            out.append({"generation": g, "candidates": [{"fitness": f} for f in fits], "best": {"fitness": max(fits)}})
    return out


def render_html(run_dir: Path, out_dir: Path) -> str:
    """The report's HTML text (links relative to ``out_dir``)."""
    run, gens, notes = load_run(run_dir)
    task = as_dict(run.get("task"))
    cfg = as_dict(run.get("config"))
    budget = cfg.get("steps") if finite(cfg.get("steps")) else None
    all_c = [c for cands in gens for c in cands]
    best = _best(run, gens)
    runner = _runner_up(gens, best)
    cards = {id(c): _card(c, gens, best, budget, out_dir) for c in all_c}
    fitness = _fitness(task, gens)
    fit_name = as_dict(task.get("fitness")).get("name")
    summaries = _generation_summaries(gens)
    chart = _safe_chart(lambda: fitness_chart(
        summaries, width=720, threshold=fitness["threshold"], median=True,
        fitness_label=f"trusted fitness ({fit_name})" if fit_name else "trusted fitness",
        winner=(best.g, best.fitness, best.ref) if best is not None and best.fitness is not None else None)
    ) if summaries else None
    gen_rows = []
    for g, cands in enumerate(gens):
        fits = [c.fitness for c in cands if c.fitness is not None and c.status == "ok"]
        gen_rows.append([g, len(cands), len(fits), num(max(fits)) if fits else "-",
                         num(statistics.median(fits)) if fits else "-"])
    final = _read_json(RunFiles(run_dir), run_dir / FINAL_FILE, notes)
    rs, bs = ((runner.metrics or {}).get("env_steps") if runner else None), ((best.metrics or {}).get("env_steps")
                                                                             if best else None)
    context = {
        "title": run.get("id") or run_dir.name, "task": task, "env_name": task.get("env") or task.get("mjcf") or "",
        "fitness": fitness, "run_status": run.get("status", "unknown"), "proposer": run.get("proposer", "?"),
        "setup": _setup(run), "n_gens": len(gens), "counts": sorted(_count(c.status for c in all_c).items()),
        "cards": list(cards.values()), "best": cards.get(id(best)), "runner": cards.get(id(runner)),
        "runner_cut": finite(rs) and finite(bs) and rs < bs,
        "lineage": [cards[id(c)] for c in lineage(gens, best)] if best is not None else [],
        "written": time.strftime("%Y-%m-%d %H:%M:%S"), "has_tokens": "tokens" in run, "tokens": run.get("tokens"),
        "notes": notes, "fitness_chart": chart, "gen_rows": gen_rows,
        "schedule_text": SCHEDULE_TEXT.get(str(cfg.get("schedule")), f"Schedule: {cfg.get('schedule', '?')}"),
        "final": final if isinstance(final, dict) and final.get("rows") else None,
        "confirm": _confirm_rows(run),
    }
    for c in context["cards"]:
        if c["parent_card"] is not None:
            c["parent_card"] = cards[id(c["parent_card"])]
    return pages.environment().get_template("report.html").render(context)


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's HTML report (default ``<run_dir>/report.html``, atomically) and return its path.

    Works on partial and failed runs: pending candidates, failures and unreadable files are shown
    as such. Raises ``FileNotFoundError`` only when ``run_dir`` is not a directory.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory at {run_dir}")
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    files = RunFiles(run_dir)
    try:
        files.relative(out)
        inside = True
    except CorruptFileError:
        inside = False
    if inside:  # the run's own report.html: written like every file of the run (no link followed)
        text = render_html(run_dir, Path(os.path.abspath(out)).parent)
        files.write_bytes(out, text.encode("utf-8"), mode=0o644)
        return out
    text = render_html(run_dir, out.resolve().parent)
    atomic_write_text(out, text)  # a file the user named with -o
    try:
        os.chmod(out, 0o644)  # a report is for reading (the atomic temp file was private)
    except OSError:
        pass
    return out
