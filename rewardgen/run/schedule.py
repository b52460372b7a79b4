"""Training schedules of a generation: how many env-steps each candidate gets, decided by trusted fitness.

- ``full``: every candidate trains the whole budget.
- ``halving``: fixed rungs (a fifth of the budget, half, all), keeping the best 3/8 then 1/3.
- ``adaptive``: a budgeted race in small increments (``adaptive_decision``): every candidate trains
  1/40 of the budget at a time and is evaluated; a candidate is dropped when two trusted
  evaluations in a row say it is clearly behind and it is not catching up, or when the generation's step budget
  (``adaptive_total_steps``) can no longer afford it; the last one left trains to the full budget.

Every decision is a pure function of the rung records' trusted fitness (the evaluator's numbers,
never anything the candidate's reward reported), so a resumed run recomputes the same decisions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardgen.store import RungRecord, Stage

SCHEDULES = ("adaptive", "halving", "full")

#: (budget fraction, share of the rung's candidates that continue) for the "halving" schedule
HALVING_RUNGS = [(0.2, 0.375), (0.5, 1 / 3), (1.0, 0.0)]

#: adaptive: one increment is this share of the per-candidate budget
ADAPTIVE_INCREMENT = 1 / 40
#: adaptive: a generation of K spends at most budget * (1 + ADAPTIVE_SPEND * log2 K) env-steps
#: (K=8: 1.54 budgets, 19.3 % of full training; K=16: 1.72, 10.8 %)
ADAPTIVE_SPEND = 0.18
#: adaptive: a candidate is dropped early when, twice in a row, its fitness plus this many standard errors
#: is below the leader's minus as many and the gap is at least ADAPTIVE_GAP of the task's success
#: threshold, and it gained less than the leader over the last increment
ADAPTIVE_Z = 2.0
ADAPTIVE_GAP = 0.25


def rung_fractions(samples: int, schedule: str) -> list[float]:
    """Budget fractions of the rungs: ``[1.0]`` for "full"; for "halving", HALVING_RUNGS' fractions;
    for "adaptive", the increments' grid (candidates leave it early; the last one jumps to 1.0).

    The first halving rung is a fifth of the budget: shorter slices (1/8) ranked halfcheetah
    candidates by noise (docs/benchmarks.md). With K=8 halving spends 3 of 8 full budgets (37.5%)."""
    if schedule == "full" or samples <= 1:
        return [1.0]
    if schedule == "adaptive":
        n = round(1 / ADAPTIVE_INCREMENT)
        return [(j + 1) / n for j in range(n)]
    return [f for f, _ in HALVING_RUNGS]


def survivors(count: int, rung: int) -> int:
    """How many of ``count`` ranked candidates continue after halving's ``rung`` (at least one)."""
    share = HALVING_RUNGS[min(rung, len(HALVING_RUNGS) - 1)][1]
    return max(1, math.ceil(count * share))


def adaptive_total_steps(samples: int, steps: int) -> int:
    """The most env-steps an adaptive generation of ``samples`` candidates spends (one full budget
    for the winner plus a share for the race that grows with log K, not with K)."""
    if samples <= 1:
        return steps
    return int(steps * (1 + ADAPTIVE_SPEND * math.log2(samples)))


@dataclass(frozen=True)
class Evaluation:
    """One trusted evaluation of a candidate's policy after a slice (from its ``rung-R.json``)."""

    steps: int  # env-steps trained so far (the policy's age)
    spent: int  # env-steps this slice trained
    fitness: float | None  # None: the slice failed
    stderr: float = 0.0  # standard error of the mean fitness over the evaluation's episodes

    @property
    def value(self) -> float:
        """The fitness of a slice that did not fail (what the rules compare)."""
        if self.fitness is None:
            raise ValueError("a failed slice has no fitness to compare")
        return self.fitness

    @classmethod
    def from_rung(cls, record: RungRecord) -> Evaluation:
        ev = record.get("evaluation") or {}
        n = max(1, len(ev.get("episodes") or []))
        fitness = record.get("fitness") if record.get("status") == Stage.OK else None
        if fitness is None:  # the slice failed
            return cls(record.get("env_steps_total", 0), record.get("env_steps", 0), None)
        return cls(record.get("env_steps_total", 0), record.get("env_steps", 0), float(fitness),
                   float(ev.get("fitness_std") or 0.0) / math.sqrt(max(1, n - 1)))


@dataclass
class Decision:
    """What the adaptive rule does next: train ``train`` (candidate -> target env-steps) as the next
    rung; candidates in ``dropped`` stop where they are (``failed`` ones failed their last slice);
    ``finished`` trained the whole budget. ``train`` empty: the generation is done."""

    train: dict[int, int] = field(default_factory=dict)
    dropped: dict[int, str] = field(default_factory=dict)  # candidate -> why (for the record)
    failed: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)


def adaptive_decision(history: Sequence[Sequence[Evaluation]], steps: int, scale: float = 1.0,
                      total: int | None = None) -> Decision:
    """The next rung of the adaptive schedule from each candidate's trusted evaluations so far.

    ``history[c]`` lists candidate c's evaluations, one per slice (all racing candidates have the
    same number). ``scale`` is the task's success threshold: gaps smaller than ADAPTIVE_GAP of it are
    never a reason to drop. Why this rule: ranking once at a fixed fraction (halving) cut the later
    winner on early noise; here a candidate leaves only when it is behind by more than the
    evaluation's noise and a meaningful margin twice in a row and is not catching up, or when the step
    budget forces a choice, which then is made as late as the budget allows, on the most recent
    (oldest-policy) evaluations."""
    k = len(history)
    total = adaptive_total_steps(k, steps) if total is None else total
    inc = max(1, round(steps * ADAPTIVE_INCREMENT))
    out = Decision()
    if k == 0:
        return out
    if all(len(h) == 0 for h in history):
        first = inc if k * inc + (steps - inc) <= total or k == 1 else max(1, (total - steps) // max(1, k - 1))
        out.train = {c: (steps if k == 1 else first) for c in range(k)}
        return out
    # candidates that stopped before the latest rung were decided on earlier: only the racing ones count
    alive = [c for c in range(k) if len(history[c]) == max(len(h) for h in history)]
    spent = sum(e.spent for h in history for e in h)
    racing = []
    for c in alive:
        last = history[c][-1]
        if last.fitness is None or not math.isfinite(last.fitness):
            out.failed.append(c)
        elif last.steps >= steps:
            out.finished.append(c)
        else:
            racing.append(c)
    if not racing:
        return out
    ranked = sorted(racing, key=lambda c: (-history[c][-1].value, c))
    leader = ranked[0]
    for c in ranked[1:]:
        if _clearly_behind(history[c], history[leader], scale):
            out.dropped[c] = "behind the leader beyond the evaluation noise, twice, and not catching up"
    racing = [c for c in ranked if c not in out.dropped]
    now = max(history[c][-1].steps for c in racing)
    nxt = min(steps, now + inc)
    # keep as many racing as the budget allows if, from here, the field were halved every increment
    # and the last one trained to the end: the budget's forced cuts come gradually, and as late as it can
    keep = len(racing)
    while keep > 1 and spent + _halving_tail(keep, now, inc, steps) > total:
        keep -= 1
    if keep > 1 and spent + keep * (steps - now) <= total:
        nxt = steps  # the budget finishes every one still racing
    for c in racing[keep:]:
        out.dropped[c] = "the step budget cannot carry it further"
    target = steps if keep == 1 else nxt
    out.train = {c: target for c in racing[:keep]}
    return out


def _behind(e: Evaluation, lead: Evaluation, scale: float) -> bool:
    """Behind beyond both evaluations' noise (ADAPTIVE_Z standard errors) and by a meaningful gap."""
    return (e.value + ADAPTIVE_Z * e.stderr < lead.value - ADAPTIVE_Z * lead.stderr
            and lead.value - e.value >= ADAPTIVE_GAP * abs(scale))


def _clearly_behind(mine: Sequence[Evaluation], lead: Sequence[Evaluation], scale: float) -> bool:
    """Behind at the last two evaluations and gaining less than the leader over the last increment.

    One evaluation is not enough: on halfcheetah-run a candidate that "takes off" (starts running)
    early jumps 1.5 m/s in one increment while the eventual winner is still standing still
    (docs/benchmarks.md), and evaluation noise says nothing about when the others will."""
    if len(mine) < 2 or len(lead) < 2 or mine[-2].fitness is None or lead[-2].fitness is None:
        return False
    gaining = (mine[-1].value - mine[-2].value) >= (lead[-1].value - lead[-2].value)
    return _behind(mine[-1], lead[-1], scale) and _behind(mine[-2], lead[-2], scale) and not gaining


def _halving_tail(n: int, now: int, inc: int, steps: int) -> int:
    """Env-steps to train ``n`` candidates (all at ``now``) one increment, halve them, repeat, and take
    the last one to ``steps``: the cheapest way on that still compares them after each increment."""
    cost, level = 0, now
    while n > 1 and level < steps:
        nxt = min(steps, level + inc)
        cost += n * (nxt - level)
        level, n = nxt, math.ceil(n / 2)
    return cost + (steps - level)


def schedule_plan(count: int, steps: int, fractions: list[float], schedule: str = "halving") -> list[dict]:
    """Each rung's target env-steps and how many of ``count`` candidates are expected to train in it
    (all of them ok; adaptive: nobody dropped on fitness); the display estimates the time left from it."""
    if schedule == "adaptive" and count > 1:
        history: list[list[Evaluation]] = [[] for _ in range(count)]
        plan = []
        for r in range(len(fractions) + 1):
            d = adaptive_decision(history, steps)
            if not d.train:
                break
            plan.append({"rung": r, "target": max(d.train.values()), "candidates": len(d.train)})
            for c, target in d.train.items():  # equal fitness: only the budget drops anyone
                before = history[c][-1].steps if history[c] else 0
                history[c].append(Evaluation(target, target - before, 0.0))
        return plan
    plan, alive = [], count
    for r, fraction in enumerate(fractions):
        plan.append({"rung": r, "target": max(1, round(steps * fraction)), "candidates": alive})
        alive = survivors(alive, r) if alive else 0
    return plan


def planned_env_steps(samples: int, steps: int, schedule: str) -> int:
    """Env-steps one generation trains when every candidate succeeds (halving: the rungs' shares;
    adaptive: its budget, an upper bound)."""
    if schedule == "adaptive":
        return adaptive_total_steps(samples, steps)
    fractions = rung_fractions(samples, schedule)
    total, alive, before = 0, samples, 0.0
    for r, f in enumerate(fractions):
        total += alive * round(steps * (f - before))
        before = f
        alive = survivors(alive, r)
    return total


def merge_training_stats(rungs: Sequence[RungRecord]) -> dict:
    """One TrainingStats summary from consecutive slices (steps offset by what came before)."""
    merged: dict[str, Any] = {"components": {}, "total_reward": [], "episodes": [], "num_episodes": 0,
                              "reward_fitness_correlation": None}
    for rung in rungs:
        stats = rung.get("training") or {}
        offset = rung.get("env_steps_total", 0) - rung.get("env_steps", 0)
        for name, points in (stats.get("components") or {}).items():
            merged["components"].setdefault(name, []).extend(dict(p, step=p["step"] + offset) for p in points)
        merged["total_reward"] += [dict(p, step=p["step"] + offset) for p in stats.get("total_reward") or []]
        merged["episodes"] += [dict(p, step=p["step"] + offset) for p in stats.get("episodes") or []]
        merged["num_episodes"] += int(stats.get("num_episodes") or 0)
        merged["reward_fitness_correlation"] = stats.get("reward_fitness_correlation")
    return merged


def describe_schedule(samples: int, steps: int, schedule: str, batch: int | None = None) -> list[str]:
    """How a generation's ``samples`` candidates are trained, compared and cut, in sentences (for the
    proposer: why a reward must make the policy learn fast early). ``batch``: env-steps per training
    update; each slice ends at the first update past its mark."""
    def n(x: int) -> str:
        return f"{x:,}"

    if schedule == "full" or samples <= 1:
        return [f"Every candidate trains the full {n(steps)} env-steps; then they are compared by trusted fitness."]
    past = f" Training stops at the end of an update ({n(batch)} env-steps), a little past each mark." if batch else ""
    if schedule == "adaptive":
        inc = max(1, round(steps * ADAPTIVE_INCREMENT))
        total = adaptive_total_steps(samples, steps)
        return [f"The {samples} candidates of a generation train in increments of {n(inc)} env-steps and are evaluated "
                f"after each.{past} A candidate is dropped when, twice in a row, it is behind the leader by more than "
                f"the evaluation noise and by at least {ADAPTIVE_GAP:.0%} of the success threshold and is not catching "
                f"up, or when the generation's step budget ({n(total)} env-steps in all) cannot carry it; the last one "
                f"left trains to the full {n(steps)}. A dropped candidate keeps the fitness measured where it "
                "stopped. So what the policy learns in the first increments decides who continues."]
    plan = schedule_plan(samples, steps, rung_fractions(samples, schedule), schedule)
    first = plan[0]
    parts = [f"all {samples} train to {n(first['target'])} env-steps and are evaluated"]
    for before, rung in itertools.pairwise(plan):
        last = rung is plan[-1]
        keep = survivors(before["candidates"], before["rung"])
        parts.append(f"the best {keep} {'train' if keep > 1 else 'trains'} on to "
                     f"{'the full ' if last else ''}{n(rung['target'])}" + ("" if last else " and are evaluated again"))
    return ["Candidates of a generation are compared in rungs (successive halving): " + "; ".join(parts) + "." + past,
            f"A candidate cut early keeps the fitness measured where it was cut, at that budget. So a reward is first "
            f"judged on what the policy learns in its first {n(first['target'])} env-steps "
            f"({first['target'] / steps:.0%} of the budget): a reward that only pays off late is cut before it does."]
