"""Sound: HalfCheetah-v5's own reward written in the contract (forward velocity - 0.1 |a|^2)."""
import torch


def compute_reward(s):
    forward = s.body_linvel["torso"][:, 0]
    ctrl = (s.action ** 2).sum(dim=-1)
    return forward - 0.1 * ctrl, {"forward": forward, "ctrl": -0.1 * ctrl}
