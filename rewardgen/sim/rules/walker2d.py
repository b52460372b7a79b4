"""Walker2d-v5: a two-legged planar walker (the planar walker's rules as they are)."""

from __future__ import annotations

from rewardgen.sim.rules.planar_walker import PlanarWalkerRules


class Walker2dRules(PlanarWalkerRules):
    env_class = "Walker2dEnv"
