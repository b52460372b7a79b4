"""What HalfCheetah-v5 and Swimmer-v5 share: a planar body paid for its root's x speed minus the
squared action, whose episodes never end early; the observation leaves out the root's position."""

from __future__ import annotations

from typing import Any

from rewardgen.sim.rules.base import EnvRules, GymView


class ForwardRunnerRules(EnvRules):
    """``position_dims``: how many leading ``qpos`` entries (the root's position) the observation
    leaves out when the env excludes current positions."""

    position_dims = 1

    def __init__(self, env: Any):
        super().__init__(env)
        self.excl = self.position_dims if env._exclude_current_positions_from_observation else 0
        self.w_forward = env._forward_reward_weight
        self.w_ctrl = env._ctrl_cost_weight
        self.dt = float(env.dt)

    def observation(self, xp: Any, v: GymView) -> Any:
        return xp.concat([v.qpos[:, self.excl:], v.qvel], axis=1)

    def reward_text(self) -> str:
        return (f"{self.w_forward:g} x the root's forward speed (its x change over the step / dt) "
                f"- {self.w_ctrl:g} x the sum of squared actions")

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        x_velocity = (v.qpos[:, 0] - v.qpos_before[:, 0]) / self.dt
        return self.w_forward * x_velocity - self.w_ctrl * xp.sum(xp.square(v.action), axis=1)
