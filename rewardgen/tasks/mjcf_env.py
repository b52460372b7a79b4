"""A generic gymnasium env for any MJCF file, so a robot without a gymnasium env is still a task.

Observation: qpos and qvel, without the world position of the robot's root in the horizontal plane
(x/y of a free root joint, or the leading slide joints along x/y of a planar root such as a hopper's
``rootx``), so policies generalise across positions. ``_skip`` is the number of leading qpos entries
left out. Reset: initial pose plus uniform noise on qpos and qvel.

Termination: none by default (the episode ends at the task's time limit). With the option
``healthy_z_range: [low, high]`` (task YAML ``env_kwargs``), an episode ends when the height of
``healthy_body`` (default: the robot's root body) leaves that range or the state is not finite,
like gymnasium's walkers. Its env reward is zero: MJCF tasks have no "human" reward.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from rewardgen.contract.schema import find_robot_root


def _position_prefix(model: mujoco.MjModel) -> int:
    """How many leading qpos entries are the root's horizontal world position."""
    if not model.njnt:
        return 0
    if int(model.jnt_type[0]) == int(mujoco.mjtJoint.mjJNT_FREE):
        return 2
    body = int(model.jnt_bodyid[0])
    skip = 0
    for j in range(model.njnt):
        if int(model.jnt_bodyid[j]) != body or int(model.jnt_type[j]) != int(mujoco.mjtJoint.mjJNT_SLIDE):
            break
        if int(model.jnt_qposadr[j]) != skip or int(model.body_parentid[body]) != 0:
            break
        axis = np.asarray(model.jnt_axis[j], dtype=float)
        if abs(axis[2]) > 0.3 * np.linalg.norm(axis):  # vertical component: the height is kept
            break
        skip += 1
    return skip


class MjcfEnv(MujocoEnv):
    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"]}  # noqa: RUF012 - gym.Env's class dict

    def __init__(self, model_path: str, frame_skip: int = 5, reset_noise: float = 0.1,
                 healthy_z_range: tuple[float, float] | list[float] | None = None,
                 healthy_body: str | None = None, **kwargs):
        path = Path(model_path).resolve()
        try:
            model = mujoco.MjModel.from_xml_path(str(path))
        except (ValueError, OSError) as exc:
            raise ValueError(f"cannot load MJCF model {model_path}: {' '.join(str(exc).split())}") from None
        self._skip = _position_prefix(model)
        obs_dim = model.nq - self._skip + model.nv
        observation_space = spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float64)
        self._reset_noise = reset_noise
        self._terminate_when_unhealthy = healthy_z_range is not None
        self._healthy_z_range = tuple(float(v) for v in healthy_z_range) if healthy_z_range is not None else None
        if healthy_body is None:
            self._healthy_body = find_robot_root(model)
        else:
            self._healthy_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, healthy_body)
            if self._healthy_body <= 0:
                raise ValueError(f"healthy_body: no body named {healthy_body!r} in {path.name}")
        # per instance: models differ in dt, and MujocoEnv checks render_fps against it
        self.metadata = {"render_modes": list(MjcfEnv.metadata["render_modes"])}
        MujocoEnv.__init__(self, str(path), frame_skip, observation_space=observation_space, **kwargs)
        self.metadata["render_fps"] = int(np.round(1.0 / self.dt))

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos.flat[self._skip:], self.data.qvel.flat])

    @property
    def is_healthy(self) -> bool:
        if not self._terminate_when_unhealthy:
            return True
        assert self._healthy_z_range is not None  # set exactly when unhealthy ends an episode
        lo, hi = self._healthy_z_range
        mujoco.mj_kinematics(self.model, self.data)  # positions after the step, not before its last substep
        z = float(self.data.xpos[self._healthy_body][2])
        finite = bool(np.isfinite(self.data.qpos).all() and np.isfinite(self.data.qvel).all())
        return finite and lo <= z <= hi

    def step(self, action):
        self.do_simulation(action, self.frame_skip)
        terminated = not self.is_healthy
        return self._get_obs(), 0.0, terminated, False, {}

    def reset_model(self) -> np.ndarray:
        c = self._reset_noise
        qpos = self.init_qpos + self.np_random.uniform(-c, c, size=self.model.nq)
        qvel = self.init_qvel + self.np_random.uniform(-c, c, size=self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()
