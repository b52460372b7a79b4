"""``debug_reward``: what a reward actually pays for, measured on rollouts, with flagged defects.

The reward runs only inside a sandboxed worker (``rewardgen.inspect.debug_worker`` through
``rewardgen.procs.run_worker``), on rollouts of a random policy and, when given, a trained policy.
The worker sends raw per-step values back (every component, the total, and the trusted per-step
fitness computed from the same State *before* the reward was called); all the analysis below runs
here, in the orchestrator, on plain arrays.

Per component (over all steps of all rollouts):

- ``mean``, ``std``, ``min``, ``max`` of the finite values; ``nonfinite``: count of NaN/inf;
- ``share``: its mean |value| over the sum of all components' mean |value|;
- ``constant_fraction``: fraction of steps whose value equals the previous step's value
  (same episode; the first step of an episode is not counted);
- ``corr_step``: Pearson correlation with the trusted per-step fitness, pooled over all steps
  (None when either side has no variance, e.g. ``alive_fraction`` whose per-step value is 1);
- ``corr_episode``: Pearson correlation across episodes between the component's episode sum and the
  episode's trusted fitness value (``Fitness.episode_value``); None with fewer than 3 episodes.

"The correlation" used by flags is ``corr_step`` when it is defined, else ``corr_episode``.

Flags (``Flag.code``), each with a one-line explanation:

- ``dominant``: one component carries more than 80% of the summed magnitude (with 2+ components).
- ``constant``: a component unchanged from the previous step on 99% or more of steps.
- ``nonfinite``: a component (or the total) produced NaN or inf.
- ``wrong_sign``: a component named like a penalty (ctrl, cost, penalty, energy, torque, effort,
  jerk, ...) that is positive on average; or any positive-on-average component (share >= 5%) whose
  correlation with the fitness is below -0.5, i.e. it pays for something the fitness punishes.
- ``unbounded_growth``: the component's mean |value| grows steadily with the episode step and is
  still growing at the end, in the episodes that ran to their last step (each in tenths of its own
  length, episodes weighed alike: Spearman rank correlation > 0.9, the last tenth 3x the first and
  1.4x the middle one).
- ``scale``: the largest component's mean |value| is more than 100x another's (that one has
  practically no influence).
- ``anti_correlated``: the total reward's correlation with the fitness is below -0.3.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rewardgen.contract.job import WorkerJob
from rewardgen.contract.policy import PolicyExport, PolicyFormatError, load_npz
from rewardgen.errors import UserError
from rewardgen.procs import WorkerLimits, run_worker
from rewardgen.stats import pearson
from rewardgen.tasks.spec import Task, space_dims

DOMINANT_SHARE = 0.8
CONSTANT_FRACTION = 0.99
SCALE_RATIO = 100.0
ANTI_CORRELATION = -0.3
WRONG_SIGN_CORRELATION = -0.5
GROWTH_RANK_CORRELATION = 0.9
GROWTH_RATIO = 3.0
#: and the last tenth at least this times the middle one: a policy speeding up from rest and then
#: holding its pace (forward velocity) rises in the first half only; a term that grows with the step
#: (a time bonus, a position) still grows in the second (linear growth: 1.7x)
LATE_GROWTH_RATIO = 1.4
MIN_GROWTH_STEPS = 20
PENALTY_WORDS = ("ctrl", "control", "cost", "penalty", "penalties", "energy", "torque", "effort", "jerk",
                 "action_rate", "smooth", "power", "work", "collision", "pain", "punish")
_PENALTY = re.compile("|".join(re.escape(w) for w in PENALTY_WORDS), re.IGNORECASE)
DEBUG_LIMITS = WorkerLimits(wall_seconds=300.0, memory_bytes=4 * 1024**3, output_bytes=64 * 1024)


class DebugError(RuntimeError):
    """The reward could not be run (static refusal, crash, contract violation); message for the user."""

    def __init__(self, message: str, stage: str = "runtime", traceback: str | None = None):
        super().__init__(message)
        self.stage = stage
        self.traceback = traceback


@dataclass
class ComponentStats:
    name: str
    mean: float
    std: float
    min: float
    max: float
    share: float
    constant_fraction: float
    nonfinite: int
    corr_step: float | None
    corr_episode: float | None
    growth: float | None  # last-bin / first-bin mean |value| over episode step, None if too few steps
    abs_mean: float = 0.0
    mean_by_kind: dict[str, float] = field(default_factory=dict)

    @property
    def corr(self) -> float | None:
        return self.corr_step if self.corr_step is not None else self.corr_episode


@dataclass
class Flag:
    code: str
    component: str | None
    message: str


@dataclass
class DebugReport:
    task: str
    fitness: str
    episodes: list[dict]
    steps: int
    components: list[ComponentStats]
    total: ComponentStats
    flags: list[Flag]
    rollouts: list[str]
    isolation: list[str] = field(default_factory=list)  # sandbox layers active in the worker

    def flagged(self, code: str, component: str | None = None) -> bool:
        return any(f.code == code and (component is None or f.component == component) for f in self.flags)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict: task, fitness, rollouts, steps, episodes, components, total, flags."""
        def clean(x: Any) -> Any:
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x

        return clean({
            "task": self.task, "fitness": self.fitness, "rollouts": self.rollouts, "steps": self.steps,
            "episodes": self.episodes,
            "components": [asdict(c) for c in self.components],
            "total": asdict(self.total),
            "flags": [asdict(f) for f in self.flags],
            "isolation": list(self.isolation),
        })

    def heading(self) -> str:
        """What was run: task, episodes, steps, rollouts and the fitness."""
        return (f"reward debug on {self.task}: {len(self.episodes)} episode(s), {self.steps} steps "
                f"({', '.join(self.rollouts)} rollouts); fitness {self.fitness}")

    def flag_lines(self) -> list[str]:
        """The flags, one line each under a count, or the line that says there are none."""
        if not self.flags:
            return ["no flags: nothing suspicious in these rollouts"]
        return [f"{len(self.flags)} flag(s):"] + [f"  [{f.code}] {f.message}" for f in self.flags]

    def render(self) -> str:
        """Plain-text table of the component statistics followed by the flags."""
        head = self.heading()
        cols = ["component", "mean", "std", "min", "max", "share", "const", "nan/inf", "corr(step)", "corr(ep)"]
        rows = [cols]
        for c in [*self.components, self.total]:
            rows.append([c.name, _g(c.mean), _g(c.std), _g(c.min), _g(c.max),
                         "-" if c is self.total else f"{100 * c.share:.0f}%", f"{100 * c.constant_fraction:.0f}%",
                         str(c.nonfinite), _g(c.corr_step, 2), _g(c.corr_episode, 2)])
        widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
        lines = [head, ""]
        for k, r in enumerate(rows):
            lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.append("")
        lines.extend(self.flag_lines())
        return "\n".join(lines)


def _g(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}"


# ------------------------------------------------------------------------------------------------
# running the reward (sandboxed)
# ------------------------------------------------------------------------------------------------

class PolicyMismatch(UserError):
    """A policy whose observation or action size is not the task's (e.g. a policy of another task)."""


def check_policy_fits(policy: PolicyExport, task: Task) -> None:
    """PolicyMismatch (one line) unless ``policy`` maps the task's observations to its actions; checked
    in this process before any worker starts, so the reward is never blamed for a wrong policy."""
    env = task.make_env()
    try:
        obs_dim, act_dim = space_dims(env)
    finally:
        env.close()
    try:
        policy.validate(obs_dim=obs_dim, act_dim=act_dim)
    except PolicyFormatError as exc:
        raise PolicyMismatch(f"the policy does not fit task {task.id}: {exc} (is it a policy of another task?)") from None


def debug_reward(source: str, task: Task, policy: PolicyExport | None = None, episodes: int = 5, seed: int = 0,
                 *, max_steps: int | None = None, limits: WorkerLimits | None = None,
                 job_extra: dict[str, Any] | None = None) -> DebugReport:
    """Run ``source`` in a sandboxed worker on random (and, if given, policy) rollouts and analyse it.

    ``max_steps`` caps each episode (default: the task's episode length). Raises ``DebugError`` when
    the reward cannot run (the message names the stage and the cause). ``job_extra`` adds worker job
    keys (tests use ``{"validate": False}`` to exercise the runtime sandbox layers).
    """
    policy_b64 = None
    if policy is not None:
        check_policy_fits(policy, task)
        policy_b64 = base64.b64encode(policy.to_bytes()).decode("ascii")
    job = WorkerJob.from_dict({"mode": "debug", "task": task.to_dict(), "source": source, "episodes": int(episodes),
                               "seed": int(seed), "max_steps": int(max_steps) if max_steps else None,
                               "policy_b64": policy_b64, **(job_extra or {})})
    res = run_worker(job, limits or DEBUG_LIMITS, module="rewardgen.inspect.debug_worker")
    if not res.ok or res.result is None or res.payload is None:
        raise DebugError(f"the reward could not be debugged ({res.stage}): {res.error or 'no data returned'}",
                         stage=res.stage, traceback=res.traceback)
    report = analyse(res.result, _load_arrays(res.payload), task)
    report.isolation = list(res.isolation)
    return report


def _load_arrays(payload: bytes) -> dict[str, np.ndarray]:
    from rewardgen.procs.frames import MAX_POLICY_BYTES

    return {k: np.asarray(v, dtype=np.float64) for k, v in load_npz(payload, MAX_POLICY_BYTES, 100_000).items()}


# ------------------------------------------------------------------------------------------------
# analysis (plain arrays; testable without a worker)
# ------------------------------------------------------------------------------------------------

def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    def rank(v: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(float)

    return pearson(rank(a), rank(b))


def _episodes_of(meta: dict, arrays: dict[str, np.ndarray]) -> list[dict]:
    names = list(meta.get("components", []))
    eps = []
    for i, m in enumerate(meta.get("episodes", [])):
        n = len(arrays.get(f"{i}/total", []))
        comps = {}
        for k, name in enumerate(names):
            v = arrays.get(f"{i}/c/{k}")
            comps[name] = v if v is not None and len(v) == n else np.full(n, np.nan)
        eps.append(dict(m, total=arrays.get(f"{i}/total", np.zeros(0)),
                        fitness_steps=arrays.get(f"{i}/fitness", np.zeros(0)),
                        components=comps))
    return eps


def _stats(name: str, eps: list[dict], get, share: float) -> ComponentStats:
    values = [np.asarray(get(e), dtype=np.float64) for e in eps]
    allv = np.concatenate(values) if values else np.zeros(0)
    finite = allv[np.isfinite(allv)]
    same = total_pairs = 0
    for v in values:
        if len(v) > 1:
            prev, cur = v[:-1], v[1:]
            same += int(np.sum((cur == prev) | (np.abs(cur - prev) <= 1e-9 * (1 + np.abs(prev)))))
            total_pairs += len(v) - 1
    fit = np.concatenate([e["fitness_steps"] for e in eps]) if eps else np.zeros(0)
    ep_sums = np.asarray([np.nansum(v) if len(v) else 0.0 for v in values])
    ep_fit = np.asarray([float(e["fitness"]) for e in eps])
    by_kind: dict[str, list[np.ndarray]] = {}
    for e, v in zip(eps, values):
        by_kind.setdefault(e["kind"], []).append(v)
    mean_by_kind = {}
    for k, vs in by_kind.items():
        cat = np.concatenate(vs)
        cat = cat[np.isfinite(cat)]
        mean_by_kind[k] = float(cat.mean()) if len(cat) else float("nan")
    return ComponentStats(
        name=name,
        mean=float(finite.mean()) if len(finite) else float("nan"),
        std=float(finite.std()) if len(finite) else float("nan"),
        min=float(finite.min()) if len(finite) else float("nan"),
        max=float(finite.max()) if len(finite) else float("nan"),
        share=share,
        constant_fraction=same / total_pairs if total_pairs else (1.0 if len(allv) else 0.0),
        nonfinite=int((~np.isfinite(allv)).sum()),
        corr_step=pearson(allv, fit) if len(allv) == len(fit) else None,
        corr_episode=pearson(ep_sums, ep_fit) if len(eps) >= 3 else None,
        growth=_growth(values)[1],
        abs_mean=float(np.abs(finite).mean()) if len(finite) else 0.0,
        mean_by_kind=mean_by_kind,
    )


def _growth(values: list[np.ndarray]) -> tuple[float | None, float | None, float | None]:
    """(Spearman of binned mean |value| vs episode step, last-bin / first-bin and last-bin / middle-bin
    mean |value|), or Nones when no episode is long enough.

    Each episode is binned over its own length (tenths of it), so episodes of different lengths weigh
    alike in every bin: pooled by absolute step, short episodes (random rollouts that fall at once) fill
    the first bins only and any term that is larger in the long ones would seem to grow with the step."""
    long = [v for v in values if len(v) >= MIN_GROWTH_STEPS]
    if not long:
        return None, None, None
    bins = 10
    sums, counts = np.zeros(bins), np.zeros(bins)
    for v in long:
        a = np.abs(v)
        idx = np.minimum((np.arange(len(v)) * bins) // len(v), bins - 1)
        ok = np.isfinite(a)
        np.add.at(sums, idx[ok], a[ok] / max(1, len(v)))  # each episode weighs the same in every bin
        np.add.at(counts, idx[ok], 1.0 / max(1, len(v)))
    have = counts > 0
    if have.sum() < 5:
        return None, None, None
    means = sums[have] / counts[have]
    rho = _spearman(np.arange(bins)[have], means)
    first, middle, last = means[0], means[len(means) // 2], means[-1]

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 1e-12 else (math.inf if a > 1e-9 else 1.0)

    return rho, ratio(last, first), ratio(last, middle)


def analyse(meta: dict, arrays: dict[str, np.ndarray], task: Task | None = None) -> DebugReport:
    """Statistics and flags from the worker's raw data (see the module docstring for definitions)."""
    eps = _episodes_of(meta, arrays)
    names = list(meta.get("components", []))
    magnitude = {}
    for n in names:
        cat = np.concatenate([np.abs(e["components"][n]) for e in eps]) if eps else np.zeros(0)
        cat = cat[np.isfinite(cat)]
        magnitude[n] = float(cat.mean()) if len(cat) else 0.0
    total_mag = sum(magnitude.values())
    comps = [_stats(n, eps, lambda e, n=n: e["components"][n], magnitude[n] / total_mag if total_mag > 0 else 0.0)
             for n in names]
    total = _stats("(total)", eps, lambda e: e["total"], 1.0)
    flags = _flags(comps, total, eps)
    return DebugReport(
        task=task.id if task else str(meta.get("task", "")),
        fitness=str(meta.get("fitness_name", task.fitness["name"] if task else "")),
        episodes=[{k: e[k] for k in ("kind", "episode", "seed", "length", "terminated", "fitness") if k in e}
                  for e in eps],
        steps=int(sum(len(e["total"]) for e in eps)),
        components=comps, total=total, flags=flags,
        rollouts=sorted({e["kind"] for e in eps}, key=lambda k: (k != "random", k)),
    )


def _flags(comps: list[ComponentStats], total: ComponentStats, eps: list[dict]) -> list[Flag]:
    flags: list[Flag] = []
    for c in comps:
        if len(comps) > 1 and c.share > DOMINANT_SHARE:
            flags.append(Flag("dominant", c.name,
                              f"'{c.name}' carries {100 * c.share:.0f}% of the reward's magnitude: the other "
                              f"components barely matter to the policy"))
        if c.constant_fraction >= CONSTANT_FRACTION:
            flags.append(Flag("constant", c.name,
                              f"'{c.name}' is constant ({_g(c.mean)}) on {100 * c.constant_fraction:.0f}% of steps: "
                              f"it gives no per-step signal (at most it pays for staying alive)"))
        if c.nonfinite:
            flags.append(Flag("nonfinite", c.name,
                              f"'{c.name}' produced {c.nonfinite} NaN/inf value(s): training would reject or "
                              f"be destroyed by them"))
        penalty_named = bool(_PENALTY.search(c.name))
        corr = c.corr
        if penalty_named and c.mean > 0 and c.max > 0:
            flags.append(Flag("wrong_sign", c.name,
                              f"'{c.name}' is named like a penalty but is positive on average ({_g(c.mean)}): "
                              f"it pays the policy for what it should cost"))
        elif (c.mean > 0 and c.share >= 0.05 and corr is not None and corr < WRONG_SIGN_CORRELATION):
            flags.append(Flag("wrong_sign", c.name,
                              f"'{c.name}' is positive on average ({_g(c.mean)}) but correlates {corr:+.2f} with "
                              f"the fitness: it pays for something the fitness punishes"))
        # only episodes that reached their last step have late steps to outweigh the rest: one the env
        # ended (a hopper that sped up until it fell) says nothing about them
        values = [np.asarray(e["components"][c.name]) for e in eps if not e.get("terminated")]
        rho, ratio, late = _growth(values)
        # still growing in the second half: not a start-up that levels off
        if (rho is not None and ratio is not None and late is not None and rho > GROWTH_RANK_CORRELATION
                and ratio >= GROWTH_RATIO and late >= LATE_GROWTH_RATIO):
            flags.append(Flag("unbounded_growth", c.name,
                              f"'{c.name}' grows steadily with the episode step (|value| x{min(ratio, 1e9):.3g} from "
                              f"the first to the last tenth of the episode): late steps outweigh everything"))
    live = [c for c in comps if c.abs_mean > 1e-12]
    if len(live) >= 2:
        mags = {c.name: c.abs_mean for c in live}
        big = max(mags, key=lambda name: mags[name])
        for c in live:
            if c.name != big and mags[big] > SCALE_RATIO * mags[c.name]:
                flags.append(Flag("scale", c.name,
                                  f"'{c.name}' is {mags[big] / mags[c.name]:.0f}x smaller than '{big}' (mean |value| "
                                  f"{_g(mags[c.name])} vs {_g(mags[big])}): it has practically no influence"))
    if total.nonfinite:
        flags.append(Flag("nonfinite", None, f"the total reward produced {total.nonfinite} NaN/inf value(s)"))
    corr = total.corr
    if corr is not None and corr < ANTI_CORRELATION:
        which = "per step" if total.corr_step is not None else "per episode"
        flags.append(Flag("anti_correlated", None,
                          f"the total reward correlates {corr:+.2f} ({which}) with the trusted fitness: "
                          f"maximising it works against the task"))
    return flags


def main() -> None:  # pragma: no cover - python -m rewardgen.inspect.debug FILE --task T
    import argparse
    from pathlib import Path

    from rewardgen.tasks.spec import get_task

    p = argparse.ArgumentParser(prog="python -m rewardgen.inspect.debug", allow_abbrev=False)
    p.add_argument("file", type=Path)
    p.add_argument("--task", required=True)
    p.add_argument("--policy", type=Path)
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    policy = PolicyExport.from_bytes(a.policy.read_bytes()) if a.policy else None
    report = debug_reward(a.file.read_text(), get_task(a.task), policy, a.episodes, max_steps=a.max_steps)
    print(json.dumps(report.to_json()) if a.json else report.render())


if __name__ == "__main__":  # pragma: no cover
    main()
