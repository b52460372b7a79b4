"""stable-baselines3 PPO over gymnasium envs whose reward is replaced by the candidate's.

``RewardVecEnv`` steps every env, fills one State batch from their MjData *before* any auto-reset,
calls the reward once for the batch, then resets finished envs. Observations and rewards are
normalised with ``VecNormalize`` so candidates with very different reward scales train alike.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rewardgen.policy import PolicyExport
from rewardgen.state import StateBuffers, refresh_derived
from rewardgen.tasks import Task
from rewardgen.trainers.base import BatchReward, ProgressFn, TrainConfig, Trainer, TrainOutput


class RewardVecEnv(DummyVecEnv):
    """DummyVecEnv whose rewards come from ``BatchReward`` on the pre-reset State of all envs."""

    def __init__(self, task: Task, reward: BatchReward, num_envs: int, seed: int, device: str = "cpu"):
        super().__init__([task.make_env for _ in range(num_envs)])
        self.seed(seed)
        self.reward = reward
        self.device = device
        self.total_steps = 0
        first = self.envs[0].unwrapped
        self.buffers = StateBuffers(task.schema, first.model, num_envs)
        self._episode_step = np.zeros(num_envs, dtype=np.int64)

    def step_wait(self):
        pending = []
        for i, env in enumerate(self.envs):
            obs, _, terminated, truncated, info = env.step(self.actions[i])
            data = env.unwrapped.data
            refresh_derived(env.unwrapped.model, data)
            self._episode_step[i] += 1
            self.buffers.fill(i, data, self.actions[i], int(self._episode_step[i]))
            self.buf_dones[i] = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            self.buf_infos[i] = info
            pending.append(obs)
        self.total_steps += self.num_envs
        self.buf_rews[:] = self.reward(self.buffers.to_state(self.device), self.total_steps)
        self.reward.end_episodes(self.buf_dones, self.total_steps)
        for i, obs in enumerate(pending):
            if self.buf_dones[i]:
                self.buf_infos[i]["terminal_observation"] = obs
                obs, self.reset_infos[i] = self.envs[i].reset()
                self._episode_step[i] = 0
            self._save_obs(i, obs)
        return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), list(self.buf_infos)


class _Progress(BaseCallback):
    def __init__(self, progress: ProgressFn, every: int):
        super().__init__()
        self._progress, self._every, self._last = progress, every, 0

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self._every:
            self._last = self.num_timesteps
            self._progress(self.num_timesteps)
        return True


def export_policy(model: PPO, venv: VecNormalize) -> PolicyExport:
    """The deterministic actor of an SB3 MlpPolicy plus its observation normalisation."""
    layers = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    layers.append(model.policy.action_net)
    arrays = {"obs_mean": venv.obs_rms.mean, "obs_var": venv.obs_rms.var}
    for i, layer in enumerate(layers):
        arrays[f"w{i}"] = layer.weight.detach().cpu().numpy()
        arrays[f"b{i}"] = layer.bias.detach().cpu().numpy()
    return PolicyExport(arrays, activation="tanh", clip_obs=float(venv.clip_obs), epsilon=float(venv.epsilon))


class SB3Trainer(Trainer):
    """PPO from stable-baselines3 with a rollout of 2048 steps per update across the batch."""

    name = "sb3"

    def train(self, task: Task, reward: BatchReward, config: TrainConfig, progress: ProgressFn) -> TrainOutput:
        start = time.perf_counter()
        venv = VecNormalize(RewardVecEnv(task, reward, config.num_envs, config.seed, config.device),
                            norm_obs=True, norm_reward=True, gamma=0.99)
        n_steps = max(16, 2048 // config.num_envs)
        model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=64, n_epochs=10, learning_rate=3e-4,
                    gae_lambda=0.95, gamma=0.99, ent_coef=0.0, seed=config.seed, device=config.device, verbose=0)
        model.learn(total_timesteps=config.steps, callback=_Progress(progress, every=n_steps * config.num_envs))
        progress(model.num_timesteps)
        return TrainOutput(policy=export_policy(model, venv), stats=reward.stats.summary(),
                           env_steps=int(model.num_timesteps), seconds=time.perf_counter() - start)
