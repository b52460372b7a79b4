"""stable-baselines3 PPO over gymnasium envs whose reward is replaced by the candidate's.

``RewardVecEnv`` steps every env, fills one State batch from their MjData *before* any auto-reset,
calls the reward once for the batch, then resets finished envs. Observations and rewards are
normalised with ``VecNormalize`` so candidates with very different reward scales train alike.

Resumable (``TrainConfig.resume``): ``resume_state`` packs the policy and value weights
(``policy.state_dict()``), the Adam moments, the VecNormalize statistics, the env-step counter and
the torch/numpy/python RNG states as an npz plus a JSON header (``pack_resume_state``; no pickles,
never ``model.save``); ``restore_state`` puts them back into a freshly built model. A resumed slice
starts its envs from fresh resets (the simulator state is not carried over) and trains ``steps``
more env-steps; ``TrainOutput.env_steps`` is the cumulative counter.

``env_reward=True`` trains on the gymnasium env's own reward (the "human" baseline): the rewards
come from ``env.step`` and ``EnvRewardFn`` passes them through ``BatchReward`` only so that the
per-episode books (components, worker-side fitness) are kept as for a candidate.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rewardgen.contract.policy import PolicyExport
from rewardgen.contract.state import StateBuffers, refresh_derived
from rewardgen.tasks.spec import Task, mujoco_env
from rewardgen.trainers.base import (
    BatchReward,
    ProgressFn,
    ResumeStateError,
    TrainConfig,
    Trainer,
    TrainingStats,
    TrainOutput,
    pack_resume_state,
    unpack_resume_state,
)


class EnvRewardFn:
    """The env's own reward in the reward contract's shape; trusted code, fed by ``RewardVecEnv``."""

    def __init__(self) -> None:
        self.values: np.ndarray | None = None

    def __call__(self, s):
        if self.values is None:
            raise RuntimeError("EnvRewardFn called before the env reported its rewards")
        r = torch.as_tensor(self.values, dtype=torch.float32)
        return r, {"env_reward": r}


class RewardVecEnv(DummyVecEnv):
    """DummyVecEnv whose rewards come from ``BatchReward`` on the pre-reset State of all envs."""

    def __init__(self, task: Task, reward: BatchReward, num_envs: int, seed: int, device: str = "cpu",
                 env_reward: bool = False):
        super().__init__([task.make_env for _ in range(num_envs)])
        self.seed(seed)
        self.reward = reward
        self.device = device
        self.env_reward = env_reward
        if env_reward and not isinstance(reward.fn, EnvRewardFn):
            raise ValueError("env_reward=True needs a BatchReward over EnvRewardFn")
        self._env_rews = np.zeros(num_envs)
        self.total_steps = 0
        self.buffers = StateBuffers(task.schema, mujoco_env(self.envs[0]).model, num_envs)
        self._episode_step = np.zeros(num_envs, dtype=np.int64)

    def step_wait(self):
        pending = []
        for i, env in enumerate(self.envs):
            obs, env_r, terminated, truncated, info = env.step(self.actions[i])
            self._env_rews[i] = env_r
            data = env.unwrapped.data
            refresh_derived(env.unwrapped.model, data)
            self._episode_step[i] += 1
            self.buffers.fill(i, data, self.actions[i], int(self._episode_step[i]))
            self.buf_dones[i] = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            self.buf_infos[i] = info
            pending.append(obs)
        self.total_steps += self.num_envs
        if self.env_reward:
            self.reward.fn.values = self._env_rews.copy()
            self.reward(self.buffers.to_state(self.device), self.total_steps)  # the books only
            self.buf_rews[:] = self._env_rews
        else:
            self.buf_rews[:] = self.reward(self.buffers.to_state(self.device), self.total_steps).cpu().numpy()
        self.reward.end_episodes(self.buf_dones, self.total_steps)
        self.reward.flush()  # a few envs on the CPU: nothing to gain from keeping the books pending
        for i, obs in enumerate(pending):
            if self.buf_dones[i]:
                self.buf_infos[i]["terminal_observation"] = obs
                obs, self.reset_infos[i] = self.envs[i].reset()
                self._episode_step[i] = 0
            self._save_obs(i, obs)
        return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), list(self.buf_infos)


class _Progress(BaseCallback):
    """Reports env-steps of this slice (the counter minus where a resumed slice started)."""

    def __init__(self, progress: ProgressFn, every: int, offset: int = 0):
        super().__init__()
        self._progress, self._every, self._offset, self._last = progress, every, offset, offset

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self._every:
            self._last = self.num_timesteps
            self._progress(self.num_timesteps - self._offset)
        return True


def export_policy(model: PPO, venv: VecNormalize) -> PolicyExport:
    """The deterministic actor of an SB3 MlpPolicy plus its observation normalisation."""
    layers = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    head = model.policy.action_net
    if not isinstance(head, torch.nn.Linear):  # a Gaussian MlpPolicy's action head is one Linear layer
        raise TypeError(f"unexpected SB3 action head {type(head).__name__}")
    layers.append(head)
    obs_rms = _rms(venv.obs_rms)
    arrays = {"obs_mean": obs_rms.mean, "obs_var": obs_rms.var}
    for i, layer in enumerate(layers):
        arrays[f"w{i}"] = layer.weight.detach().cpu().numpy()
        arrays[f"b{i}"] = layer.bias.detach().cpu().numpy()
    return PolicyExport(arrays, activation="tanh", clip_obs=float(venv.clip_obs), epsilon=float(venv.epsilon))


def _rms(rms: object) -> RunningMeanStd:
    """One running mean/variance (VecNormalize's are one each here: the observation is a Box)."""
    if not isinstance(rms, RunningMeanStd):
        raise TypeError(f"expected one RunningMeanStd, got {type(rms).__name__}")
    return rms


def _box_size(space: object) -> int:
    shape = getattr(space, "shape", None)
    if not shape:
        raise TypeError("the env's spaces must be flat Boxes")
    return int(shape[0])


def _rms_arrays(prefix: str, rms) -> dict[str, np.ndarray]:
    return {f"{prefix}/mean": np.asarray(rms.mean, dtype=np.float64), f"{prefix}/var": np.asarray(rms.var, dtype=np.float64),
            f"{prefix}/count": np.asarray(rms.count, dtype=np.float64)}


def resume_state(model: PPO, venv: VecNormalize, extra_header: dict | None = None) -> bytes:
    """Everything needed to continue training ``model`` later, as pickle-free bytes."""
    arrays: dict[str, np.ndarray] = {}
    for name, tensor in model.policy.state_dict().items():
        arrays[f"policy/{name}"] = tensor.detach().cpu().numpy()
    optim = model.policy.optimizer.state_dict()
    for idx, entry in optim["state"].items():
        for key, value in entry.items():
            arrays[f"optim/{int(idx)}/{key}"] = torch.as_tensor(value).detach().cpu().numpy()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in optim["param_groups"]]
    arrays |= _rms_arrays("obs_rms", venv.obs_rms) | _rms_arrays("ret_rms", venv.ret_rms)
    arrays["rng/torch"] = torch.get_rng_state().numpy()
    np_state = np.random.get_state(legacy=True)
    if not isinstance(np_state, tuple):  # MT19937's legacy form, which set_state takes back
        raise TypeError("numpy's global generator is not MT19937")
    arrays["rng/numpy"] = np.asarray(np_state[1], dtype=np.uint32)
    py_state = random.getstate()
    arrays["rng/python"] = np.asarray(py_state[1], dtype=np.uint64)
    header = {
        "trainer": "sb3",
        "env_steps": int(model.num_timesteps),
        "n_updates": int(getattr(model, "_n_updates", 0)),
        "episode_num": int(getattr(model, "_episode_num", 0)),
        "num_envs": int(venv.num_envs),
        "obs_dim": _box_size(venv.observation_space),
        "act_dim": _box_size(venv.action_space),
        "optim_param_groups": groups,
        "optim_state_keys": sorted(int(i) for i in optim["state"]),
        "rng_numpy": [str(np_state[0]), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "rng_python": [int(py_state[0]), py_state[2]],
    } | (extra_header or {})
    return pack_resume_state(header, arrays)


def restore_state(model: PPO, venv: VecNormalize, raw: bytes) -> dict:
    """Load ``resume_state`` bytes into a freshly built ``model``/``venv``; returns the header.

    ResumeStateError when the state does not fit (other trainer, other observation/action sizes)."""
    header, arrays = unpack_resume_state(raw, trainer="sb3")
    obs_dim, act_dim = _box_size(venv.observation_space), _box_size(venv.action_space)
    if header.get("obs_dim") != obs_dim or header.get("act_dim") != act_dim:
        raise ResumeStateError(f"resume state is for obs/act sizes {header.get('obs_dim')}/{header.get('act_dim')}, "
                               f"this task has {obs_dim}/{act_dim}")
    own = model.policy.state_dict()
    loaded = {}
    for name, tensor in own.items():
        value = arrays.get(f"policy/{name}")
        if value is None or tuple(value.shape) != tuple(tensor.shape):
            raise ResumeStateError(f"resume state lacks or mis-sizes policy parameter {name!r}")
        loaded[name] = torch.from_numpy(np.array(value)).to(dtype=tensor.dtype)
    model.policy.load_state_dict(loaded, strict=True)
    state: dict[int, dict] = {}
    for key, value in arrays.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = torch.from_numpy(np.array(value))
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in header["optim_param_groups"]]
    try:
        model.policy.optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError) as exc:
        raise ResumeStateError(f"optimizer state does not fit: {exc}") from None
    for prefix, rms in (("obs_rms", _rms(venv.obs_rms)), ("ret_rms", venv.ret_rms)):
        mean, var = arrays[f"{prefix}/mean"], arrays[f"{prefix}/var"]
        if np.shape(mean) != np.shape(rms.mean):
            raise ResumeStateError(f"{prefix} has shape {np.shape(mean)}, expected {np.shape(rms.mean)}")
        rms.mean, rms.var, rms.count = np.array(mean), np.array(var), float(arrays[f"{prefix}/count"])
    if "rng/torch" in arrays:
        torch.set_rng_state(torch.from_numpy(np.array(arrays["rng/torch"], dtype=np.uint8)))
    if "rng/numpy" in arrays and header.get("rng_numpy"):
        kind, pos, has_gauss, gauss = header["rng_numpy"]
        np.random.set_state((kind, np.array(arrays["rng/numpy"], dtype=np.uint32), pos, has_gauss, gauss))
    if "rng/python" in arrays and header.get("rng_python"):
        version, gauss = header["rng_python"]
        random.setstate((version, tuple(int(x) for x in arrays["rng/python"]), gauss))
    model.num_timesteps = int(header["env_steps"])
    model._n_updates = int(header.get("n_updates", 0))
    model._episode_num = int(header.get("episode_num", 0))
    return header


#: stable-baselines3 PPO's settings here (its rollout: ``sb3_rollout``)
SB3_PPO: dict[str, Any] = {"batch_size": 64, "n_epochs": 10, "learning_rate": 3e-4, "gae_lambda": 0.95, "gamma": 0.99,
                           "ent_coef": 0.0}


def sb3_rollout(num_envs: int) -> int:
    """Steps per env in one rollout: about 2048 env-steps per update across the envs."""
    return max(16, 2048 // num_envs)


def describe_sb3(num_envs: int) -> list[str]:
    """What training does with a reward, in sentences (for the proposer), from these settings."""
    n_steps = sb3_rollout(num_envs)
    return [f"Training is stable-baselines3 PPO: each update collects {n_steps} steps of all {num_envs} worlds "
            f"({n_steps * num_envs:,} env-steps), then runs {SB3_PPO['n_epochs']} epochs of minibatches of "
            f"{SB3_PPO['batch_size']} at learning rate {SB3_PPO['learning_rate']:g}; discount gamma {SB3_PPO['gamma']:g}, "
            f"GAE lambda {SB3_PPO['gae_lambda']:g}; 64x64 MLP policy and critic.",
            "Observations and your reward are normalised by running statistics (VecNormalize) before PPO uses them: "
            "the reward's overall scale matters little, the relative size of its terms does.",
            "A world that reaches the time limit is not treated as failed (its value is bootstrapped); a world that "
            "terminates gets no further reward."]


class SB3Trainer(Trainer):
    """PPO from stable-baselines3 with a rollout of 2048 steps per update across the batch."""

    name = "sb3"
    supports_resume = True

    def __init__(self, env_reward: bool = False):
        """:param env_reward: train on the env's own reward (``reward`` may then be None)."""
        self.env_reward = env_reward

    def build(self, task: Task, reward: BatchReward | None, config: TrainConfig) -> tuple[PPO, VecNormalize, dict | None]:
        """The model and its envs, restored from ``config.resume`` when given (header returned)."""
        if self.env_reward and (reward is None or not isinstance(reward.fn, EnvRewardFn)):
            from rewardgen.tasks.fitness import make_fitness

            reward = BatchReward(EnvRewardFn(), make_fitness(task.fitness, task.schema), TrainingStats(config.steps),
                                 config.num_envs, task.episode_length)
        if reward is None:
            raise ValueError("SB3Trainer needs a reward unless env_reward=True")
        venv = VecNormalize(RewardVecEnv(task, reward, config.num_envs, config.seed, config.device,
                                         env_reward=self.env_reward),
                            norm_obs=True, norm_reward=True, gamma=0.99)
        model = PPO("MlpPolicy", venv, n_steps=sb3_rollout(config.num_envs), **SB3_PPO, seed=config.seed,
                    device=config.device, verbose=0)
        header = restore_state(model, venv, config.resume) if config.resume is not None else None
        return model, venv, header

    def train(self, task: Task, reward: BatchReward | None, config: TrainConfig, progress: ProgressFn) -> TrainOutput:
        start = time.perf_counter()
        model, venv, header = self.build(task, reward, config)
        inner = venv.venv
        assert isinstance(inner, RewardVecEnv)  # build() wraps one
        reward = inner.reward
        begin = int(model.num_timesteps)
        n_steps = model.n_steps
        model.learn(total_timesteps=config.steps, reset_num_timesteps=header is None,
                    callback=_Progress(progress, every=n_steps * config.num_envs, offset=begin))
        progress(model.num_timesteps - begin)
        seconds = time.perf_counter() - start
        done = int(model.num_timesteps) - begin
        return TrainOutput(policy=export_policy(model, venv), stats=reward.summary(),
                           env_steps=int(model.num_timesteps), seconds=seconds, slice_env_steps=done,
                           resumed_from=begin, resume_state=resume_state(model, venv), env_reward=self.env_reward)
