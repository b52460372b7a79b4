"""When a task's episode ends early, as data: the bounds its env checks after every step.

The simulators end episodes by these rules and the prompt states them, so what a proposer is told
about termination is read from the same env attributes the simulators enforce (a test checks both
for every task). Quantities are named in the reward contract's own fields, so a reward can read
exactly what the rule reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco

from rewardgen.tasks.spec import Task


@dataclass(frozen=True)
class Bound:
    """One quantity an episode must keep within ``low``..``high`` to go on (None: no bound on that
    side). ``inclusive``: whether a value equal to a bound is still inside."""

    quantity: str
    meaning: str
    low: float | None
    high: float | None
    inclusive: bool
    unit: str = ""

    def inside(self) -> str:
        """The healthy range in words: 'above 0.7 m', 'between -0.2 and 0.2 rad'."""
        lt, gt = ("at most", "at least") if self.inclusive else ("below", "above")
        u = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            how = "inclusive" if self.inclusive else "exclusive"
            return f"between {_num(self.low)} and {_num(self.high)}{u} ({how})"
        if self.low is not None:
            return f"{gt} {_num(self.low)}{u}"
        return f"{lt} {_num(self.high)}{u}"


@dataclass(frozen=True)
class Termination:
    """Every rule that ends an episode of a task before its time limit.

    ``bounds``: quantities that must stay inside their ranges; ``nonfinite``: a NaN or infinite
    state ends the episode too; ``time_limit``: env steps before the episode is truncated (not a
    failure). No bounds and no ``nonfinite``: episodes always run to the time limit.
    """

    bounds: tuple[Bound, ...]
    nonfinite: bool
    time_limit: int

    @property
    def ends_early(self) -> bool:
        return bool(self.bounds) or self.nonfinite

    def describe(self) -> list[str]:
        """Plain sentences, one per rule, for a prompt or a report."""
        lines = [f"An episode lasts at most {self.time_limit} env steps (then it is truncated, not failed)."]
        if not self.ends_early:
            lines.append("Nothing ends an episode early: every episode runs to the time limit.")
            return lines
        for b in self.bounds:
            lines.append(f"The episode ends at once unless {b.meaning} ({b.quantity}) stays {b.inside()}.")
        if self.nonfinite:
            lines.append("The episode also ends if any position or velocity becomes NaN or infinite.")
        return lines


def _num(v: float) -> str:
    return f"{v:g}"


def _bound(lo: float | None, hi: float | None) -> tuple[float | None, float | None]:
    """gymnasium writes 'no bound' as +-inf."""
    return (None if lo is None or math.isinf(lo) else float(lo),
            None if hi is None or math.isinf(hi) else float(hi))


def _joint_name(model: mujoco.MjModel, qpos_index: int) -> str | None:
    for j in range(model.njnt):
        if int(model.jnt_qposadr[j]) == qpos_index and int(model.jnt_type[j]) in (
                int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE)):
            return mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
    return None


def _qpos_quantity(model: mujoco.MjModel, i: int) -> str:
    name = _joint_name(model, i)
    return f's.joint_pos["{name}"]' if name else f"s.qpos[:, {i}]"


def termination_of(task: Task) -> Termination:
    """The early-termination rules of ``task``'s env, read from the env the simulators reproduce."""
    env = task.make_env()
    try:
        u = env.unwrapped
        kind, model = type(u).__name__, u.model
        limit = int(task.episode_length)
        if kind == "InvertedPendulumEnv":
            return Termination((Bound(_qpos_quantity(model, 1), "the pole's angle from upright", -0.2, 0.2, True, "rad"),),
                               True, limit)
        if kind == "InvertedDoublePendulumEnv":
            site = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SITE, 0)
            return Termination((Bound(f's.site_pos["{site}"][:, 2]', "the height of the upper pole's tip",
                                      1.0, None, False, "m"),), False, limit)
        if not getattr(u, "_terminate_when_unhealthy", False):
            return Termination((), False, limit)
        if kind in ("HopperEnv", "Walker2dEnv"):
            bounds = [Bound(_qpos_quantity(model, 1), "the torso's height", *_bound(*u._healthy_z_range), False, "m"),
                      Bound(_qpos_quantity(model, 2), "the torso's pitch angle", *_bound(*u._healthy_angle_range),
                            False, "rad")]
            if kind == "HopperEnv":
                bounds.append(Bound("s.qpos[:, 2:] and s.qvel", "every joint angle and velocity after the root's x and z",
                                    *_bound(*u._healthy_state_range), False))
            return Termination(tuple(bounds), False, limit)
        if kind == "AntEnv":
            return Termination((Bound("s.qpos[:, 2]", "the torso's height", *_bound(*u._healthy_z_range), True, "m"),),
                               True, limit)
        if kind == "HumanoidEnv":
            return Termination((Bound("s.qpos[:, 2]", "the torso's height", *_bound(*u._healthy_z_range), False, "m"),),
                               False, limit)
        if kind == "MjcfEnv":
            body = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, int(u._healthy_body))
            return Termination((Bound(f's.body_pos["{body}"][:, 2]', f"the height of {body}",
                                      *_bound(*u._healthy_z_range), True, "m"),), True, limit)
        raise ValueError(f"the termination rules of {kind} are not known")
    finally:
        env.close()
