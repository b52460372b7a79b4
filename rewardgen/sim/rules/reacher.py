"""Reacher-v5: a two-link arm reaching for a target placed at random in a disc of radius 0.2."""

from __future__ import annotations

from typing import Any

from rewardgen.sim.rules.base import EnvRules, GymView, body_id


class ReacherRules(EnvRules):
    env_class = "ReacherEnv"
    reads = frozenset({"xpos"})

    def __init__(self, env: Any):
        super().__init__(env)
        self.fingertip = body_id(self.model, "fingertip")
        self.target = body_id(self.model, "target")
        self.w_dist = env._reward_dist_weight
        self.w_ctrl = env._reward_control_weight

    def _to_target(self, v: GymView) -> Any:
        return v.xpos[:, self.fingertip] - v.xpos[:, self.target]

    def observation(self, xp: Any, v: GymView) -> Any:
        th = v.qpos[:, :2]
        return xp.concat([xp.cos(th), xp.sin(th), v.qpos[:, 2:], v.qvel[:, :2], self._to_target(v)[:, :2]], axis=1)

    def reward_text(self) -> str:
        return (f"-{self.w_dist:g} x the fingertip's distance to the target - {self.w_ctrl:g} x the sum of "
                f"squared actions")

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        dist = xp.linalg.vector_norm(self._to_target(v), axis=1)
        return -dist * self.w_dist - xp.sum(xp.square(v.action), axis=1) * self.w_ctrl

    def reset(self, xp: Any, draw: Any, init_qpos: Any, init_qvel: Any) -> tuple:
        nq, nv = self.model.nq, self.model.nv
        qpos = draw.uniform(-0.1, 0.1, nq) + init_qpos
        goal = draw.until(lambda: draw.uniform(-0.2, 0.2, 2), lambda g: xp.linalg.vector_norm(g, axis=1) < 0.2)
        qpos[:, -2:] = goal
        qvel = init_qvel + draw.uniform(-0.005, 0.005, nv)
        qvel[:, -2:] = 0
        return qpos, qvel
