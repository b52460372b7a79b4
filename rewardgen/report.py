"""``write_report``: one self-contained HTML file describing a run, readable while it is still going.

Everything is read from the run store (``run.json``, ``gen-NNN/generation.json``, each candidate's
``metrics.json``, ``proposal.json``, ``reward.py``); nothing is executed. Plots are matplotlib
figures (Agg backend) embedded inline as SVG, so the file opens anywhere without network access.
Videos (``video.mp4``, or the older ``rollout.mp4``, in a candidate directory) are linked by a path relative to the report.

Sections: summary (task, status, proposer, best, LLM tokens if ``run.json`` has ``tokens``),
fitness per generation (best, median, every candidate), the best reward's code and its lineage
(``proposal.json`` ``parent`` refs like ``"0/1"``), reward-hacking flags, every candidate (status,
fitness, error, component curves, episode return vs worker-side fitness through training, trajectory
summaries when the evaluation has them). Missing or corrupt files become notes, never errors.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardgen.hacking import hacking_alarm
from rewardgen.runstore import atomic_write_text

REPORT_NAME = "report.html"


@dataclass
class Cand:
    g: int
    c: int
    path: Path
    metrics: dict | None = None
    proposal: dict = field(default_factory=dict)
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.g}/{self.c}"

    @property
    def status(self) -> str:
        if self.metrics is None:
            return "unreadable" if any(n.startswith("metrics.json") for n in self.notes) else "pending"
        return str(self.metrics.get("status", "unknown"))

    @property
    def fitness(self) -> float | None:
        f = (self.metrics or {}).get("fitness")
        return float(f) if isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f) else None

    @property
    def training(self) -> dict:
        t = (self.metrics or {}).get("training")
        return t if isinstance(t, dict) else {}

    @property
    def hacking(self) -> dict | None:
        m = self.metrics or {}
        if isinstance(m.get("hacking"), dict):
            return m["hacking"]
        return hacking_alarm(self.training)


def _read_json(path: Path, notes: list[str]) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        notes.append(f"{path.name}: unreadable ({type(exc).__name__}: {str(exc)[:120]})")
        return None


def _numbered(parent: Path, prefix: str) -> list[tuple[int, Path]]:
    out = []
    for p in parent.glob(f"{prefix}-*"):
        m = re.fullmatch(rf"{prefix}-(\d+)", p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def load_run(run_dir: Path) -> tuple[dict, list[list[Cand]], list[str]]:
    """(run.json or {}, candidates per generation, notes about missing/corrupt files)."""
    notes: list[str] = []
    run = _read_json(run_dir / "run.json", notes)
    if run is None and not notes:
        notes.append("run.json is missing")
    run = run if isinstance(run, dict) else {}
    gens: list[list[Cand]] = []
    for g, gdir in _numbered(run_dir, "gen"):
        while len(gens) < g:
            gens.append([])
        cands = []
        for c, cdir in _numbered(gdir, "cand"):
            cand = Cand(g, c, cdir)
            metrics = _read_json(cdir / "metrics.json", cand.notes)
            cand.metrics = metrics if isinstance(metrics, dict) else None
            proposal = _read_json(cdir / "proposal.json", cand.notes)
            cand.proposal = proposal if isinstance(proposal, dict) else {}
            try:
                cand.source = (cdir / "reward.py").read_text()
            except (OSError, UnicodeDecodeError):
                cand.source = None
            cands.append(cand)
        gens.append(cands)
    return run, gens, notes


# ------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 8, "axes.grid": True, "grid.alpha": 0.3,
                         "svg.hashsalt": "rewardgen"})
    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _fitness_plot(gens: list[list[Cand]], threshold: float | None) -> str | None:
    pts = [(c.g, c.fitness) for cands in gens for c in cands if c.fitness is not None and c.status == "ok"]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, color="#999", label="candidates", zorder=2)
    xs = sorted({p[0] for p in pts})
    best = [max(f for g, f in pts if g == x) for x in xs]
    med = [statistics.median(f for g, f in pts if g == x) for x in xs]
    ax.plot(xs, best, "o-", color="#1b7837", label="best", zorder=3)
    ax.plot(xs, med, "s--", color="#2166ac", label="median", zorder=3)
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, color="#b2182b", lw=1, ls=":", label="success threshold")
    ax.set_xlabel("generation")
    ax.set_ylabel("trusted fitness")
    ax.set_xticks(xs)
    ax.legend(loc="best", fontsize=7)
    ax.set_title("fitness per generation")
    return _svg(fig)


def _candidate_plot(cand: Cand) -> str | None:
    t = cand.training
    comps = t.get("components") or {}
    total = t.get("total_reward") or []
    eps = t.get("episodes") or []
    if not comps and not total and not eps:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 2.8))
    for name, points in comps.items():
        pts = [(p["step"], p["mean"]) for p in points or [] if _finite(p.get("step")) and _finite(p.get("mean"))]
        if pts:
            a1.plot(*zip(*pts), marker=".", label=name)
    tp = [(p["step"], p["mean"]) for p in total if _finite(p.get("step")) and _finite(p.get("mean"))]
    if tp:
        a1.plot(*zip(*tp), "k--", lw=1.2, label="total")
    a1.set_title("reward components (mean per step)")
    a1.set_xlabel("env step")
    if comps or tp:
        a1.legend(fontsize=6, loc="best")
    ep = [(p["step"], p["return"], p["fitness"]) for p in eps
          if _finite(p.get("step")) and _finite(p.get("return")) and _finite(p.get("fitness"))]
    if ep:
        s, r, f = zip(*ep)
        a2.plot(s, r, "o-", color="#d6604d", label="episode return (candidate reward)")
        a2.set_ylabel("return", color="#d6604d")
        b2 = a2.twinx()
        b2.plot(s, f, "s-", color="#1b7837", label="fitness (worker-side)")
        if cand.fitness is not None:
            b2.scatter([s[-1]], [cand.fitness], marker="*", s=80, color="#1b7837", zorder=5, label="trusted fitness")
        b2.set_ylabel("fitness", color="#1b7837")
        b2.grid(False)
        lines = a2.get_legend_handles_labels()
        lines2 = b2.get_legend_handles_labels()
        a2.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=6, loc="best")
    else:
        a2.text(0.5, 0.5, "no finished training episodes", ha="center", va="center", transform=a2.transAxes)
    a2.set_title("reward vs fitness through training")
    a2.set_xlabel("env step")
    fig.suptitle(f"candidate {cand.ref}", fontsize=9)
    return _svg(fig)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ------------------------------------------------------------------------------------------------
# HTML
# ------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin-bottom:4px} table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top} th{background:#f4f4f4}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:10px;overflow-x:auto;font-size:12px}
.ok{color:#1b7837;font-weight:600} .bad{color:#b2182b;font-weight:600} .muted{color:#777}
.flag{background:#fff4e5;border-left:4px solid #f0a030;padding:6px 10px;margin:6px 0}
.plot svg{max-width:100%;height:auto} .cand{border:1px solid #e5e5e5;padding:8px 12px;margin:12px 0}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return _e(x)


def _table(rows: list[list[str]], head: list[str]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows]
    return "".join(out) + "</table>"


def _parse_ref(ref: Any) -> tuple[int, int] | None:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(ref)) if ref is not None else None
    return (int(m.group(1)), int(m.group(2))) if m else None


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


def _best(run: dict, gens: list[list[Cand]]) -> Cand | None:
    index = {(c.g, c.c): c for cands in gens for c in cands}
    b = run.get("best")
    if isinstance(b, dict) and (b.get("generation"), b.get("candidate")) in index:
        return index[(b["generation"], b["candidate"])]
    ok = [c for cands in gens for c in cands if c.status == "ok" and c.fitness is not None]
    return max(ok, key=lambda c: c.fitness) if ok else None


def _tokens_html(tokens: Any) -> str:
    if isinstance(tokens, dict):
        flat = []
        for k, v in tokens.items():
            flat.append([_e(k), _e(json.dumps(v)) if isinstance(v, (dict, list)) else _fmt(v)])
        return _table(flat, ["", "tokens"])
    return f"<pre>{_e(json.dumps(tokens, indent=2))}</pre>"


def render_html(run_dir: Path, out_dir: Path) -> str:
    """The report's HTML text (links relative to ``out_dir``)."""
    run, gens, notes = load_run(run_dir)
    task = run.get("task") if isinstance(run.get("task"), dict) else {}
    all_c = [c for cands in gens for c in cands]
    best = _best(run, gens)
    title = _e(run.get("id") or run_dir.name)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>rewardgen report: {title}"
             f"</title><style>{_CSS}</style></head><body>"]
    parts.append(f"<h1>rewardgen run {_e(run.get('id') or run_dir.name)}</h1>")
    fit = task.get("fitness") or {}
    summary = [
        ["task", _e(task.get("id", "?"))
         + f" <span class='muted'>({_e(task.get('env') or task.get('mjcf') or '')})</span>"],
        ["goal", _e(task.get("description", ""))],
        ["fitness", _e(fit.get("name", "?")) + " " + _e(json.dumps(fit.get("params") or {}))
         + f", success at &ge; {_fmt(task.get('success_threshold'))}"],
        ["status", _e(run.get("status", "unknown"))],
        ["proposer", _e(run.get("proposer", "?"))],
        ["config", _e(json.dumps(run.get("config") or {}))],
        ["candidates", f"{len(all_c)} in {len(gens)} generation(s): "
         + ", ".join(f"{n} {s}" for s, n in sorted(_count(c.status for c in all_c).items()))],
        ["best", (f"generation {best.g}, candidate {best.c}: fitness <b>{_fmt(best.fitness)}</b>" if best
                  else "<span class='muted'>none yet</span>")],
        ["report written", _e(time.strftime("%Y-%m-%d %H:%M:%S"))],
    ]
    parts.append(_table(summary, ["", ""]))
    if "tokens" in run:
        parts.append("<h2>LLM tokens</h2>" + _tokens_html(run["tokens"]))
    if notes:
        parts.append("<div class='flag'>" + "<br>".join(_e(n) for n in notes) + "</div>")

    parts.append("<h2>Fitness per generation</h2>")
    threshold = task.get("success_threshold")
    svg = _safe(lambda: _fitness_plot(gens, threshold if _finite(threshold) else None))
    parts.append(f"<div class='plot'>{svg}</div>" if svg else "<p class='muted'>no evaluated candidate yet</p>")
    rows = []
    for g, cands in enumerate(gens):
        fits = [c.fitness for c in cands if c.fitness is not None and c.status == "ok"]
        rows.append([str(g), str(len(cands)), str(len(fits)), _fmt(max(fits)) if fits else "-",
                     _fmt(statistics.median(fits)) if fits else "-"])
    if rows:
        parts.append(_table(rows, ["generation", "candidates", "evaluated", "best", "median"]))

    parts.append("<h2>Best reward</h2>")
    if best is None:
        parts.append("<p class='muted'>no candidate has been evaluated yet</p>")
    else:
        parts.append(f"<p>generation {best.g}, candidate {best.c}, fitness <b>{_fmt(best.fitness)}</b></p>")
        parts.append(f"<pre>{_e(best.source or '(reward.py missing)')}</pre>")
        chain = lineage(gens, best)
        lrows = [[c.ref, _fmt(c.fitness) if c.fitness is not None else _e(c.status), _e(c.proposal.get("origin", "")),
                  _e("; ".join(map(str, c.proposal.get("notes") or [])))] for c in chain]
        parts.append("<h3>Lineage (newest first)</h3>" + _table(lrows, ["candidate", "fitness", "origin", "notes"]))
        traj = ((best.metrics or {}).get("evaluation") or {}).get("trajectories")
        if isinstance(traj, dict):
            parts.append("<h3>Evaluation episodes</h3>" + "".join(
                f"<p><b>{_e(k)}</b>: {_e(v.get('summary') if isinstance(v, dict) else v)}</p>"
                for k, v in traj.items()))

    final = _read_json(run_dir / "final.json", notes) if (run_dir / "final.json").is_file() else None
    if isinstance(final, dict) and final.get("rows"):
        parts.append("<h2>Final evaluation</h2>")
        parts.append(f"<p class='muted'>{_e(final.get('protocol', ''))}; {final.get('seeds')} seeds x "
                     f"{final.get('steps')} env-steps</p>")
        parts.append(_table([[_e(r.get("label", r.get("method"))), f"{r.get('ok')}/{r.get('seeds')}",
                              _fmt(r.get("fitness_mean")), _fmt(r.get("fitness_std")), _fmt(r.get("success_rate")),
                              _fmt(r.get("human_normalized"))] for r in final["rows"]],
                            ["method", "seeds ok", "fitness mean", "fitness std", "success rate",
                             "human-normalised score"]))
        if final.get("score") is None and final.get("score_note"):
            parts.append(f"<p class='muted'>{_e(final['score_note'])}</p>")
    parts.append("<h2>Reward-hacking flags</h2>")
    flagged = [(c, c.hacking) for c in all_c if c.hacking]
    if flagged:
        parts.append(_table([[c.ref, _fmt(c.fitness), _e(h.get("message", ""))] for c, h in flagged],
                            ["candidate", "trusted fitness", "alarm"]))
    else:
        parts.append("<p>none: no candidate's reward rose while its fitness stayed flat or fell</p>")

    parts.append("<h2>Candidates</h2>")
    rows = []
    for c in all_c:
        st = c.status
        cls = "ok" if st == "ok" else ("muted" if st in ("pending", "unreadable") else "bad")
        err = (c.metrics or {}).get("error")
        rows.append([f"<a href='#cand-{c.g}-{c.c}'>{c.ref}</a>", f"<span class='{cls}'>{_e(st)}</span>",
                     _fmt(c.fitness) if c.fitness is not None else "-", _e(c.proposal.get("origin", "")),
                     "&#9888; hacking?" if c.hacking else "", _e(str(err)[:200]) if err else ""])
    if rows:
        parts.append(_table(rows, ["candidate", "status", "fitness", "origin", "flags", "error"]))
    for c in all_c:
        parts.append(_candidate_html(c, out_dir))
    parts.append("</body></html>")
    return "\n".join(parts)


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def _safe(fn) -> str | None:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - one bad plot must not lose the report
        return f"<p class='bad'>plot failed: {_e(type(exc).__name__)}: {_e(str(exc)[:200])}</p>"


def _candidate_html(c: Cand, out_dir: Path) -> str:
    m = c.metrics or {}
    parts = [f"<div class='cand' id='cand-{c.g}-{c.c}'><h3>candidate {c.ref}: {_e(c.status)}"
             + (f", fitness {_fmt(c.fitness)}" if c.fitness is not None else "") + "</h3>"]
    if c.proposal.get("origin") or c.proposal.get("parent"):
        parts.append(f"<p class='muted'>origin: {_e(c.proposal.get('origin', ''))}"
                     + (f"; parent {_e(c.proposal.get('parent'))}" if c.proposal.get("parent") else "") + "</p>")
    if m.get("error"):
        parts.append(f"<p class='bad'>{_e(str(m['error'])[:1000])}</p>")
    if c.hacking:
        parts.append(f"<div class='flag'>{_e(c.hacking.get('message', 'reward hacking alarm'))}</div>")
    debug = m.get("debug")
    if isinstance(debug, dict) and debug.get("flags"):
        parts.append("".join(f"<div class='flag'>[{_e(f.get('code'))}] {_e(f.get('message'))}</div>"
                             for f in debug["flags"] if isinstance(f, dict)))
    svg = _safe(lambda: _candidate_plot(c))
    if svg:
        parts.append(f"<div class='plot'>{svg}</div>")
    facts = []
    for key, label in (("env_steps", "env steps"), ("train_seconds", "training s"),
                       ("env_steps_per_second", "env-steps/s"), ("trainer", "trainer")):
        if m.get(key) is not None:
            facts.append(f"{label}: {_fmt(m[key])}")
    corr = c.training.get("reward_fitness_correlation")
    if _finite(corr):
        facts.append(f"reward/fitness correlation over training episodes: {corr:+.2f}")
    if facts:
        parts.append("<p class='muted'>" + " &middot; ".join(facts) + "</p>")
    # evolve writes video.mp4 (rewardgen.video.VIDEO_FILE); rollout.mp4 is the older name
    video = next((c.path / n for n in ("video.mp4", "rollout.mp4") if (c.path / n).is_file()), None)
    if video is not None:
        rel = os.path.relpath(video, out_dir)
        parts.append(f"<p><a href='{_e(rel)}'>rollout video ({_e(rel)})</a></p>"
                     f"<video src='{_e(rel)}' controls width='480' preload='none'></video>")
    if c.notes:
        parts.append("<p class='muted'>" + "; ".join(_e(n) for n in c.notes) + "</p>")
    if c.source:
        parts.append(f"<details><summary>reward.py</summary><pre>{_e(c.source)}</pre></details>")
    parts.append("</div>")
    return "".join(parts)


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's HTML report (default ``<run_dir>/report.html``, atomically) and return its path.

    Works on partial and failed runs: pending candidates, failures and unreadable files are shown
    as such. Raises ``FileNotFoundError`` only when ``run_dir`` is not a directory.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory at {run_dir}")
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    text = render_html(run_dir, out.resolve().parent)
    atomic_write_text(out, text)
    try:
        os.chmod(out, 0o644)  # a report is for reading (the atomic temp file was private)
    except OSError:
        pass
    return out
