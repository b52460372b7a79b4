"""Ant-v5: a four-legged robot paid for the x speed of its main body (body origin as the env reads
it after the step), for staying healthy (torso height ``qpos[2]`` in ``healthy_z_range``,
inclusive, and a finite state), against the action's size and against clipped contact forces
(which its observation includes, without the world's row)."""

from __future__ import annotations

from typing import Any

from rewardgen.sim.rules.base import Bound, EnvRules, GymView, body_id, range_of


class AntRules(EnvRules):
    env_class = "AntEnv"
    reads = frozenset({"xpos", "cfrc_ext"})

    def __init__(self, env: Any):
        super().__init__(env)
        self.excl = 2 if env._exclude_current_positions_from_observation else 0
        self.cfrc_in_obs = bool(env._include_cfrc_ext_in_observation)
        self.main_body = body_id(self.model, env._main_body)
        self.w_forward = env._forward_reward_weight
        self.w_ctrl = env._ctrl_cost_weight
        self.w_contact = env._contact_cost_weight
        self.contact_range = tuple(env._contact_force_range)
        self.healthy_reward = env._healthy_reward
        self.dt = float(env.dt)
        self.health = (Bound("s.qpos[:, 2]", "the torso's height", *range_of(env._healthy_z_range), True, "m"),)
        self.nonfinite = True
        self.terminates = bool(env._terminate_when_unhealthy)

    def bounded(self, xp: Any, v: GymView) -> tuple:
        return (v.qpos[:, 2],)

    def _contact_forces(self, xp: Any, v: GymView) -> Any:
        return xp.clip(v.cfrc_ext[:, 1:], *self.contact_range)

    def observation(self, xp: Any, v: GymView) -> Any:
        parts = [v.qpos[:, self.excl:], v.qvel]
        if self.cfrc_in_obs:
            parts.append(xp.reshape(self._contact_forces(xp, v), (v.n, -1)))
        return xp.concat(parts, axis=1)

    def progress(self, xp: Any, v: GymView) -> Any:
        return v.xpos[:, self.main_body, :2]

    def reward_text(self) -> str:
        lo, hi = self.contact_range
        return (f"{self.w_forward:g} x the main body's forward speed (its x change over the step / dt) "
                f"+ {self.healthy_reward:g} on each healthy step - {self.w_ctrl:g} x the sum of squared actions "
                f"- {self.w_contact:g} x the sum of squared contact forces (each clipped to [{lo:g}, {hi:g}])")

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        x_velocity = (v.xpos[:, self.main_body, 0] - before[:, 0]) / self.dt
        healthy = self.healthy(xp, v)
        contact = self.w_contact * xp.sum(xp.square(self._contact_forces(xp, v)), axis=(1, 2))
        return (x_velocity * self.w_forward + healthy * self.healthy_reward
                - self.w_ctrl * xp.sum(xp.square(v.action), axis=1) - contact)

    def reset(self, xp: Any, draw: Any, init_qpos: Any, init_qvel: Any) -> tuple:
        c = self.noise
        qpos = init_qpos + draw.uniform(-c, c, self.model.nq)
        qvel = init_qvel + c * draw.normal(self.model.nv)
        return qpos, qvel
