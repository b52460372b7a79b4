"""Hopper-v5: a one-legged planar hopper. Healthy also needs the root's pitch, every
joint angle and every velocity (the root's included) inside ``healthy_state_range``."""

from __future__ import annotations

from typing import Any

from rewardgen.sim.rules.base import Bound, GymView, range_of
from rewardgen.sim.rules.planar_walker import PlanarWalkerRules


class HopperRules(PlanarWalkerRules):
    env_class = "HopperEnv"

    def __init__(self, env: Any):
        super().__init__(env)
        self.health += (Bound("s.qpos[:, 2:] and s.qvel",
                              "the root's pitch and every joint angle, and every velocity, the root's included",
                              *range_of(env._healthy_state_range), False),)

    def bounded(self, xp: Any, v: GymView) -> tuple:
        return (*super().bounded(xp, v), xp.concat([v.qpos, v.qvel], axis=1)[:, 2:])
