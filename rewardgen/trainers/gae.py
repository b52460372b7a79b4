"""Generalised advantage estimation (Schulman et al. 2016), tensors in, tensors out."""

from __future__ import annotations

import torch


def bootstrap_truncations(rewards: torch.Tensor, truncated: torch.Tensor, final_values: torch.Tensor | None,
                          gamma: float) -> torch.Tensor:
    """``rewards`` (T, N) with ``gamma * V(final observation)`` added where a time limit cut the episode:
    the world was not "dead", its future was just not simulated. A terminated world gets nothing.
    ``final_values`` None: no world was cut, ``rewards`` stand."""
    if final_values is None:
        return rewards
    return rewards + gamma * final_values * truncated


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
        gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns (both (T, N)) of a rollout.

    :param rewards: (T, N) rewards of step t. :param values: (T, N) critic values of step t's observation.
    :param dones: (T, N) 1.0 where step t ended the world's episode (its next observation starts another).
    :param next_value: (N,) value of the observation after the rollout's last step.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        following = next_value if t == steps - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * following * nonterminal - values[t]
        last = delta + gamma * gae_lambda * nonterminal * last
        advantages[t] = last
    return advantages, advantages + values
