"""Facts drawn from a candidate's training statistics and trusted episodes, for proposers and people.

Eureka's three heuristics, made explicit and testable, with the fact each depends on: a component
that is constant per step carries no signal of its own, but where episodes end early (a fall ends
them) a constant positive term still pays for living longer, through episode length, so it is only
flagged, never called useless (``rewardgen.proposers.history`` says which applies to the task); one
that dominates the reward's magnitude drowns the others; a reward whose episode return does not track
fitness is optimising something else. Two more come from what the policy did
in the trusted evaluator's episodes (``rewardgen.evaluate.trajectory``'s facts), where reward code
cannot reach: it spent a large share of an episode upside-down (flipped over), or it lived to the
time limit mostly standing still without reaching success (paid for surviving, not for the goal).
"""

from __future__ import annotations

from dataclasses import dataclass

from rewardgen.tasks.fitness import MOVING_FITNESSES, TURNING_FITNESSES
from rewardgen.tasks.spec import Task

DOMINANT_SHARE = 0.8
CONSTANT_RANGE = 1e-6
#: an episode spent at least this share of its steps upside-down counts as "flipped over"
FLIPPED_SHARE = 0.25
#: an episode that ran to its time limit and stalled at least this share of it "stood still"
STILL_SHARE = 0.5


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


@dataclass(frozen=True)
class BehaviourFacts:
    """What a policy did in its summarised trusted episodes (the evaluation's best and worst)."""

    #: the largest share of an episode spent upside-down
    upside_down: float
    #: an episode ran to its time limit, stalled at least ``STILL_SHARE`` of it, and missed success
    stood_still: bool
    #: the body whose uprightness the facts measure (the main body, or the body that tilts where it cannot)
    tilt_body: str | None = None

    @property
    def flipped(self) -> bool:
        return self.upside_down >= FLIPPED_SHARE


def behaviour_facts(trajectories: dict | None, task: Task) -> BehaviourFacts:
    """``BehaviourFacts`` of an evaluation's ``trajectories`` (``{"best": {"facts": ...}, "worst": ...}``).

    Standing still counts only where the task's fitness needs the body to move (``MOVING_FITNESSES``):
    a fixed-base arm's centre of mass always "stalls". Flipping over never counts where the fitness
    turns the body (``TURNING_FITNESSES``): turning over is the flip's task, and rising from lying turns
    the stand-up humanoid's torso past horizontal (read as upside-down, it raised the control cost and
    the torso's upright term, which pays for lying on its back). Nor where the robot's main body did not
    tilt (a fixed-base arm, a cart): the episode facts then watch the most tilted link, and an arm's
    forearm pointing down is a pose, not a fall (the pusher's reflection raised its control cost for it).
    """
    episodes = [t.get("facts") or {} for t in (trajectories or {}).values() if isinstance(t, dict)]
    # where the fitness turns the body (a flip, rising from lying), being upside-down is the task, not a fall
    turning = task.fitness.get("name") in TURNING_FITNESSES
    upside = 0.0 if turning else max((float(f.get("upside_down_fraction") or 0.0) for f in episodes
                                       if f.get("tilt_body", f.get("main_body")) == f.get("main_body")), default=0.0)
    success_threshold = task.success_threshold
    moving = task.fitness.get("name") in MOVING_FITNESSES
    still = moving and any(not f.get("terminated") and f.get("length") == f.get("horizon")
                and float(f.get("stalled_fraction") or 0.0) >= STILL_SHARE
                and float(f.get("fitness", success_threshold)) < success_threshold for f in episodes)
    bodies = (f.get("tilt_body") or f.get("main_body") for f in episodes)
    body = next((b for b in bodies if isinstance(b, str)), None)
    return BehaviourFacts(upside_down=upside, stood_still=still, tilt_body=body)
