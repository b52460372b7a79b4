"""Swimmer-v5: a three-link swimmer in a viscous fluid, paid for the x speed of its root (weight 1)
minus 1e-4 x the squared action; episodes never end early."""

from __future__ import annotations

from rewardgen.sim.rules.forward_runner import ForwardRunnerRules


class SwimmerRules(ForwardRunnerRules):
    env_class = "SwimmerEnv"
    position_dims = 2  # root x and y
