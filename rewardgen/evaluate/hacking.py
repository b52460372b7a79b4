"""Reward-hacking alarm: the candidate's own reward rises through training while the fitness does not.

Input is ``TrainingStats.summary()`` (``metrics.json["training"]``). Its ``episodes`` points hold, per
bucket of training (about 10), the mean episode ``return`` under the candidate's reward and the mean
worker-side ``fitness`` (the task's trusted fitness function, computed from the same States before
the reward saw them). The rule, on those points:

- ``early`` = mean of the first third of the points, ``late`` = mean of the last third (at least one
  point each; at least 3 points are needed, otherwise there is nothing to judge and the answer is None);
- relative change of x = ``(late - early) / max(|early|, |late|)`` (in [-2, 2], sign = direction);
- the alarm fires when the return's relative change is >= +0.20 (the policy got clearly better at
  the reward) and the fitness's relative change is <= +0.05 (flat or falling).

Relative changes near zero are noisy when the fitness itself is near zero; the alarm is a prompt to
look (at the report's reward-vs-fitness curve), not a verdict. Selection never uses it.
"""

from __future__ import annotations

from typing import Any

from rewardgen.stats import finite

REWARD_RISE = 0.20
FITNESS_FLAT = 0.05
MIN_POINTS = 3


def _rel(early: float, late: float) -> float:
    scale = max(abs(early), abs(late), 1e-9)
    return (late - early) / scale


def hacking_alarm(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """A dict describing the alarm when the reward rose while the fitness stayed flat or fell, else None.

    Keys: ``flag`` ("reward_hacking"), ``message`` (one line, with the numbers), ``reward_early``,
    ``reward_late``, ``reward_change`` (relative), ``fitness_early``, ``fitness_late``,
    ``fitness_change`` (relative), ``points`` (buckets used), ``steps`` ([first, last] env step),
    ``reward_fitness_correlation`` (across all training episodes, from the summary).
    """
    if not isinstance(stats, dict):
        return None
    points = [p for p in stats.get("episodes") or []
              if isinstance(p, dict) and finite(p.get("return")) and finite(p.get("fitness"))]
    if len(points) < MIN_POINTS:
        return None
    k = max(1, len(points) // 3)
    head, tail = points[:k], points[-k:]
    r0 = sum(p["return"] for p in head) / k
    r1 = sum(p["return"] for p in tail) / k
    f0 = sum(p["fitness"] for p in head) / k
    f1 = sum(p["fitness"] for p in tail) / k
    dr, df = _rel(r0, r1), _rel(f0, f1)
    if dr < REWARD_RISE or df > FITNESS_FLAT:
        return None
    trend = "fell" if df < -FITNESS_FLAT else "stayed flat"
    message = (f"possible reward hacking: the candidate's episode return rose {r0:.4g} -> {r1:.4g} "
               f"({100 * dr:+.0f}%) during training while the fitness {trend} ({f0:.4g} -> {f1:.4g}, "
               f"{100 * df:+.0f}%)")
    return {
        "flag": "reward_hacking",
        "message": message,
        "reward_early": r0, "reward_late": r1, "reward_change": dr,
        "fitness_early": f0, "fitness_late": f1, "fitness_change": df,
        "points": len(points),
        "steps": [points[0].get("step"), points[-1].get("step")],
        "reward_fitness_correlation": stats.get("reward_fitness_correlation"),
    }
