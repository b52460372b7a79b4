"""Pusher-v5: a seven-joint arm pushing a puck ("object") to a goal on a table.

The goal is always at the origin of its slide joints; the puck is placed uniformly in
[-0.3, 0] x [-0.2, 0.2] (x drawn before y on every try), redrawn until it is more than 0.17 from the
goal. The arm's joint velocities get U(-0.005, 0.005) noise, the puck and goal start at rest.
Positions are body origins as the env reads them after its step (``xpos``)."""

from __future__ import annotations

from typing import Any

from rewardgen.sim.rules.base import EnvRules, GymView, body_id


class PusherRules(EnvRules):
    env_class = "PusherEnv"
    reads = frozenset({"xpos"})

    def __init__(self, env: Any):
        super().__init__(env)
        self.tips = body_id(self.model, "tips_arm")
        self.object = body_id(self.model, "object")
        self.goal = body_id(self.model, "goal")
        self.w_near = env._reward_near_weight
        self.w_dist = env._reward_dist_weight
        self.w_ctrl = env._reward_control_weight

    def observation(self, xp: Any, v: GymView) -> Any:
        return xp.concat([v.qpos[:, :7], v.qvel[:, :7], v.xpos[:, self.tips], v.xpos[:, self.object],
                          v.xpos[:, self.goal]], axis=1)

    def reward_text(self) -> str:
        return (f"-{self.w_dist:g} x the puck's distance to the goal - {self.w_near:g} x the arm tip's distance "
                f"to the puck - {self.w_ctrl:g} x the sum of squared actions")

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        to_object = v.xpos[:, self.object] - v.xpos[:, self.tips]
        to_goal = v.xpos[:, self.object] - v.xpos[:, self.goal]
        near = -xp.linalg.vector_norm(to_object, axis=1) * self.w_near
        dist = -xp.linalg.vector_norm(to_goal, axis=1) * self.w_dist
        ctrl = -xp.sum(xp.square(v.action), axis=1) * self.w_ctrl
        return dist + ctrl + near

    def reset(self, xp: Any, draw: Any, init_qpos: Any, init_qvel: Any) -> tuple:
        qpos = draw.rows(init_qpos)
        puck = draw.until(lambda: xp.concat([draw.uniform(-0.3, 0.0, 1), draw.uniform(-0.2, 0.2, 1)], axis=1),
                          lambda p: xp.linalg.vector_norm(p, axis=1) > 0.17)  # the goal is at (0, 0)
        qpos[:, -4:-2] = puck
        qpos[:, -2:] = 0
        qvel = init_qvel + draw.uniform(-0.005, 0.005, self.model.nv)
        qvel[:, -4:] = 0
        return qpos, qvel
