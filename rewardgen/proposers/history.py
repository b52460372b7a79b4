"""What an LLM is told about the generations before it: like with like, the newest in full.

- Every fitness is shown with the env-steps its policy had trained when it was measured and the
  evaluation episodes behind it (their range); each candidate is one training seed.
- A child is compared with its parent at the same env-steps (``compare``): both candidates' trusted
  evaluations after each slice of the schedule (``CandidateRecord.rungs``) are read at the larger
  budget both reached, so a child cut by halving at 61k env-steps meets its parent's fitness at 61k,
  not the parent's at 300k.
- The newest generation is described candidate by candidate (``describe_candidate``): the change
  from its parent (a unified diff, or its code when it has none), its reward components at its own
  budget, its training episodes, what its policy did in the trusted episodes, and any error, fenced
  as output of the code under test (``safetext.for_llm``).
- Every fitness is shown at every rung the candidate reached; the best so far is chosen like with like
  (``leader``: the highest last fitness at the largest budget any candidate reached), and a candidate
  that peaked and then fell is said to have.
- How noisy a fitness is comes from the run's own measurements (``noise_lines``), and where early
  rungs mis-ranked candidates the run's own example is given (``rank_flip``).
- Older generations are compressed only when the request would exceed its character budget
  (``LLMProposer.reflection``): first long code changes are left out whole (never cut mid-code), then
  their lines; the newest generation never is.
"""

from __future__ import annotations

import ast
import difflib
import functools
import math
import re
import statistics
from dataclasses import dataclass

from rewardgen.evaluate.trajectory import STALL_SECONDS, STALL_SPEED, tilt_text, turned_text
from rewardgen.proposers.base import CandidateRecord
from rewardgen.proposers.reflection import behaviour_facts, component_facts
from rewardgen.proposers.taskfacts import SeedLuck, seed_luck
from rewardgen.safetext import for_llm, llm_name
from rewardgen.store import Stage
from rewardgen.tasks.fitness import TURNING_FITNESSES
from rewardgen.tasks.spec import Task

#: most lines of a diff (or of code) shown for a candidate of an older generation
OLDER_CHANGE_LINES = 30
#: most characters of one candidate's code shown
CODE_LIMIT = 8000
#: most columns of a component table, rows of an episode table
TABLE_POINTS = 6


def steps_text(steps: int | None) -> str:
    return "?" if steps is None else f"{int(steps):,}"


def fit_text(x: float | None) -> str:
    return "none" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _parse_ref(ref: str | None) -> tuple[int, int] | None:
    """A candidate reference as proposals record it ("1/3") or as people read it ("g1c3")."""
    m = re.fullmatch(r"\s*(?:g(\d+)c(\d+)|(\d+)/(\d+))\s*", ref or "")
    if not m:
        return None
    g, c = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
    return int(g), int(c)


def find(history: list[list[CandidateRecord]], ref: str | None) -> CandidateRecord | None:
    """The candidate a reference names, in either form, or None."""
    key = _parse_ref(ref)
    if key is None:
        return None
    return next((c for gen in history for c in gen if (c.generation, c.candidate) == key), None)


@dataclass(frozen=True)
class Measure:
    """A trusted fitness and what stands behind it."""

    fitness: float
    steps: int
    episodes: list[float]

    def variance_of_mean(self) -> float:
        """The squared standard error of the fitness from its evaluation episodes (0 with fewer than 2)."""
        n = len(self.episodes)
        if n < 2:
            return 0.0
        mean = sum(self.episodes) / n
        return sum((x - mean) ** 2 for x in self.episodes) / (n - 1) / n

    def spread(self) -> str:
        n = len(self.episodes)
        if n <= 1:
            return "1 evaluation episode"
        return f"{n} evaluation episodes, {fit_text(min(self.episodes))} to {fit_text(max(self.episodes))}"


def measures(record: CandidateRecord) -> list[Measure]:
    """The record's trusted fitness at every rung it reached, in order of env-steps."""
    return [Measure(float(r["fitness"]), int(r["env_steps"]), list(r.get("episodes") or []))
            for r in record.rungs if r.get("fitness") is not None]


def fitness_text(record: CandidateRecord) -> str | None:
    """Its fitness at every rung it reached, each with its env-steps; where it peaked before its last
    rung and then fell, that is said (the last measurement alone would hide it)."""
    ms = measures(record)
    if not ms:
        m = measure_at(record)
        return None if m is None else f"fitness {fit_text(m.fitness)} at {steps_text(m.steps)} env-steps ({m.spread()})"
    last = ms[-1]
    if len(ms) == 1:
        return f"fitness {fit_text(last.fitness)} at {steps_text(last.steps)} env-steps ({last.spread()})"
    rungs = ", ".join(f"{fit_text(m.fitness)} at {steps_text(m.steps)}" for m in ms[:-1])
    n = {len(m.episodes) for m in ms}
    each = f"{n.pop()} evaluation episodes each" if len(n) == 1 else "evaluation episodes as shown"
    rng = f"; the last {fit_text(min(last.episodes))} to {fit_text(max(last.episodes))}" if len(last.episodes) > 1 else ""
    text = (f"fitness {rungs} and {fit_text(last.fitness)} at {steps_text(last.steps)} env-steps ({each}{rng})")
    peak = max(ms, key=lambda m: m.fitness)
    if peak is not last and last.fitness < peak.fitness:
        text += (f"; it peaked at {fit_text(peak.fitness)} at {steps_text(peak.steps)} and fell to "
                 f"{fit_text(last.fitness)} at {steps_text(last.steps)}")
    return text


def measure_at(record: CandidateRecord, steps: int | None = None) -> Measure | None:
    """The record's trusted fitness at the last evaluation at or before ``steps`` env-steps (the last
    one when None); None when it has none there."""
    best = None
    for r in record.rungs:
        if r.get("fitness") is None or (steps is not None and int(r["env_steps"]) > steps):
            continue
        best = Measure(float(r["fitness"]), int(r["env_steps"]), list(r.get("episodes") or []))
    if best is None and steps is None and record.fitness is not None and not record.rungs:
        best = Measure(float(record.fitness), 0, [])  # a record without its evaluations (older runs)
    return best


@dataclass(frozen=True)
class Comparison:
    """A child's and its parent's trusted fitness at the same budget."""

    child: Measure
    parent: Measure

    @property
    def better(self) -> bool:
        return self.child.fitness > self.parent.fitness

    def text(self, child: str, parent: str, luck: SeedLuck | None = None) -> str:
        """The comparison in one line, hedged where the gap is within the evaluation's noise or, at the
        budget ``luck`` was measured at, within the luck of two training seeds."""
        same = self.child.steps == self.parent.steps
        where = f"at {steps_text(self.child.steps)} env-steps" if same else \
            f"({child} at {steps_text(self.child.steps)}, {parent} at {steps_text(self.parent.steps)} env-steps)"
        word = "better than" if self.better else "not better than"
        line = (f"compared at equal budget {where}: {child} {fit_text(self.child.fitness)}, its parent {parent} "
                f"{fit_text(self.parent.fitness)}: {word} its parent")
        se = math.sqrt(self.child.variance_of_mean() + self.parent.variance_of_mean())
        gap = abs(self.child.fitness - self.parent.fitness)
        if se > 0 and gap <= 2 * se:
            line += " (a difference within twice the evaluation episodes' standard error: too small to tell from noise)"
        elif luck is not None and luck.covers(self.child.steps) and gap < luck.gap:
            line += (f" (a gap of {fit_text(gap)}, smaller than the luck of two training seeds on this task at this "
                     f"budget, about {luck.gap:.2g}: weak evidence at best)")
        return line


def compare(child: CandidateRecord, parent: CandidateRecord | None) -> Comparison | None:
    """The child's and the parent's fitness at the larger budget both were evaluated at."""
    if parent is None:
        return None
    mine, theirs = measure_at(child), measure_at(parent)
    if mine is None or theirs is None:
        return None
    common = min(mine.steps, theirs.steps)
    a, b = measure_at(child, common), measure_at(parent, common)
    return Comparison(a, b) if a is not None and b is not None else None


# ----- like with like across the whole run
def leader(records: list[CandidateRecord]) -> CandidateRecord | None:
    """The best candidate so far compared like with like: the highest fitness at the largest budget
    any candidate was measured at (ties: the earliest). A candidate cut before that budget cannot
    lead, and its fitness is never set against another's at a larger budget."""
    ok = [(c, m) for c in records if c.status == "ok" and (m := measure_at(c)) is not None]
    if not ok:
        return None
    top = max(m.steps for _, m in ok)
    return max((cm for cm in ok if cm[1].steps == top),
               key=lambda cm: (cm[1].fitness, -cm[0].generation, -cm[0].candidate))[0]


def retrained_lines(best: CandidateRecord, records: list[CandidateRecord]) -> list[str]:
    """The other candidates of the run whose code is the best's unchanged (each trained on a seed of its
    own), each beside the best's fitness at the same env-steps: how much of the best's lead was its
    training seed's luck, read without comparing by hand."""
    out = []
    for c in records:
        if c is best or c.status != "ok" or not c.source.strip() or not same_reward(best, c):
            continue
        m = measure_at(c)
        if m is None:
            continue
        line = f"{c.label} {fit_text(m.fitness)} at {steps_text(m.steps)} env-steps"
        theirs = measure_at(best, m.steps)
        if theirs is not None and theirs.steps == m.steps:
            line += f" ({best.label} {fit_text(theirs.fitness)} there)"
        out.append(line)
    return out


def rung_band(records: list[CandidateRecord], steps: int) -> str | None:
    """How far apart this run's fitnesses at ``steps`` env-steps lie (at least three of them): where most
    candidates sit in one narrow band, the order there says little about what each reward teaches."""
    fits = sorted(m.fitness for c in records if c.status == "ok" for m in measures(c) if m.steps == steps)
    if len(fits) < 3:
        return None
    return (f"this run's {len(fits)} fitnesses there range from {fit_text(fits[0])} to {fit_text(fits[-1])}, "
            f"median {fit_text(statistics.median(fits))}")


def budget_leaders(records: list[CandidateRecord], most: int = 6) -> list[str]:
    """For each budget at which several candidates were evaluated: the highest fitness there and whose."""
    at: dict[int, list[tuple[float, CandidateRecord]]] = {}
    for c in records:
        if c.status != "ok":
            continue
        for m in measures(c):
            at.setdefault(m.steps, []).append((m.fitness, c))
    shared = sorted(s for s, xs in at.items() if len(xs) >= 2)[-most:]
    out = []
    for s in shared:
        fit, who = max(at[s], key=lambda x: x[0])
        out.append(f"at {steps_text(s)} env-steps: {who.label} {fit_text(fit)} (of {len(at[s])} evaluated there)")
    return out


def noise_lines(records: list[CandidateRecord], episodes: int | None, reference: bool = False) -> list[str]:
    """How much a fitness here can move by chance, from what the run measured: the evaluation episodes'
    standard error, and retrainings on other seeds where the run has any (never a number it lacks; with
    ``reference``, the task's earlier measurement, stated with the task, gives the seed's scale)."""
    ses = []
    for c in records:
        for m in measures(c):
            if len(m.episodes) >= 2:
                mean = sum(m.episodes) / len(m.episodes)
                var = sum((x - mean) ** 2 for x in m.episodes) / (len(m.episodes) - 1)
                ses.append(math.sqrt(var / len(m.episodes)))
    n = episodes or (len(measures(records[0])[0].episodes) if records and measures(records[0]) else None)
    count = f"{n} evaluation episode{'s' if n != 1 else ''}" if n else "its evaluation episodes"
    lines = [f"Each fitness is the mean of {count} of a policy trained on one seed (each candidate its own "
             "seed; every policy evaluated from the same starts)."]
    if ses:
        ses.sort()
        median = ses[len(ses) // 2]
        lines.append(f"From its evaluation episodes alone a fitness here is uncertain by about +-{median:.2g} (the "
                     f"median standard error of the mean over this run's {len(ses)} evaluations with several "
                     "episodes; each candidate's episode range is shown beside its fitness).")
    retrained = [c for c in records if c.retrained]
    repeats = repeated_rewards(records)
    if repeats and not retrained:
        lines.append("Training the same reward on another seed can move it far more than the evaluation's "
                     "uncertainty above (which leaves the training seed out): in this run the same reward, trained "
                     "again on a new seed, gave " + "; ".join(repeats) + ".")
    elif retrained:
        c = max(retrained, key=lambda r: len(r.retrained))
        vals = ", ".join(fit_text(x) for x in c.retrained)
        lines.append(f"Training on another seed moves it more: {c.label} ({fit_text(c.fitness)} on its own training "
                     f"seed) scored {vals} when retrained at the full budget on {len(c.retrained)} other seeds."
                     + (" The same reward trained again in this run gave " + "; ".join(repeats) + "." if repeats else ""))
    else:
        lines.append("Training the same reward on another seed can move it further, often far more than the "
                     "evaluation's uncertainty above (which leaves the training seed out): a difference many times "
                     "that uncertainty can still be the seed's luck; this run has retrained no reward on other "
                     "seeds" + (", so the spread to expect is the one measured on this task before (the ± in "
                                "the task's 'For scale' line)." if reference else ", so by how much is not "
                                "measured here."))
    return lines


def repeated_rewards(records: list[CandidateRecord]) -> list[str]:
    """Each reward that more than one candidate of the run trained (``same_reward``), its fitnesses side by
    side at the largest budget all of them reached: the run's own measure of the training seed's luck."""
    groups: list[list[CandidateRecord]] = []
    for c in records:
        if c.status != "ok" or not c.source.strip() or not measures(c):
            continue
        group = next((g for g in groups if same_reward(g[0], c)), None)
        if group is None:
            groups.append([c])
        else:
            group.append(c)
    out = []
    for group in groups:
        if len(group) < 2:
            continue
        common = min(measures(c)[-1].steps for c in group)
        at = [(c, measure_at(c, common)) for c in group]
        out.append(" and ".join(f"{c.label} {fit_text(m.fitness)}" for c, m in at if m is not None)
                   + f" at {steps_text(common)} env-steps")
    return out


def rank_flip(records: list[CandidateRecord]) -> str | None:
    """A pair of candidates whose order at their first common rung reversed at a later one, from this
    run's own records (the largest reversal), or None when no order reversed."""
    best = None
    ok = [c for c in records if c.status == "ok" and len(measures(c)) >= 2]
    for i, a in enumerate(ok):
        for b in ok[i + 1:]:
            ma, mb = {m.steps: m.fitness for m in measures(a)}, {m.steps: m.fitness for m in measures(b)}
            common = sorted(set(ma) & set(mb))
            if len(common) < 2:
                continue
            first, last = common[0], common[-1]
            d0, d1 = ma[first] - mb[first], ma[last] - mb[last]
            if d0 * d1 < 0:
                behind, ahead = (a, b) if d0 < 0 else (b, a)
                size = abs(d1)
                if best is None or size > best[0]:
                    fb, fa = (ma, mb) if behind is a else (mb, ma)
                    best = (size, f"{behind.label} was behind {ahead.label} at {steps_text(first)} env-steps "
                                  f"({fit_text(fb[first])} against {fit_text(fa[first])}) and ahead at "
                                  f"{steps_text(last)} ({fit_text(fb[last])} against {fit_text(fa[last])})")
    return best[1] if best else None


# ----- text blocks
def fence(text: str, lang: str = "") -> str:
    """``text`` in a Markdown code fence longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def code_block(source: str) -> str:
    text = source.strip()
    if len(text) > CODE_LIMIT:  # only code far longer than any reward needs; cut at a line's end
        keep = text.rfind("\n", 0, CODE_LIMIT)
        keep = keep if keep > 0 else CODE_LIMIT
        text = text[:keep] + f"\n# ... [cut: {len(text) - keep} more characters of this code]"
    return fence(text, "python")


def diff_lines(parent: CandidateRecord, child: CandidateRecord) -> list[str]:
    return list(difflib.unified_diff(parent.source.strip().splitlines(), child.source.strip().splitlines(),
                                     fromfile=parent.label, tofile=child.label, n=2, lineterm=""))


@functools.lru_cache(maxsize=256)
def _program(source: str) -> str | None:
    """``source``'s syntax tree as text (comments and layout gone), None when it does not parse; each
    source is parsed once however many candidates it is compared with."""
    from rewardgen.contract.syntax import parse

    try:
        return ast.dump(parse(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def same_reward(a: CandidateRecord, b: CandidateRecord) -> bool:
    """Whether two candidates' code is the same program: identical, or different only in comments and
    layout (the same syntax tree); code that does not parse counts as the same only when identical."""
    if a.source.strip() == b.source.strip():
        return True
    tree = _program(a.source)
    return tree is not None and tree == _program(b.source)


def change_block(child: CandidateRecord, parent: CandidateRecord | None) -> str:
    """What the child changed: a unified diff against its parent, or its code when it has none (whole:
    a change that does not fit is left out by the caller, never cut in the middle)."""
    if parent is None or not parent.source.strip():
        return "Its code:\n" + code_block(child.source)
    lines = diff_lines(parent, child)
    if not lines:
        return f"Its code is identical to {parent.label}'s."
    if same_reward(parent, child):
        return f"Its code differs from {parent.label}'s only in comments and layout: the same reward."
    return f"What it changed from {parent.label} (unified diff):\n" + fence("\n".join(lines), "diff")


def _pick(points: list, n: int) -> list:
    if len(points) <= n:
        return list(points)
    idx = sorted({round(i * (len(points) - 1) / (n - 1)) for i in range(n)})
    return [points[i] for i in idx]


def component_block(stats: dict, ends_early: bool) -> str | None:
    """A table of each component's batch mean through training (a few points), its range and its share
    of the reward's magnitude, then one line per fact worth knowing. Names from the code are shown only
    as plain identifiers."""
    comps: dict[str, list[dict]] = stats.get("components") or {}
    if not comps:
        return None
    facts = {f.name: f for f in component_facts(stats)}
    names = {name: llm_name(name, f"component_{i}") for i, name in enumerate(comps)}
    first = next(iter(comps.values()))
    steps = [p["step"] for p in _pick(first, TABLE_POINTS)]
    width = max(9, *(len(n) for n in names.values())) + 2
    head = "component".ljust(width) + "".join(f" {_k(s):>10}" for s in steps) + f"  {'min..max':<21}{'share':>6}"
    rows = [head]
    notes = []
    for name, points in comps.items():
        f = facts.get(name)
        if f is None:
            continue
        shown = _pick(points, TABLE_POINTS)
        rows.append(names[name].ljust(width) + "".join(f" {p['mean']:>10.4g}" for p in shown)
                    + f"  {f'{f.min:.3g}..{f.max:.3g}':<21}{f'{100 * f.share:.0f}%':>6}")
        if f.constant:
            notes.append(f"{names[name]} is constant per step ({f.min:.3g}): "
                         + ("episodes end early on this task, so it pays for living longer (it works through "
                            "episode length)." if ends_early else
                            "every episode runs to the time limit here, so it changes nothing the policy can choose."))
        if f.dominant and not f.constant:
            notes.append(f"{names[name]} makes up {100 * f.share:.0f}% of the reward's magnitude and varies: the other "
                         "terms barely move the return beside it.")
        elif f.dominant:
            notes.append(f"{names[name]} makes up {100 * f.share:.0f}% of the reward's magnitude: its size against the "
                         "others sets how much " + ("living longer is worth beside the goal." if ends_early else
                                                    "nothing; the varying terms are all the policy can act on."))
    if any(names[n] != n for n in comps):
        notes.append("(component_N: a name from the code that is not a plain identifier is not shown)")
    block = fence("\n".join(rows), "text")
    return block + ("\n" + "\n".join(f"- {n}" for n in notes) if notes else "")


def _k(step: int) -> str:
    return f"{step / 1000:.0f}k" if step >= 10_000 else str(step)


def episode_block(stats: dict) -> str | None:
    rows = stats.get("episodes") or []
    if not rows:
        return None
    # the share that the termination rules ended, where any did (runs recorded before it was kept have none)
    early = all("ended_early" in r for r in rows) and any(r["ended_early"] > 0 for r in rows)
    out = [f"{'env-steps':>10} {'episodes':>9} {'length':>8} {'return':>10} {'fitness':>9}"
           + (f" {'ended early':>11}" if early else "")]
    for r in _pick(rows, TABLE_POINTS):
        out.append(f"{r['step']:>10,} {r['episodes']:>9} {r['length']:>8.1f} {r['return']:>10.4g} {r['fitness']:>9.4g}"
                   + (f" {r['ended_early']:>11.0%}" if early else ""))
    return fence("\n".join(out), "text")


def _span(values: list[float], spec: str) -> str:
    """"a to b" over the shown episodes, or one figure where they round alike ("+0.10 to +0.10" read as
    a typo)."""
    lo, hi = format(min(values), spec), format(max(values), spec)
    return lo if lo == hi else f"{lo} to {hi}"


def behaviour_line(stats: dict, task: Task, horizon: int) -> str | None:
    """One line on what the policy did in the trusted episodes (rewardgen's own measurements)."""
    trajectories = stats.get("trajectories") or {}
    episodes = [t.get("facts") or {} for t in trajectories.values() if isinstance(t, dict)]
    episodes = [f for f in episodes if f.get("length") is not None]
    if not episodes:
        return None
    parts = []
    ended = [f for f in episodes if f.get("terminated") and int(f["length"]) < horizon]
    if not ended:
        parts.append(f"every shown episode ran to the time limit ({horizon} steps)")
    else:
        def why(f: dict) -> str:
            rules = f.get("ended_by") or []
            return f"step {int(f['length'])}" + (f" ({'; '.join(rules)})" if rules else "")
        parts.append("ended early by the termination rules at " + " and ".join(why(f) for f in ended)
                     + (f" (others ran to {horizon})" if len(ended) < len(episodes) else ""))
    body = episodes[0].get("main_body") or "main body"
    if all("height_mean" in f for f in episodes):
        lo, hi = min(f["height_min"] for f in episodes), max(f["height_max"] for f in episodes)
        mean = sum(f['height_mean'] for f in episodes) / len(episodes)
        parts.append(f"{body} height {lo:.2f}-{hi:.2f} m (mean {mean:.2f})")
    if all("max_tilt_deg" in f for f in episodes):
        tilt_body = episodes[0].get("tilt_body") or body
        up = max(float(f.get("upside_down_fraction") or 0.0) for f in episodes)
        most = max(episodes, key=lambda f: f["max_tilt_deg"])
        turning = task.fitness.get("name") in TURNING_FITNESSES
        parts.append(f"{tilt_body} tilted at most {tilt_text(most, turning)}"
                     + (f", {turned_text(f'up to {up:.0%}', turning)} of an episode" if up > 0 else ""))
    facts = behaviour_facts(trajectories, task)
    falls = [f for f in episodes if f.get("falls") and f.get("falls_matter", True)]
    if falls and task.fitness.get("name") not in TURNING_FITNESSES:
        parts.append(f"{episodes[0].get('tilt_body') or body} fell (first at step "
                     + ", ".join(str(f.get("first_fall_step")) for f in falls) + ")")
    if all("displacement" in f for f in episodes):
        dx = [f["displacement"][0] for f in episodes]
        sp = [f["mean_speed_x"] for f in episodes]
        parts.append(f"centre of mass moved {_span(dx, '+.2f')} m along x ({_span(sp, '+.2f')} m/s)")
    stalled = [float(f.get("stalled_fraction") or 0.0) for f in episodes if "stalled_fraction" in f]
    if stalled and max(stalled) > 0:
        parts.append(f"its centre of mass stalled (moved slower than {100 * STALL_SPEED:.0f} cm/s over "
                     f"{STALL_SECONDS:g} s) for up to {max(stalled):.0%} of an episode")
    if facts.stood_still:
        parts.append("it stood still to the time limit short of success")
    n = len(episodes)
    which = "its best and worst trusted episodes" if n > 1 else "its trusted episode"
    return f"What its policy did ({which}, fitness " \
           + " and ".join(fit_text(f.get("fitness")) for f in episodes) + "): " + "; ".join(parts) + "."


def request_failure(record: CandidateRecord) -> bool:
    """A candidate that never existed because an LLM request failed (refused, empty, cut): not a reward
    failure, so it is not described as one."""
    return bool((record.proposal or {}).get("failure") or (record.proposal or {}).get("fix_failure")) \
        and record.status == Stage.PROPOSAL


def header(record: CandidateRecord, parent: CandidateRecord | None, budget: int | None,
           luck: SeedLuck | None = None) -> str:
    """One line: the candidate, its parent, how its training ended, its fitness where measured, and
    its comparison with its parent (hedged by ``luck``, the task's seed luck, where known)."""
    who = f"{record.label} (child of {parent.label})" if parent else f"{record.label} (a new design)"
    if record.status != Stage.OK:
        ended: dict[str, str] = {Stage.PROPOSAL: "never became a usable reward",
                                 Stage.STATIC: "failed the static checks", Stage.CONTRACT: "broke the reward contract",
                                 Stage.RUNTIME: "failed while running", Stage.TIMEOUT: "timed out",
                                 Stage.EVALUATION: "failed its trusted evaluation"}
        stage = ended.get(record.status, f"failed ({record.status})")
        return f"{who}: {stage}"
    m = measure_at(record)
    if m is None:
        return f"{who}: no trusted fitness"
    fate = {"final": "trained the full budget" if budget is None or m.steps >= budget else "trained to the end",
            "eliminated": "cut by the schedule"}.get(record.fate or "", "trained")
    line = f"{who}: {fate}; {fitness_text(record)}"
    cmp = compare(record, parent)
    if cmp is not None and parent is not None:  # a comparison has a parent
        line += "; " + cmp.text(record.label, parent.label, luck)
    elif parent is not None:
        line += f"; its parent {parent.label} has no fitness to compare with"
    return line


def describe_candidate(record: CandidateRecord, parent: CandidateRecord | None, task: Task, ends_early: bool,
                       budget: int | None, show_change: bool = True) -> str:
    """A candidate of the newest generation, in full: a header line, then its error, its change from its
    parent (``show_change``), components, training episodes and trusted episodes."""
    parts = ["### " + header(record, parent, budget, seed_luck(task))]
    if record.status != "ok":
        parts.append("Its error:\n" + for_llm(record.error or "no error recorded"))
    if show_change and record.source.strip():
        parts.append(change_block(record, parent))
    stats = record.stats or {}
    comps = component_block(stats, ends_early)
    if comps:
        parts.append(f"Its reward components through its training, to {steps_text(record.env_steps)} env-steps "
                     "(batch mean per step at each point; range and share of the reward's magnitude over training):\n"
                     + comps)
    eps = episode_block(stats)
    if eps:
        corr = stats.get("reward_fitness_correlation")
        parts.append("Its training episodes (the exploring policy, which samples actions around its mean action: not "
                     "what the trusted fitness runs, and the two can differ a lot; mean over the episodes that ended "
                     "in each interval; fitness as the trusted measure scores them"
                     + ("; ended early: the share the termination rules ended before the time limit"
                        if "ended early" in eps else "") + "):\n" + eps
                     + (f"\nCorrelation, over all its training episodes, between an episode's return under this "
                        f"reward and its fitness: {corr:.2f} (near 1: the episodes this reward paid more for also "
                        "scored higher; near 0 or below: it paid for something the fitness does not count)."
                        if corr is not None else ""))
    hacking = (stats.get("hacking") or {}).get("message") if isinstance(stats.get("hacking"), dict) else None
    if hacking:
        parts.append(f"Warning: {hacking}.")
    line = behaviour_line(stats, task, task.episode_length)
    if line:
        parts.append(line)
    return "\n".join(parts)


def describe_older(record: CandidateRecord, parent: CandidateRecord | None, budget: int | None,
                   with_change: bool | str, task: Task | None = None) -> str:
    """A candidate of an older generation: its line, what its policy did in the trusted episodes (with
    ``task``: the newest generation's one-line summary, kept until the prompt has no room for it), and
    its change. ``with_change``: True, its whole diff (or code); "short", the change only when it has at
    most ``OLDER_CHANGE_LINES`` lines (never cut in the middle: a longer one is named by its size); False,
    the size of its change only."""
    line = "- " + header(record, parent, budget, seed_luck(task))
    if record.status != "ok":
        line += ": " + for_llm(record.error or "", limit=200)
    behaviour = behaviour_line(record.stats or {}, task, task.episode_length) if task is not None else None
    if behaviour:
        line += "\n  " + behaviour
    if with_change == "short" and record.source.strip():
        size = len(diff_lines(parent, record)) if parent is not None and parent.source.strip() else \
            len(record.source.strip().splitlines())
        if size <= OLDER_CHANGE_LINES:
            line += "\n" + change_block(record, parent)
        else:
            what = f"diff against {parent.label}" if parent is not None and parent.source.strip() else "code"
            line += f" (its {size}-line {what} is left out for length)"
    elif with_change and record.source.strip():
        line += "\n" + change_block(record, parent)
    elif record.source.strip() and parent is not None:
        changed = [line for line in diff_lines(parent, record)[2:] if line[:1] in "+-"]
        line += f" ({len(changed)} lines changed from {parent.label})"
    return line


def generation_summary(records: list[CandidateRecord]) -> str:
    ok = [c for c in records if c.status == "ok" and measure_at(c) is not None]
    if not ok:
        return f"{len(records)} candidates, none trained successfully"
    best = leader(ok)
    assert best is not None  # ok is not empty
    return f"{len(records)} candidates, {len(ok)} trained; best like with like {best.label}: {fitness_text(best)}"


__all__ = ["Comparison", "Measure", "behaviour_line", "budget_leaders", "change_block", "code_block", "compare",
           "component_block", "describe_candidate", "describe_older", "episode_block", "fence", "find",
           "fitness_text", "generation_summary", "header", "leader", "measure_at", "measures", "noise_lines",
           "rank_flip", "repeated_rewards", "request_failure", "retrained_lines", "rung_band",
           "same_reward"]
