"""Swimmer-v5: a three-link swimmer in a viscous fluid, paid for the x speed of its root (weight 1)
minus 1e-4 x the squared action; episodes never end early."""

from __future__ import annotations

from typing import Any

from rewardgen.sim.rules.base import EnvRules, GymView


class SwimmerRules(EnvRules):
    env_class = "SwimmerEnv"

    def __init__(self, env: Any):
        super().__init__(env)
        self.excl = 2 if env._exclude_current_positions_from_observation else 0
        self.w_forward = env._forward_reward_weight
        self.w_ctrl = env._ctrl_cost_weight
        self.dt = float(env.dt)

    def observation(self, xp: Any, v: GymView) -> Any:
        return xp.concat([v.qpos[:, self.excl:], v.qvel], axis=1)

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        x_velocity = (v.qpos[:, 0] - v.qpos_before[:, 0]) / self.dt
        return self.w_forward * x_velocity - self.w_ctrl * xp.sum(xp.square(v.action), axis=1)
