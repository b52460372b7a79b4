"""A policy trained by rewardgen, as a torch module: load it with torch alone (no rewardgen).

    import policy                              # this file, beside policy.pt
    pi = policy.load("policy.pt")              # a torch.nn.Module, in eval mode
    action = pi.act(obs)                       # obs from the env: a numpy array, a list or a tensor

``pi(obs)`` maps observations of shape (..., obs_dim) to actions of shape (..., act_dim) in the env's
own action range, exactly as rewardgen's trusted evaluator acts: the observation is normalised with
the running mean and variance of training (``(obs - mean) / sqrt(var + epsilon)``, clipped to
``+-clip_obs``), passed through the MLP, clipped to [-1, 1] and rescaled linearly to the env's
``[action_low, action_high]``. ``pi.normalized_action(obs)`` gives the action before that rescaling.
``pi.meta`` says which env and task it was trained for (``env_id``, ``env_kwargs``,
``episode_length``, ...).

``policy.pt`` holds plain tensors, numbers and strings, read with ``torch.load(weights_only=True)``
(no pickled code). Run this file to see one episode: ``python policy.py policy.pt`` (needs gymnasium
with MuJoCo for that).
"""

from __future__ import annotations

import itertools
import os
from typing import BinaryIO

import torch

FORMAT = "rewardgen-policy/1"
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "elu": torch.nn.functional.elu}


class Policy(torch.nn.Module):
    """Observation normalisation, an MLP with ``activation`` between its layers, a clip to [-1, 1]
    and the rescaling to the env's action range."""

    # buffers (``register_buffer``): saved in the state dict with the weights
    obs_mean: torch.Tensor
    obs_var: torch.Tensor
    action_low: torch.Tensor
    action_high: torch.Tensor

    def __init__(self, obs_dim: int, hidden: list[int], act_dim: int, activation: str = "tanh",
                 clip_obs: float = 10.0, epsilon: float = 1e-8, rescale: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        sizes = [int(obs_dim), *[int(h) for h in hidden], int(act_dim)]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.activation, self.clip_obs = activation, float(clip_obs)
        self.epsilon, self.rescale = float(epsilon), bool(rescale)
        self.register_buffer("obs_mean", torch.zeros(int(obs_dim)))
        self.register_buffer("obs_var", torch.ones(int(obs_dim)))
        self.register_buffer("action_low", -torch.ones(int(act_dim)))
        self.register_buffer("action_high", torch.ones(int(act_dim)))
        self.meta: dict = {}

    def normalized_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The action in [-1, 1] (what the policy chose, before the env's action range)."""
        x = torch.as_tensor(obs, dtype=torch.float32)
        x = torch.clamp((x - self.obs_mean) / torch.sqrt(self.obs_var + self.epsilon), -self.clip_obs, self.clip_obs)
        act = ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.layers):
            assert isinstance(layer, torch.nn.Linear)  # the layers are built Linear in __init__
            x = x @ layer.weight.T + layer.bias  # as rewardgen's evaluator computes it, op for op
            if i < len(self.layers) - 1:
                x = act(x)
        return torch.clamp(x, -1.0, 1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The action in the env's own range: ``action_low + (a + 1) / 2 * (action_high - action_low)``."""
        a = self.normalized_action(obs)
        if not self.rescale:
            return a
        return self.action_low + (a + 1.0) * 0.5 * (self.action_high - self.action_low)

    @torch.no_grad()
    def act(self, obs):
        """``forward`` without gradients, for one observation or a batch; a numpy array in gives one out."""
        out = self(torch.as_tensor(obs, dtype=torch.float32))
        return out.numpy() if type(obs).__module__ == "numpy" else out


def load(path: str | os.PathLike[str] | BinaryIO = "policy.pt", map_location: str = "cpu") -> Policy:
    """The policy saved at ``path`` (``rewardgen export RUN --policy -o DIR`` writes ``DIR/policy.pt``), or
    read from an open binary file."""
    data = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a rewardgen policy ({FORMAT})")
    meta = data["meta"]
    arch = meta["architecture"]
    policy = Policy(arch["obs_dim"], arch["hidden"], arch["act_dim"], arch["activation"], arch["clip_obs"],
                    arch["epsilon"], arch["rescale"])
    policy.load_state_dict(data["state_dict"])
    policy.meta = meta
    return policy.eval()


if __name__ == "__main__":  # one episode in the env the policy was trained for
    import sys

    import gymnasium as gym

    pi = load(sys.argv[1] if len(sys.argv) > 1 else "policy.pt")
    if not pi.meta.get("env_id"):
        sys.exit("this policy was trained on an MJCF robot: build its env yourself and call pi.act(obs)")
    env = gym.make(pi.meta["env_id"], max_episode_steps=pi.meta["episode_length"], **pi.meta.get("env_kwargs", {}))
    obs, _ = env.reset(seed=0)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(pi.act(obs))
        total, steps, done = total + float(reward), steps + 1, terminated or truncated
    print(f"{pi.meta['env_id']}: {steps} steps, the env's own return {total:.2f}")
