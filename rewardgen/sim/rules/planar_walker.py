"""What Hopper-v5 and Walker2d-v5 share: a planar body (root x, z, pitch first) whose health is its
torso's height and pitch, an observation with velocities clipped to [-10, 10], and a reward for the
root's forward speed, for staying healthy and against the action's size."""

from __future__ import annotations

from typing import Any

from rewardgen.sim.rules.base import Bound, EnvRules, GymView, qpos_quantity, range_of


class PlanarWalkerRules(EnvRules):
    """Health bounds: torso height ``qpos[1]`` in ``healthy_z_range`` and pitch ``qpos[2]`` in
    ``healthy_angle_range`` (exclusive); the reward pays ``healthy_reward`` while healthy whether or
    not leaving health ends the episode (``terminate_when_unhealthy``)."""

    def __init__(self, env: Any):
        super().__init__(env)
        self.excl = 1 if env._exclude_current_positions_from_observation else 0
        self.w_forward = env._forward_reward_weight
        self.w_ctrl = env._ctrl_cost_weight
        self.healthy_reward = env._healthy_reward
        self.dt = float(env.dt)
        self.terminates = bool(env._terminate_when_unhealthy)
        self.health = (
            Bound(qpos_quantity(self.model, 1), "the torso's height", *range_of(env._healthy_z_range), False, "m"),
            Bound(qpos_quantity(self.model, 2), "the torso's pitch angle", *range_of(env._healthy_angle_range),
                  False, "rad"))

    def bounded(self, xp: Any, v: GymView) -> tuple:
        return (v.qpos[:, 1], v.qpos[:, 2])

    def observation(self, xp: Any, v: GymView) -> Any:
        return xp.concat([v.qpos[:, self.excl:], xp.clip(v.qvel, -10, 10)], axis=1)

    def reward_text(self) -> str:
        return (f"{self.w_forward:g} x the root's forward speed (its x change over the step / dt) "
                f"+ {self.healthy_reward:g} on each healthy step - {self.w_ctrl:g} x the sum of squared actions")

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        x_velocity = (v.qpos[:, 0] - v.qpos_before[:, 0]) / self.dt
        healthy = self.healthy(xp, v)
        return (self.w_forward * x_velocity + healthy * self.healthy_reward
                - self.w_ctrl * xp.sum(xp.square(v.action), axis=1))
