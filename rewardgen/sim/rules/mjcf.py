"""A brought MJCF robot (``rewardgen.tasks.mjcf_env.MjcfEnv``): qpos after the free root's position
and qvel observed, no reward of its own, uniform reset noise on both, and with a healthy-height
range, an episode that ends when a body's height after the step leaves it (inclusive) or the state
is not finite."""

from __future__ import annotations

from typing import Any

import mujoco

from rewardgen.sim.rules.base import Bound, EnvRules, GymView, range_of


class MjcfRules(EnvRules):
    env_class = "MjcfEnv"
    reads = frozenset({"xpos_now"})

    def __init__(self, env: Any):
        super().__init__(env)
        self.excl = int(env._skip)
        self.noise = float(env._reset_noise)
        self.terminates = bool(env._terminate_when_unhealthy)
        if self.terminates:
            self.body = int(env._healthy_body)
            name = mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, self.body)
            self.health = (Bound(f's.body_pos["{name}"][:, 2]', f"the height of {name}",
                                 *range_of(env._healthy_z_range), True, "m"),)
            self.nonfinite = True

    def bounded(self, xp: Any, v: GymView) -> tuple:
        return (v.xpos_now[:, self.body, 2],) if self.terminates else ()

    def observation(self, xp: Any, v: GymView) -> Any:
        return xp.concat([v.qpos[:, self.excl:], v.qvel], axis=1)

    def reward_text(self) -> str:
        return "none: 0 on every step (a brought robot has no reward of its own)"

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        return xp.zeros(v.n, dtype=v.qpos.dtype, device=v.qpos.device)
