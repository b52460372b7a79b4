"""PPO's actor and critic: separate tanh MLPs and a state-independent Gaussian log-std."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def mlp(sizes: list[int], out_std: float) -> nn.Sequential:
    """Linear layers with tanh between them, orthogonally initialised (gain sqrt(2), ``out_std`` for the
    last layer) with zero biases."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, out_std if last else np.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """The actor's mean is the exported policy (clipped to [-1, 1] as the env expects); the critic
    shares no weight with it, so their losses can be backpropagated apart."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], init_log_std: float):
        super().__init__()
        self.actor = mlp([obs_dim, *hidden, act_dim], out_std=0.01)
        self.critic = mlp([obs_dim, *hidden, 1], out_std=1.0)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def dist(self, x: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.actor(x), self.log_std.exp().expand(x.shape[0], -1))

    def log_prob(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-density of ``action`` under the policy at observations ``x``, summed over action
        dimensions (written out: cheaper than ``dist(x).log_prob``)."""
        z = (action - self.actor(x)) * torch.exp(-self.log_std)
        return (-0.5 * z * z - self.log_std - HALF_LOG_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        """The Gaussian's entropy, the same at every state: a function of ``log_std`` alone."""
        return (self.log_std + 0.5 + HALF_LOG_2PI).sum()
