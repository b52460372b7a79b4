"""A generic gymnasium env for any MJCF file, so a robot without a gymnasium env is still a task.

Observation: qpos (without the world x/y of a free root, so policies generalise across positions)
and qvel. Reset: initial pose plus uniform noise on qpos and qvel. No termination: the episode ends
at the task's time limit. Its env reward is zero: MJCF tasks have no "human" reward.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv


class MjcfEnv(MujocoEnv):
    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"]}

    def __init__(self, model_path: str, frame_skip: int = 5, reset_noise: float = 0.1, **kwargs):
        path = Path(model_path).resolve()
        try:
            model = mujoco.MjModel.from_xml_path(str(path))
        except (ValueError, OSError) as exc:
            raise ValueError(f"cannot load MJCF model {model_path}: {str(exc).splitlines()[0]}") from None
        self._skip = 2 if model.njnt and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE else 0
        obs_dim = model.nq - self._skip + model.nv
        observation_space = spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float64)
        self._reset_noise = reset_noise
        MujocoEnv.__init__(self, str(path), frame_skip, observation_space=observation_space, **kwargs)
        self.metadata["render_fps"] = int(np.round(1.0 / self.dt))

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos.flat[self._skip:], self.data.qvel.flat])

    def step(self, action):
        self.do_simulation(action, self.frame_skip)
        return self._get_obs(), 0.0, False, False, {}

    def reset_model(self) -> np.ndarray:
        c = self._reset_noise
        qpos = self.init_qpos + self.np_random.uniform(-c, c, size=self.model.nq)
        qvel = self.init_qvel + self.np_random.uniform(-c, c, size=self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()
