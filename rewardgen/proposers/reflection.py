"""Facts drawn from a candidate's training statistics, for proposers and people.

Eureka's three heuristics, made explicit and testable: a component that is near-constant carries
no signal; one that dominates the reward's magnitude drowns the others; a reward whose episode
return does not track fitness is optimising something else.
"""

from __future__ import annotations

from dataclasses import dataclass

DOMINANT_SHARE = 0.8
CONSTANT_RANGE = 1e-6


@dataclass(frozen=True)
class ComponentFacts:
    name: str
    first_mean: float
    last_mean: float
    min: float
    max: float
    share: float  # share of the summed |mean| magnitude over training
    constant: bool
    dominant: bool


def component_facts(stats: dict) -> list[ComponentFacts]:
    """One ComponentFacts per component in ``stats["components"]`` (TrainingStats.summary())."""
    comps: dict[str, list[dict]] = stats.get("components") or {}
    magnitude = {n: sum(abs(p["mean"]) for p in pts) / max(len(pts), 1) for n, pts in comps.items()}
    total = sum(magnitude.values()) or 1.0
    facts = []
    for name, points in comps.items():
        if not points:
            continue
        lo = min(p["min"] for p in points)
        hi = max(p["max"] for p in points)
        share = magnitude[name] / total
        facts.append(ComponentFacts(
            name=name, first_mean=points[0]["mean"], last_mean=points[-1]["mean"], min=lo, max=hi,
            share=share, constant=(hi - lo) < CONSTANT_RANGE,
            dominant=len(comps) > 1 and share > DOMINANT_SHARE,
        ))
    return facts


def component_table(stats: dict) -> str:
    """A plain-text table of component means through training (one row per component)."""
    comps: dict[str, list[dict]] = stats.get("components") or {}
    if not comps:
        return "(no component statistics)"
    steps = [p["step"] for p in next(iter(comps.values()))]
    head = "component".ljust(14) + "".join(f"{s:>11}" for s in steps)
    rows = [head]
    for name, points in comps.items():
        rows.append(name[:14].ljust(14) + "".join(f"{p['mean']:>11.4g}" for p in points))
    return "\n".join(rows)
