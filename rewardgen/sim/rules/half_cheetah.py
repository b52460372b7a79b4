"""HalfCheetah-v5: a planar runner paid for forward speed of its root; episodes never end early."""

from __future__ import annotations

from typing import Any

from rewardgen.sim.rules.forward_runner import ForwardRunnerRules


class HalfCheetahRules(ForwardRunnerRules):
    env_class = "HalfCheetahEnv"
    position_dims = 1  # root x

    def reset(self, xp: Any, draw: Any, init_qpos: Any, init_qvel: Any) -> tuple:
        c = self.noise
        qpos = init_qpos + draw.uniform(-c, c, self.model.nq)
        qvel = init_qvel + c * draw.normal(self.model.nv)
        return qpos, qvel
