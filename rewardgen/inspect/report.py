"""``write_report``: one self-contained HTML file describing a run, readable while it is still going.

Everything is read from the run store (``run.json``, ``gen-NNN/generation.json``, each candidate's
``metrics.json``, ``rung-R.json``, ``proposal.json``, ``reward.py``); nothing is executed. Plots are
matplotlib figures (Agg backend) embedded inline as SVG, so the file opens anywhere without network
access. Each candidate's rollout video (``video.mp4``, written by ``rewardgen.evaluate.video``) is shown in a
``<video>`` element by a path relative to the report.

Sections: summary (task, goal, fitness and its meaning, status, proposer, setup in words, best, LLM
tokens if ``run.json`` has ``tokens``); "which reward won and why" (the winner marked, its diff
against its parent, its components' shares, winner and runner-up side by side with their trajectory
summaries, videos); fitness per generation; the schedule (what successive halving is, and each
candidate's fate: how far it trained and where it was cut); lineage; final evaluation; reward-hacking
flags; every candidate. Missing or corrupt files become notes, never errors. Every piece of text from
the run (reward code, errors, component names, LLM notes) goes through ``rewardgen.safetext.html``.
"""

from __future__ import annotations

import difflib
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

from rewardgen.evaluate.hacking import hacking_alarm
from rewardgen.store import FINAL_FILE, METRICS_FILE, PROPOSAL_FILE, REWARD_FILE, RUN_FILE, atomic_write_text
from rewardgen.safetext import html as _html
from rewardgen.store import VIDEO_FILE

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
    rungs: list[dict] = field(default_factory=list)

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


def _numbered(parent: Path, prefix: str, suffix: str = "") -> list[tuple[int, Path]]:
    """``(N, path)`` of ``prefix-N`` folders (or, with a ``suffix`` such as ".json", ``prefix-N.json``
    files) in ``parent``, in order of N."""
    out = []
    for p in parent.glob(f"{prefix}-*{suffix}"):
        m = re.fullmatch(rf"{prefix}-(\d+){re.escape(suffix)}", p.name)
        if m and (p.is_file() if suffix else p.is_dir()):
            out.append((int(m.group(1)), p))
    return sorted(out)


def load_run(run_dir: Path) -> tuple[dict, list[list[Cand]], list[str]]:
    """(run.json or {}, candidates per generation, notes about missing/corrupt files)."""
    notes: list[str] = []
    run = _read_json(run_dir / RUN_FILE, notes)
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
            metrics = _read_json(cdir / METRICS_FILE, cand.notes)
            cand.metrics = metrics if isinstance(metrics, dict) else None
            proposal = _read_json(cdir / PROPOSAL_FILE, cand.notes)
            cand.proposal = proposal if isinstance(proposal, dict) else {}
            try:
                cand.source = (cdir / REWARD_FILE).read_text()
            except (OSError, UnicodeDecodeError):
                cand.source = None
            for r, rpath in _numbered(cdir, "rung", ".json"):
                rec = _read_json(rpath, cand.notes)
                if isinstance(rec, dict):
                    cand.rungs.append(rec | {"rung": r})
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


def _steps_axis(ax) -> None:
    """Env-step x axis: at most 5 ticks, labelled 0, 25k, 50k, 1M, never run together."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, min_n_ticks=2))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))


def _short(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _fitness_plot(gens: list[list[Cand]], threshold: float | None, best: "Cand | None" = None,
                  fitness_name: str = "trusted fitness") -> str | None:
    pts = [(c.g, c.fitness) for cands in gens for c in cands if c.fitness is not None and c.status == "ok"]
    if not pts:
        return None
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=16, color="#999", label="a candidate", zorder=2)
    xs = sorted({p[0] for p in pts})
    best_per = [max(f for g, f in pts if g == x) for x in xs]
    med = [statistics.median(f for g, f in pts if g == x) for x in xs]
    ax.plot(xs, best_per, "o-", color="#1b7837", label="best of the generation", zorder=3)
    ax.plot(xs, med, "s--", color="#2166ac", label="median", zorder=3)
    if best is not None and best.fitness is not None:
        ax.scatter([best.g], [best.fitness], marker="*", s=160, color="#f0a030", edgecolor="#333", zorder=5,
                   label=f"winner {best.ref}")
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, color="#b2182b", lw=1, ls=":", label=f"success threshold ({threshold:g})")
    ax.set_xlabel("generation")
    ax.set_ylabel(fitness_name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(10, max(1, len(xs)))))
    if len(xs) == 1:
        ax.set_xlim(xs[0] - 0.5, xs[0] + 0.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return _svg(fig)


def _candidate_plot(cand: Cand) -> str | None:
    t = cand.training
    comps = t.get("components") or {}
    total = t.get("total_reward") or []
    eps = t.get("episodes") or []
    if not comps and not total and not eps:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 2.9), gridspec_kw={"wspace": 0.55})
    for name, points in comps.items():
        pts = [(p["step"], p["mean"]) for p in points or [] if _finite(p.get("step")) and _finite(p.get("mean"))]
        if pts:
            a1.plot(*zip(*pts), marker="." if len(pts) < 30 else None, label=_clean(name)[:40])
    tp = [(p["step"], p["mean"]) for p in total if _finite(p.get("step")) and _finite(p.get("mean"))]
    if tp:
        a1.plot(*zip(*tp), "k--", lw=1.2, label="total")
    a1.set_title("reward components (mean per step)")
    a1.set_xlabel("training env-steps")
    _steps_axis(a1)
    if comps or tp:
        a1.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ep = [(p["step"], p["return"], p["fitness"]) for p in eps
          if _finite(p.get("step")) and _finite(p.get("return")) and _finite(p.get("fitness"))]
    if ep:
        s, r, f = zip(*ep)
        a2.plot(s, r, "o-", color="#d6604d", ms=3, label="episode return (its reward)")
        a2.set_ylabel("return", color="#d6604d")
        b2 = a2.twinx()
        b2.plot(s, f, "s-", color="#1b7837", ms=3, label="fitness while training")
        if cand.fitness is not None:
            b2.scatter([s[-1]], [cand.fitness], marker="*", s=90, color="#f0a030", edgecolor="#333", zorder=5,
                       label="trusted fitness (evaluation)")
        b2.set_ylabel("fitness", color="#1b7837")
        b2.grid(False)
        lo, hi = min(list(f) + [cand.fitness or f[0]]), max(list(f) + [cand.fitness or f[0]])
        pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 0.1
        b2.set_ylim(lo - pad, hi + pad)
        if len(s) == 1:
            a2.set_xlim(s[0] * 0.5, s[0] * 1.5 + 1)
        lines = a2.get_legend_handles_labels()
        lines2 = b2.get_legend_handles_labels()
        a2.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=6, loc="upper center",
                  bbox_to_anchor=(0.5, -0.28), ncol=3, frameon=False)
    else:
        a2.text(0.5, 0.5, "no finished training episodes", ha="center", va="center", transform=a2.transAxes)
    a2.set_title("its reward vs fitness through training")
    a2.set_xlabel("training env-steps")
    _steps_axis(a2)
    return _svg(fig)


def _clean(x: Any) -> str:
    from rewardgen.safetext import clean

    return clean(x)


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
.winner{background:#fff8e1} .star{color:#e69500} tr.winner td{font-weight:600}
.why{border:2px solid #f0c060;border-radius:6px;padding:4px 14px 10px;background:#fffdf5}
.side{display:flex;gap:14px;flex-wrap:wrap} .side>div{flex:1 1 420px;min-width:300px}
.diff .add{color:#1b5e20;background:#e8f5e9;display:block} .diff .del{color:#b71c1c;background:#ffebee;display:block}
.diff .hunk{color:#6a1b9a;display:block} .diff .ctx{display:block}
.share{display:inline-block;height:9px;background:#4a90d9;vertical-align:middle;margin-right:6px}
video{max-width:100%;background:#000;display:block;margin:6px 0}
"""


def _e(x: Any) -> str:
    return str(_html(x))


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return _e(x)


def _steps(n: Any) -> str:
    if not _finite(n):
        return "-"
    n = int(n)
    return f"{n:,}"


def _table(rows: list[list[str]], head: list[str], row_class: list[str] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for i, r in enumerate(rows):
        cls = f" class='{row_class[i]}'" if row_class and row_class[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>")
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


def _runner_up(gens: list[list[Cand]], best: Cand | None) -> Cand | None:
    ok = [c for cands in gens for c in cands if c.status == "ok" and c.fitness is not None and c is not best]
    return max(ok, key=lambda c: c.fitness) if ok else None


def _tokens_html(tokens: Any) -> str:
    if isinstance(tokens, dict):
        flat = []
        for k, v in tokens.items():
            flat.append([_e(k), _e(json.dumps(v)) if isinstance(v, (dict, list)) else _fmt(v)])
        return _table(flat, ["", "tokens"])
    return f"<pre>{_e(json.dumps(tokens, indent=2))}</pre>"


def fate_text(c: Cand, budget: int | None) -> str:
    """What the schedule did with a candidate, in words."""
    m = c.metrics or {}
    steps = m.get("env_steps")
    of = f" of {_steps(budget)}" if budget else ""
    fate = m.get("fate")
    if c.metrics is None:
        return "not finished"
    if fate == "eliminated":
        return f"cut by halving after rung {m.get('rungs', '?')}: trained {_steps(steps)}{of} env-steps"
    if fate == "failed" or c.status != "ok":
        return f"failed ({c.status}) after {_steps(steps or 0)}{of} env-steps"
    if fate == "final":
        return f"trained the full budget: {_steps(steps)}{of} env-steps"
    return f"trained {_steps(steps)}{of} env-steps" if steps else "-"


def component_shares(c: Cand) -> list[tuple[str, float, float | None]]:
    """(component, mean per step at the end of training, share of the magnitude), largest first."""
    rows = []
    for name, points in (c.training.get("components") or {}).items():
        pts = [p for p in points or [] if isinstance(p, dict) and _finite(p.get("mean"))]
        if pts:
            rows.append((name, float(pts[-1]["mean"])))
    total = sum(abs(v) for _, v in rows)
    return sorted(((n, v, abs(v) / total if total else None) for n, v in rows), key=lambda r: -(r[2] or 0))


def _shares_html(c: Cand) -> str:
    rows = component_shares(c)
    if not rows:
        return "<p class='muted'>no component statistics</p>"
    return _table([[_e(n), _fmt(v), (f"<span class='share' style='width:{int(100 * sh)}px'></span>{sh:.0%}"
                                    if sh is not None else "-")] for n, v, sh in rows],
                  ["component", "mean per step (end of training)", "share of the reward"])


def _diff_html(gens: list[list[Cand]], c: Cand) -> str:
    ref = _parse_ref(c.proposal.get("parent"))
    index = {(x.g, x.c): x for cands in gens for x in cands}
    if ref is None or ref not in index:
        return "<p class='muted'>no parent: a fresh proposal</p>"
    parent = index[ref]
    if parent.source is None or c.source is None:
        return f"<p class='muted'>parent {parent.ref} has no readable reward.py</p>"
    lines = list(difflib.unified_diff(parent.source.splitlines(), c.source.splitlines(),
                                      f"{parent.ref}/reward.py", f"{c.ref}/reward.py", lineterm="", n=2))
    if not lines:
        return f"<p class='muted'>identical to its parent {parent.ref}</p>"
    out = []
    for ln in lines[2:]:
        kind = "hunk" if ln.startswith("@@") else "add" if ln.startswith("+") else "del" if ln.startswith("-") else "ctx"
        out.append(f"<span class='{kind}'>{_e(ln) or '&nbsp;'}</span>")
    pf = _fmt(parent.fitness) if parent.fitness is not None else _e(parent.status)
    return (f"<p>against its parent <a href='#cand-{parent.g}-{parent.c}'>{parent.ref}</a> (fitness {pf}):</p>"
            f"<pre class='diff'>{''.join(out)}</pre>")


def _video_html(c: Cand, out_dir: Path, width: int = 480) -> str:
    video = c.path / VIDEO_FILE
    if not video.is_file():
        err = ((c.metrics or {}).get("video") or {}).get("error") if isinstance((c.metrics or {}).get("video"), dict) else None
        return f"<p class='muted'>no video{': ' + _e(err) if err else ''}</p>" if c.status == "ok" else ""
    rel = Path(os.path.relpath(video, out_dir)).as_posix()
    return (f"<video src='{_e(rel)}' controls muted playsinline preload='metadata' width='{width}'></video>"
            f"<p class='muted'><a href='{_e(rel)}'>{_e(rel)}</a></p>")


def _trajectories(c: Cand) -> dict:
    traj = ((c.metrics or {}).get("evaluation") or {}).get("trajectories")
    return traj if isinstance(traj, dict) else {}


def _side_html(c: Cand, title: str, budget: int | None, out_dir: Path) -> str:
    m = c.metrics or {}
    ev = m.get("evaluation") or {}
    std = f" &plusmn; {_fmt(ev['fitness_std'])}" if _finite(ev.get("fitness_std")) else ""
    parts = [f"<div><h3>{title}: <a href='#cand-{c.g}-{c.c}'>{c.ref}</a></h3>",
             f"<p>trusted fitness <b>{_fmt(c.fitness)}</b>{std}"
             + (" <span class='ok'>success</span>" if m.get("success") else "") + "</p>",
             f"<p class='muted'>{fate_text(c, budget)}</p>", _video_html(c, out_dir, 400)]
    for key, v in _trajectories(c).items():
        parts.append(f"<p><b>{_e(key)} episode</b>: {_e(v.get('summary') if isinstance(v, dict) else v)}</p>")
    if not _trajectories(c):
        parts.append("<p class='muted'>no trajectory summaries</p>")
    top = component_shares(c)[:4]
    if top:
        parts.append("<p class='muted'>largest components: "
                     + ", ".join(f"{_e(n)} {sh:.0%}" for n, _, sh in top if sh is not None) + "</p>")
    parts.append("</div>")
    return "".join(parts)


def _why_html(gens: list[list[Cand]], best: Cand, runner: Cand | None, budget: int | None,
              threshold: Any, out_dir: Path) -> str:
    parts = ["<div class='why' id='why'><h2>Which reward won, and why</h2>"]
    success = (best.metrics or {}).get("success")
    verdict = ""
    if _finite(threshold):
        verdict = (" <span class='ok'>(reaches the success threshold "
                   f"{_fmt(float(threshold))})</span>" if success else
                   f" <span class='bad'>(below the success threshold {_fmt(float(threshold))})</span>")
    parts.append(f"<p><span class='star'>&#9733;</span> The winner is candidate <b>{best.ref}</b> with trusted "
                 f"fitness <b>{_fmt(best.fitness)}</b>{verdict}.")
    if runner is not None and runner.fitness is not None and best.fitness is not None:
        gap = best.fitness - runner.fitness
        parts.append(f" The runner-up, {runner.ref}, scored {_fmt(runner.fitness)} ({_fmt(gap)} lower).")
        rs, bs = (runner.metrics or {}).get("env_steps"), (best.metrics or {}).get("env_steps")
        if _finite(rs) and _finite(bs) and rs < bs:
            parts.append(f" Note that the runner-up trained {_steps(rs)} env-steps against the winner's "
                         f"{_steps(bs)}: it was cut by the schedule, so part of the gap is budget.")
    parts.append("</p>")
    origin = best.proposal.get("origin")
    notes = "; ".join(_clean(n) for n in best.proposal.get("notes") or [])
    if origin or notes:
        parts.append(f"<p>How it was made: {_e(origin or '')}" + (f" &mdash; {_e(notes)}" if notes else "") + "</p>")
    parts.append("<h3>What changed: its diff</h3>" + _diff_html(gens, best))
    parts.append("<h3>What it pays for: component shares</h3>" + _shares_html(best))
    parts.append("<h3>What the policies did: winner and runner-up side by side</h3><div class='side'>")
    parts.append(_side_html(best, "<span class='star'>&#9733;</span> winner", budget, out_dir))
    parts.append(_side_html(runner, "runner-up", budget, out_dir) if runner else
                 "<div><p class='muted'>no other evaluated candidate to compare with</p></div>")
    parts.append("</div></div>")
    return "".join(parts)


SCHEDULE_TEXT = {
    "halving": ("Successive halving: every candidate first trains a fifth of the budget and is evaluated; the "
                "best 3/8 continue (from their saved state) to half the budget, the best third of those to the "
                "full budget. A candidate cut early trained fewer env-steps: its fitness is measured at that "
                "smaller budget."),
    "full": "Full schedule: every candidate trains the full budget.",
}


def _setup_text(run: dict) -> str:
    cfg = run.get("config") if isinstance(run.get("config"), dict) else {}
    bits = []
    if cfg.get("samples") is not None and cfg.get("generations") is not None:
        bits.append(f"{_e(cfg['samples'])} candidates per generation, {_e(cfg['generations'])} generation(s)")
    if cfg.get("steps"):
        bits.append(f"budget {_steps(cfg['steps'])} env-steps per candidate")
    if cfg.get("schedule"):
        bits.append(f"schedule: {_e(cfg['schedule'])}")
    if cfg.get("trainer"):
        bits.append(f"trainer: {_e(cfg['trainer'])}" + (f" on {_e(cfg['device'])}" if cfg.get("device") not in
                                                        (None, "cpu") else ""))
    if cfg.get("mode") == "params":
        bits.append("mode: params (template weights)")
    if cfg.get("seed") is not None:
        bits.append(f"seed {_e(cfg['seed'])}")
    if cfg.get("proposer") == "openai" or cfg.get("replay"):
        bits.append(f"LLM model {_e(cfg.get('model'))}" + (f" at {_e(cfg['base_url'])}" if cfg.get("base_url") else ""))
    if cfg.get("replay"):
        bits.append("replaying recorded LLM answers")
    if cfg.get("interactive"):
        bits.append("interactive (human feedback between generations)")
    return "; ".join(bits) or "<span class='muted'>unknown</span>"


def _fitness_text(task: dict, gens: list[list[Cand]]) -> str:
    fit = task.get("fitness") if isinstance(task.get("fitness"), dict) else {}
    params = fit.get("params") or {}
    name = _e(fit.get("name", "?")) + (f"({_e(', '.join(f'{k}={v}' for k, v in params.items()))})" if params else "")
    doc = next((ev.get("fitness_doc") for cands in gens for c in cands
                for ev in [(c.metrics or {}).get("evaluation") or {}] if ev.get("fitness_doc")), None)
    text = f"<b>{name}</b>" + (f": {_e(doc)}" if doc else "")
    thr = task.get("success_threshold")
    if _finite(thr):
        text += f"; success at &ge; {_fmt(float(thr))}"
    return text


def render_html(run_dir: Path, out_dir: Path) -> str:
    """The report's HTML text (links relative to ``out_dir``)."""
    run, gens, notes = load_run(run_dir)
    task = run.get("task") if isinstance(run.get("task"), dict) else {}
    cfg = run.get("config") if isinstance(run.get("config"), dict) else {}
    budget = cfg.get("steps") if _finite(cfg.get("steps")) else None
    all_c = [c for cands in gens for c in cands]
    best = _best(run, gens)
    runner = _runner_up(gens, best)
    title = _e(run.get("id") or run_dir.name)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>rewardgen report: {title}"
             f"</title><style>{_CSS}</style></head><body>"]
    parts.append(f"<h1>rewardgen run {title}</h1>")
    summary = [
        ["task", _e(task.get("id", "?"))
         + f" <span class='muted'>({_e(task.get('env') or task.get('mjcf') or '')})</span>"],
        ["goal", _e(task.get("description", ""))],
        ["fitness", _fitness_text(task, gens)],
        ["status", _e(run.get("status", "unknown"))],
        ["proposer", _e(run.get("proposer", "?"))],
        ["setup", _setup_text(run)],
        ["candidates", f"{len(all_c)} in {len(gens)} generation(s): "
         + ", ".join(f"{n} {_e(s)}" for s, n in sorted(_count(c.status for c in all_c).items()))],
        ["best", (f"<span class='star'>&#9733;</span> <a href='#cand-{best.g}-{best.c}'>candidate {best.ref}</a>: "
                  f"fitness <b>{_fmt(best.fitness)}</b> (<a href='#why'>why it won</a>)" if best
                  else "<span class='muted'>none yet</span>")],
        ["report written", _e(time.strftime("%Y-%m-%d %H:%M:%S"))],
    ]
    parts.append(_table(summary, ["", ""]))
    if "tokens" in run:
        parts.append("<h2>LLM tokens</h2>" + _tokens_html(run["tokens"]))
    if notes:
        parts.append("<div class='flag'>" + "<br>".join(_e(n) for n in notes) + "</div>")

    if best is not None:
        parts.append(_why_html(gens, best, runner, budget, task.get("success_threshold"), out_dir))
    else:
        parts.append("<h2>Which reward won, and why</h2><p class='muted'>no candidate has been evaluated yet</p>")
    parts.append("<h2>Fitness per generation</h2>")
    threshold = task.get("success_threshold")
    fit_name = ((task.get("fitness") or {}).get("name") if isinstance(task.get("fitness"), dict) else None)
    svg = _safe(lambda: _fitness_plot(gens, threshold if _finite(threshold) else None, best,
                                      f"trusted fitness ({_clean(fit_name)})" if fit_name else "trusted fitness"))
    parts.append(f"<div class='plot'>{svg}</div>" if svg else "<p class='muted'>no evaluated candidate yet</p>")
    rows = []
    for g, cands in enumerate(gens):
        fits = [c.fitness for c in cands if c.fitness is not None and c.status == "ok"]
        rows.append([str(g), str(len(cands)), str(len(fits)), _fmt(max(fits)) if fits else "-",
                     _fmt(statistics.median(fits)) if fits else "-"])
    if rows:
        parts.append(_table(rows, ["generation", "candidates", "evaluated", "best", "median"]))

    parts.append("<h2>The schedule: how far each candidate trained</h2>")
    parts.append(f"<p>{_e(SCHEDULE_TEXT.get(cfg.get('schedule'), 'Schedule: ' + str(cfg.get('schedule', '?'))))}</p>")
    srows, sclass = [], []
    for c in all_c:
        per_rung = ", ".join(f"{_steps(r.get('env_steps_total'))}: {_fmt(r.get('fitness'))}" for r in c.rungs
                             if r.get("status") == "ok") or "-"
        srows.append([_star(c, best) + f"<a href='#cand-{c.g}-{c.c}'>{c.ref}</a>", _e(c.status),
                      _fmt(c.fitness) if c.fitness is not None else "-", _e(fate_text(c, budget)), per_rung])
        sclass.append("winner" if c is best else "")
    if srows:
        parts.append(_table(srows, ["candidate", "status", "fitness", "fate", "fitness after each rung "
                                    "(env-steps: fitness)"], sclass))

    if best is not None:
        parts.append("<h2>The winning reward</h2>")
        parts.append(f"<pre>{_e(best.source or '(reward.py missing)')}</pre>")
        chain = lineage(gens, best)
        lrows = [[c.ref, _fmt(c.fitness) if c.fitness is not None else _e(c.status), _e(c.proposal.get("origin", "")),
                  _e("; ".join(map(str, c.proposal.get("notes") or [])))] for c in chain]
        parts.append("<h3>Lineage (newest first)</h3>" + _table(lrows, ["candidate", "fitness", "origin", "notes"]))

    final = _read_json(run_dir / FINAL_FILE, notes) if (run_dir / FINAL_FILE).is_file() else None
    if isinstance(final, dict) and final.get("rows"):
        parts.append("<h2>Final evaluation</h2>")
        parts.append(f"<p class='muted'>{_e(final.get('protocol', ''))}; {_e(final.get('seeds'))} seeds x "
                     f"{_e(final.get('steps'))} env-steps</p>")
        parts.append(_table([[_e(r.get("label", r.get("method"))), f"{_e(r.get('ok'))}/{_e(r.get('seeds'))}",
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
    rows, classes = [], []
    for c in all_c:
        st = c.status
        cls = "ok" if st == "ok" else ("muted" if st in ("pending", "unreadable") else "bad")
        err = (c.metrics or {}).get("error")
        rows.append([_star(c, best) + f"<a href='#cand-{c.g}-{c.c}'>{c.ref}</a>", f"<span class='{cls}'>{_e(st)}</span>",
                     _fmt(c.fitness) if c.fitness is not None else "-", _e(fate_text(c, budget)),
                     _e(c.proposal.get("origin", "")), "&#9888; hacking?" if c.hacking else "",
                     _e(str(err)[:200]) if err else ""])
        classes.append("winner" if c is best else "")
    if rows:
        parts.append(_table(rows, ["candidate", "status", "fitness", "fate", "origin", "flags", "error"], classes))
    for c in all_c:
        parts.append(_candidate_html(c, out_dir, gens, best, budget))
    parts.append("</body></html>")
    return "\n".join(parts)


def _star(c: Cand, best: Cand | None) -> str:
    return "<span class='star' title='the winner'>&#9733;</span> " if c is best else ""


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


def _candidate_html(c: Cand, out_dir: Path, gens: list[list[Cand]] | None = None, best: Cand | None = None,
                    budget: int | None = None) -> str:
    m = c.metrics or {}
    win = c is best
    parts = [f"<div class='cand{' winner' if win else ''}' id='cand-{c.g}-{c.c}'><h3>{_star(c, best)}"
             f"candidate {c.ref}{' (the winner)' if win else ''}: {_e(c.status)}"
             + (f", fitness {_fmt(c.fitness)}" if c.fitness is not None else "") + "</h3>"]
    if c.proposal.get("origin") or c.proposal.get("parent"):
        parts.append(f"<p class='muted'>origin: {_e(c.proposal.get('origin', ''))}"
                     + (f"; parent {_e(c.proposal.get('parent'))}" if c.proposal.get("parent") else "") + "</p>")
    if c.metrics is not None:
        parts.append(f"<p class='muted'>{_e(fate_text(c, budget))}</p>")
    if m.get("error"):
        parts.append(f"<p class='bad'>{_e(str(m['error'])[:1000])}</p>")
    if c.hacking:
        parts.append(f"<div class='flag'>{_e(c.hacking.get('message', 'reward hacking alarm'))}</div>")
    debug = m.get("debug")
    if isinstance(debug, dict) and debug.get("flags"):
        parts.append("".join(f"<div class='flag'>[{_e(f.get('code'))}] {_e(f.get('message'))}</div>"
                             for f in debug["flags"] if isinstance(f, dict)))
    parts.append(_video_html(c, out_dir))
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
    for key, v in _trajectories(c).items():
        parts.append(f"<p><b>{_e(key)} episode</b>: {_e(v.get('summary') if isinstance(v, dict) else v)}</p>")
    if c.notes:
        parts.append("<p class='muted'>" + "; ".join(_e(n) for n in c.notes) + "</p>")
    if c.source:
        if gens is not None and c.proposal.get("parent"):
            parts.append(f"<details><summary>diff against its parent</summary>{_diff_html(gens, c)}</details>")
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
