"""HumanoidStandup-v5: the humanoid starts lying down and is paid for its root's height over the
physics timestep (gymnasium keeps ``uph_cost_weight`` but does not apply it; nor does this), against
``data.ctrl`` squared and squared contact forces (clipped in total), plus 1 per step; episodes never end
early. Observation as Humanoid-v5's."""

from __future__ import annotations

from typing import Any

from rewardgen.sim.rules.base import GymView
from rewardgen.sim.rules.humanoid import HUMANOID_READS, HumanoidObservation


class HumanoidStandupRules(HumanoidObservation):
    env_class = "HumanoidStandupEnv"
    reads = HUMANOID_READS

    def __init__(self, env: Any):
        super().__init__(env)
        self.w_ctrl = env._ctrl_cost_weight
        self.w_impact = env._impact_cost_weight
        self.impact_cost_range = tuple(env._impact_cost_range)
        self.timestep = float(self.model.opt.timestep)

    def reward_text(self) -> str:
        lo, hi = self.impact_cost_range
        return (f"the root's height divided by the physics timestep ({self.timestep:g} s) + 1 - {self.w_ctrl:g} x "
                f"the sum of squared controls - {self.w_impact:g} x the sum of squared contact forces (that cost "
                f"clipped to [{lo:g}, {hi:g}])")

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        uph_cost = (v.qpos[:, 2] - 0) / self.timestep
        quad_ctrl_cost = self.w_ctrl * xp.sum(xp.square(v.ctrl), axis=1)
        quad_impact_cost = xp.clip(self.w_impact * xp.sum(xp.square(v.cfrc_ext), axis=(1, 2)), *self.impact_cost_range)
        return uph_cost - quad_ctrl_cost - quad_impact_cost + 1
