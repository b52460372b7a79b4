"""InvertedPendulum-v5: a pole on a cart; the episode ends when the pole tilts past 0.2 rad."""

from __future__ import annotations

from typing import Any

from rewardgen.sim.rules.base import Bound, EnvRules, GymView, qpos_quantity


class InvertedPendulumRules(EnvRules):
    env_class = "InvertedPendulumEnv"

    def __init__(self, env: Any):
        super().__init__(env)
        self.health = (Bound(qpos_quantity(self.model, 1), "the pole's angle from upright", -0.2, 0.2, True, "rad"),)
        self.nonfinite = True
        self.terminates = True

    def bounded(self, xp: Any, v: GymView) -> tuple:
        return (v.qpos[:, 1],)

    def observation(self, xp: Any, v: GymView) -> Any:
        return xp.concat([v.qpos, v.qvel], axis=1)

    def reward_text(self) -> str:
        return "1 on each step the pole stays up, nothing else"

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        return xp.astype(~terminated, v.qpos.dtype)  # 1 per step the pole stays up
