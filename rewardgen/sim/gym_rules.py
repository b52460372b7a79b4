"""What both batched backends take from a task's gymnasium env: whether they can stand in for it,
its constants, and the shape of one batched step's result.

BatchSim (CPU) and WarpSim (GPU) reproduce the env's reset, termination and observation rules; the
tasks whose env classes they model are listed here, and ``unsupported_reason`` says why another
task must train with SB3 on the real env instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

from rewardgen.tasks.spec import Task


#: gymnasium env classes whose reset, termination and observation rules BatchSim reproduces
FAITHFUL_ENVS = ("InvertedPendulumEnv", "ReacherEnv", "HalfCheetahEnv", "HopperEnv", "Walker2dEnv", "AntEnv",
                 "MjcfEnv")

#: planar walkers (root x, z, angle joints first): observation with velocities clipped to [-10, 10],
#: health from torso height and angle (``healthy_z_range``, ``healthy_angle_range``)
PLANAR_WALKERS = ("HopperEnv", "Walker2dEnv")


def unsupported_reason(task) -> str | None:
    """Why BatchSim cannot stand in for this task's env (None when it can)."""
    env = task.make_env()
    try:
        kind = type(env.unwrapped).__name__
    finally:
        env.close()
    if kind not in FAITHFUL_ENVS:
        return f"BatchSim does not model {kind}'s termination and observation rules"
    if kind == "MjcfEnv" and task.env_kwargs.get("healthy_z_range"):
        return "BatchSim does not model the healthy-height termination of this MJCF task"
    return None


def init_from_env(sim, task: Task) -> None:
    """Build the task's gymnasium env and set on a batched simulator (BatchSim and WarpSim alike)
    what it reproduces of it: the env itself (``_env``, closed by ``close``), the unwrapped env
    ``u``, its class name ``kind``, ``model``, ``frame_skip``, ``dt``, ``episode_length``,
    ``schema``, ``act_dim``, ``obs_dim``, ``nq``/``nv``/``nu``, and ``_rescale``: the RescaleAction
    wrapper's function, or None."""
    env = task.make_env()
    sim._env, sim._rescale = env, None
    w = env
    while isinstance(w, gym.Wrapper):
        if isinstance(w, gym.wrappers.RescaleAction):
            sim._rescale = w.func
        w = w.env
    u = env.unwrapped
    sim.u, sim.kind, sim.model = u, type(u).__name__, u.model
    sim.frame_skip, sim.dt = int(u.frame_skip), float(u.dt)
    sim.episode_length, sim.schema = int(task.episode_length), task.schema
    sim.act_dim, sim.obs_dim = int(env.action_space.shape[0]), int(env.observation_space.shape[0])
    sim.nq, sim.nv, sim.nu = u.model.nq, u.model.nv, u.model.nu


def observation_rules(sim) -> None:
    """Set on a batched simulator (after ``init_from_env``) how the env builds its observation:
    ``_excl`` (leading qpos entries left out), ``_cfrc_in_obs`` (Ant: contact forces included),
    ``_main_body`` (Ant: the body whose forces count), ``_fingertip``/``_target`` (Reacher: the bodies
    whose offset it observes). ValueError for an env class not modelled."""
    u, k = sim.u, sim.kind
    sim._excl, sim._cfrc_in_obs = 0, False
    if k in ("HalfCheetahEnv", "HopperEnv", "Walker2dEnv"):
        sim._excl = 1 if u._exclude_current_positions_from_observation else 0
    elif k == "AntEnv":
        sim._excl = 2 if u._exclude_current_positions_from_observation else 0
        sim._cfrc_in_obs = bool(u._include_cfrc_ext_in_observation)
        mb = u._main_body
        sim._main_body = mb if isinstance(mb, int) else mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, mb)
    elif k == "MjcfEnv":
        sim._excl = int(u._skip)
    elif k == "ReacherEnv":
        sim._fingertip = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, "fingertip")
        sim._target = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, "target")
    elif k != "InvertedPendulumEnv":
        raise ValueError(f"batched simulation does not know the rules of {k}")


@dataclass
class StepResult:
    """What one ``BatchSim.step`` returns; arrays have leading dimension N.

    ``obs`` is the observation to act on next (after auto-reset for finished worlds);
    ``final_obs`` is every world's observation before any reset (use it to bootstrap truncations).
    ``env_reward`` is the gymnasium env's own reward for this step.
    """

    obs: np.ndarray
    env_reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated
