"""PPO's loss (Schulman et al. 2017), in its parts: the clipped surrogate objective for the actor, the
value loss for the critic, and the entropy bonus (``ActorCritic.entropy``).

The actor's and the critic's parts share no weight, so a trainer may backpropagate them apart (even
on two threads) and get the summed loss's gradients exactly.
"""

from __future__ import annotations

import torch


def clipped_objective(log_prob: torch.Tensor, old_log_prob: torch.Tensor, neg_advantages: torch.Tensor,
                      clip_coef: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The clipped surrogate to minimise, and the probability ratios and their logs it came from.

    ``neg_advantages`` are the normalised advantages already negated (one op fewer per minibatch).
    """
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    loss = torch.max(neg_advantages * ratio, neg_advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    return loss, ratio, log_ratio


def value_loss(value: torch.Tensor, returns: torch.Tensor, old_value: torch.Tensor,
               clip_coef: float | None) -> torch.Tensor:
    """Half the squared error to the returns; with ``clip_coef``, of the worse of the new value and the
    old one moved by at most ``clip_coef`` (the policy's clipping applied to the critic)."""
    if clip_coef is None:
        return 0.5 * (value - returns).pow(2).mean()
    clipped = old_value + (value - old_value).clamp(-clip_coef, clip_coef)
    return 0.5 * torch.max((value - returns).pow(2), (clipped - returns).pow(2)).mean()


def approx_kl(ratio: torch.Tensor, log_ratio: torch.Tensor) -> float:
    """How far the policy moved from the one that collected the rollout (an unbiased, low-variance
    estimate of KL(old || new))."""
    with torch.no_grad():
        return float(((ratio - 1) - log_ratio).mean())
