"""Humanoid-v5: a 3D humanoid paid for the x speed of its whole-model centre of mass (from the
bodies' inertial frames, ``xipos``, as the env reads them after the step), 5 per healthy step
(torso height ``qpos[2]`` strictly inside ``healthy_z_range``), against ``data.ctrl`` squared and
against squared contact forces (clipped in total). Its observation adds each body's com-based
inertia and velocity, the actuator forces on the joints after the free root, and the contact forces."""

from __future__ import annotations

from typing import Any

import numpy as np

from rewardgen.sim.rules.base import Bound, EnvRules, GymView, range_of

#: what the humanoids observe beyond qpos and qvel
HUMANOID_READS = frozenset({"cinert", "cvel", "qfrc_actuator", "cfrc_ext"})


class HumanoidObservation(EnvRules):
    """Rules whose observation is Humanoid-v5's (Humanoid-v5 and HumanoidStandup-v5): the env's
    observation switches, read once, and the observation they shape (the world's rows left out)."""

    #: leading qpos entries left out of the observation (the root's x and y, or none)
    excl: int
    with_cinert: bool
    with_cvel: bool
    with_qfrc_actuator: bool
    with_cfrc_ext: bool

    def __init__(self, env: Any):
        super().__init__(env)
        self.excl = 2 if env._exclude_current_positions_from_observation else 0
        self.with_cinert = env._include_cinert_in_observation is True
        self.with_cvel = env._include_cvel_in_observation is True
        self.with_qfrc_actuator = env._include_qfrc_actuator_in_observation is True
        self.with_cfrc_ext = env._include_cfrc_ext_in_observation is True

    def observation(self, xp: Any, v: GymView) -> Any:
        parts = [v.qpos[:, self.excl:], v.qvel]
        if self.with_cinert:
            parts.append(xp.reshape(v.cinert[:, 1:], (v.n, -1)))
        if self.with_cvel:
            parts.append(xp.reshape(v.cvel[:, 1:], (v.n, -1)))
        if self.with_qfrc_actuator:
            parts.append(v.qfrc_actuator[:, 6:])
        if self.with_cfrc_ext:
            parts.append(xp.reshape(v.cfrc_ext[:, 1:], (v.n, -1)))
        return xp.concat(parts, axis=1)


class HumanoidRules(HumanoidObservation):
    env_class = "HumanoidEnv"
    reads = HUMANOID_READS | {"xipos"}

    def __init__(self, env: Any):
        super().__init__(env)
        self.w_forward = env._forward_reward_weight
        self.w_ctrl = env._ctrl_cost_weight
        self.w_contact = env._contact_cost_weight
        self.contact_cost_range = tuple(env._contact_cost_range)
        self.healthy_reward = env._healthy_reward
        self.dt = float(env.dt)
        self.health = (Bound("s.qpos[:, 2]", "the torso's height", *range_of(env._healthy_z_range), False, "m"),)
        self.terminates = bool(env._terminate_when_unhealthy)
        self.mass = np.asarray(self.model.body_mass, dtype=np.float64)
        self._mass: dict = {}

    def bounded(self, xp: Any, v: GymView) -> tuple:
        return (v.qpos[:, 2],)

    def progress(self, xp: Any, v: GymView) -> Any:
        """gymnasium's ``mass_center``: body masses times ``xipos``, over the total mass; x and y."""
        key = (id(xp), str(v.xipos.device), str(v.xipos.dtype))
        mass = self._mass.get(key)
        if mass is None:
            mass = self._mass[key] = xp.asarray(self.mass, dtype=v.xipos.dtype, device=v.xipos.device)
        return (xp.sum(mass[None, :, None] * v.xipos, axis=1) / xp.sum(mass))[:, :2]

    def reward_text(self) -> str:
        lo, hi = self.contact_cost_range
        return (f"{self.w_forward:g} x the whole body's centre-of-mass forward speed (its x change over the step "
                f"/ dt) + {self.healthy_reward:g} on each healthy step - {self.w_ctrl:g} x the sum of squared "
                f"controls - {self.w_contact:g} x the sum of squared contact forces (that cost clipped to "
                f"[{lo:g}, {hi:g}])")

    def reward(self, xp: Any, v: GymView, before: Any, terminated: Any) -> Any:
        x_velocity = (self.progress(xp, v)[:, 0] - before[:, 0]) / self.dt
        forward = self.w_forward * x_velocity
        healthy = self.healthy(xp, v) * self.healthy_reward
        ctrl_cost = self.w_ctrl * xp.sum(xp.square(v.ctrl), axis=1)
        contact_cost = xp.clip(self.w_contact * xp.sum(xp.square(v.cfrc_ext), axis=(1, 2)), *self.contact_cost_range)
        return (forward + healthy) - (ctrl_cost + contact_cost)
