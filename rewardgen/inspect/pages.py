"""One rendering path for runs: the Jinja2 environment, filters and candidate card that ``report.html``
and the web UI share.

The report and the web UI show the same candidates, so they show them through the same code: one
``environment`` (autoescaping on, and every ``{{ value }}`` passed through ``rewardgen.safetext.html``,
the project's one escaping policy, so nothing from reward code, an LLM or a user reaches a page
raw), one set of filters, the macros in ``templates/_candidate.html`` (a candidate's card: status,
fitness, fate, error, hacking alarm, video, components chart, reward code, diff against its
parent) and ``card``, which turns a candidate's files into what that card reads. Only numbers-built
SVG (``rewardgen.inspect.charts``) enters a page as ``Markup``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from rewardgen.envsteps import fmt as fmt_steps
from rewardgen.evaluate.hacking import hacking_alarm
from rewardgen.inspect.charts import component_chart
from rewardgen.safetext import html
from rewardgen.stats import finite
from rewardgen.store import as_label

TEMPLATES = Path(__file__).resolve().parent / "templates"


def as_dict(x: Any) -> dict[str, Any]:
    """``x`` if it is a dict, else an empty one: a run's files are JSON that may hold anything."""
    return x if isinstance(x, dict) else {}


def as_list(x: Any) -> list[Any]:
    """``x`` if it is a list, else an empty one (as ``as_dict``)."""
    return x if isinstance(x, list) else []


def fit(v: Any) -> str:
    """A fitness for people: four significant digits, "-" when there is none."""
    if v is None:
        return "-"
    return f"{v:.4g}" if finite(v) else str(v)


def num(v: Any) -> Any:
    """Floats to four significant digits; anything else as it is (escaped later by ``finalize``)."""
    return f"{v:.4g}" if isinstance(v, float) else v


#: env-steps for people, the one format everywhere (``rewardgen.envsteps.fmt``: 768, 30.7k, 1.5M)
steps_text = fmt_steps


def environment(*dirs: Path) -> jinja2.Environment:
    """A Jinja2 environment over ``dirs`` and the shared templates, with the project's escaping policy.

    Autoescape is on and ``finalize`` is ``safetext.html``, so every ``{{ value }}`` is escaped the
    one way untrusted text is escaped everywhere; only ``Markup`` (the SVG charts) passes as is.
    """
    loader = jinja2.FileSystemLoader([str(d) for d in dirs] + [str(TEMPLATES)])
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.ChainableUndefined, finalize=html)
    env.filters.update(fit=fit, num=num, steps=steps_text, label=as_label)
    return env


def fate_text(metrics: dict | None, budget: Any) -> str:
    """What the schedule did with a candidate, in words ("cut by halving after rung 1: trained ...")."""
    if metrics is None:
        return "not finished"
    m = metrics
    steps = m.get("env_steps")
    of = f" of {steps_text(budget)}" if budget else ""
    fate = m.get("fate")
    if fate == "eliminated":
        by = "the adaptive schedule" if m.get("schedule") == "adaptive" else "halving"
        return f"cut by {by} after rung {m.get('rungs', '?')}: trained {steps_text(steps)}{of} env-steps"
    if fate == "failed" or m.get("status", "unknown") != "ok":
        return f"failed ({m.get('status', 'unknown')}) after {steps_text(steps or 0)}{of} env-steps"
    if fate == "final":
        return f"trained the full budget: {steps_text(steps)}{of} env-steps"
    return f"trained {steps_text(steps)}{of} env-steps" if steps else "-"


def hacking(metrics: dict | None) -> dict | None:
    """The candidate's reward-hacking alarm: the one its run recorded, else the one its training shows."""
    m = metrics or {}
    if isinstance(m.get("hacking"), dict):
        return m["hacking"]
    training = m.get("training")
    return hacking_alarm(training if isinstance(training, dict) else {})


def reward_diff(parent_source: str | None, source: str | None, parent_ref: str | None, ref: str,
                note: str | None = None) -> dict:
    """The candidate's reward against its parent's as classed unified-diff lines, or a note saying why not."""
    if not parent_ref:
        return {"parent": None, "lines": [], "note": note or "no parent: a fresh candidate"}
    if note:
        return {"parent": parent_ref, "lines": [], "note": note}
    if parent_source is None or source is None:
        return {"parent": parent_ref, "lines": [], "note": f"parent {parent_ref} has no readable reward.py"}
    lines = []
    for ln in difflib.unified_diff(parent_source.splitlines(), source.splitlines(), f"{parent_ref}/reward.py",
                                   f"{ref}/reward.py", lineterm="", n=2):
        kind = ("head" if ln.startswith(("---", "+++")) else "hunk" if ln.startswith("@@")
                else "add" if ln.startswith("+") else "del" if ln.startswith("-") else "ctx")
        lines.append({"kind": kind, "text": ln})
    return {"parent": parent_ref, "lines": lines, "note": "" if lines else f"identical to its parent {parent_ref}"}


def card(ref: str, key: str, metrics: dict | None, proposal: Mapping[str, Any], source: str | None, diff: dict,
         video: str | None, budget: Any = None, status: str | None = None, video_info: dict | None = None) -> dict:
    """What ``_candidate.html``'s ``card`` shows of one candidate, from its files.

    :param key: the element id's suffix (``cand-KEY``, ``video-KEY``): unique on its page.
    :param video: the video's URL relative to the page, None when there is none.
    :param status: overrides ``metrics["status"]`` (the report says "unreadable" for a corrupt file).
    :param video_info: the candidate's ``video.json`` (its ``error`` says why there is no video).
    """
    m = metrics or {}
    evaluation = as_dict(m.get("evaluation"))
    training = as_dict(m.get("training"))
    status = status or str(m.get("status", "pending"))
    video_error = video_info.get("error") if isinstance(video_info, dict) else None
    notes = as_list(proposal.get("notes"))
    return {
        "ref": ref, "key": key, "finished": bool(m), "status": status, "fitness": m.get("fitness"),
        "fitness_std": evaluation.get("fitness_std"), "success": m.get("success"), "error": m.get("error"),
        "traceback": m.get("traceback"), "origin": proposal.get("origin"), "parent": as_label(proposal.get("parent")),
        "notes": notes, "hacking": hacking(metrics), "source": source, "diff": diff, "video": video,
        "video_note": ("no video" + (f": {video_error}" if video_error else "")) if m else "training...",
        "chart": component_chart(training) if training.get("components") or training.get("total_reward") else None,
        "fate": fate_text(metrics, budget) if m else "",
        "train_seconds": m.get("train_seconds"), "env_steps": m.get("env_steps"),
        "evaluation": evaluation, "training": training,
        # what the reward tried in its jail (refused system calls, its guard switched off): said, not hidden
        "flags": [str(f) for f in as_list(m.get("flags"))][:8],
    }


__all__ = [
    "TEMPLATES",
    "as_dict",
    "as_list",
    "card",
    "environment",
    "fate_text",
    "finite",
    "fit",
    "hacking",
    "reward_diff",
    "steps_text",
]
