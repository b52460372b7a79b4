"""InvertedDoublePendulum-v5: two poles on a cart; the episode ends when the upper pole's tip
(site 0) is at 1 m or lower. Its observation includes the constraint force on the cart's slider
(clipped to [-10, 10]): nonzero only at the slider's range limit."""

from __future__ import annotations

from typing import Any

import mujoco

from rewardgen.sim.rules.base import Bound, EnvRules, GymView


class InvertedDoublePendulumRules(EnvRules):
    env_class = "InvertedDoublePendulumEnv"
    reads = frozenset({"site_xpos", "qfrc_constraint"})

    def __init__(self, env: Any):
        super().__init__(env)
        site = mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_SITE, 0)
        self.health = (Bound(f's.site_pos["{site}"][:, 2]', "the height of the upper pole's tip", 1.0, None, False,
                             "m"),)
        self.terminates = True
        self.healthy_reward = float(env._healthy_reward)

    def bounded(self, xp: Any, v: GymView) -> tuple:
        return (v.site_xpos[:, 0, 2],)

    def observation(self, xp: Any, v: GymView) -> Any:
        return xp.concat([v.qpos[:, :1], xp.sin(v.qpos[:, 1:]), xp.cos(v.qpos[:, 1:]), xp.clip(v.qvel, -10, 10),
                          xp.clip(v.qfrc_constraint, -10, 10)[:, :1]], axis=1)

    def reward_text(self) -> str:
        return (f"{self.healthy_reward:g} on each step that does not end the episode - (0.01 x the upper tip's x^2 "
                f"+ (its height - 2)^2) - (0.001 x the first hinge's velocity^2 + 0.005 x the second's^2)")

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        x, y = v.site_xpos[:, 0, 0], v.site_xpos[:, 0, 2]
        v1, v2 = v.qvel[:, 1], v.qvel[:, 2]
        dist_penalty = 0.01 * x**2 + (y - 2) ** 2
        vel_penalty = 1e-3 * v1**2 + 5e-3 * v2**2
        alive_bonus = self.healthy_reward * xp.astype(~terminated, v.qpos.dtype)
        return alive_bonus - dist_penalty - vel_penalty

    def reset(self, xp: Any, draw: Any, init_qpos: Any, init_qvel: Any) -> tuple:
        c = self.noise
        qpos = init_qpos + draw.uniform(-c, c, self.model.nq)
        qvel = init_qvel + draw.normal(self.model.nv) * c
        return qpos, qvel
