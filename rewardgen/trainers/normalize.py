"""Observation and reward normalisation for PPO, as SB3's VecNormalize does it: running statistics,
so that rewards and observations of any scale train alike."""

from __future__ import annotations

import torch

EPS = 1e-8
"""added to a variance before its square root (as in ``DeterministicPolicy``, which reads the exported
``obs_mean``/``obs_var`` with the same formula)"""


class RunningMeanStd:
    """Parallel-algorithm running mean/variance (float64, on the training device)."""

    def __init__(self, shape: tuple[int, ...] = (), device: torch.device | str = "cpu"):
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = 1e-4

    def update(self, x: torch.Tensor) -> None:
        """Fold a batch (leading dimension) in. Replaces ``mean`` and ``var`` rather than writing into
        them, so a reference taken before stays that moment's value."""
        x = x.to(torch.float64)
        b_var, b_mean = torch.var_mean(x, dim=0, correction=0)
        b_count = x.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * (b_count / total)
        m2 = self.var * self.count + b_var * b_count + delta.square() * (self.count * b_count / total)
        self.var = m2 / total
        self.count = total


class Normalization:
    """Running observation statistics, and rewards scaled by the running std of each world's
    discounted return (a reward's overall scale then matters little, the relative size of its terms
    does).

    :param clip_obs: normalised observations are clipped to +-this.
    :param clip_reward: scaled rewards are clipped to +-this.
    :param scale_rewards: False: rewards pass unscaled and unclipped.
    """

    def __init__(self, obs_dim: int, num_envs: int, gamma: float, clip_obs: float, clip_reward: float,
                 scale_rewards: bool, device: torch.device):
        self.obs_rms = RunningMeanStd((obs_dim,), device)
        self.ret_rms = RunningMeanStd((), device)
        self.discounted = torch.zeros(num_envs, dtype=torch.float64, device=device)
        """each world's discounted return so far (reset when its episode ends)"""
        self.gamma, self.clip_obs, self.clip_reward, self.scale_rewards = gamma, clip_obs, clip_reward, scale_rewards

    def obs(self, raw: torch.Tensor, mean: torch.Tensor | None = None, var: torch.Tensor | None = None) -> torch.Tensor:
        """``raw`` observations normalised (float32) with the current statistics, or ``mean``/``var``
        kept from an earlier moment."""
        mean = self.obs_rms.mean if mean is None else mean
        var = self.obs_rms.var if var is None else var
        x = (raw - mean) / torch.sqrt(var + EPS)
        return x.clamp(-self.clip_obs, self.clip_obs).to(torch.float32)

    def reward(self, r: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """One step's rewards (float64) as PPO trains on them; updates the return statistics and
        restarts the discounted return of the worlds whose episode ended (``done``)."""
        if not self.scale_rewards:
            return r
        self.discounted = self.discounted * self.gamma + r
        self.ret_rms.update(self.discounted)
        r = (r / torch.sqrt(self.ret_rms.var + EPS)).clamp(-self.clip_reward, self.clip_reward)
        self.discounted.masked_fill_(done, 0.0)
        return r
