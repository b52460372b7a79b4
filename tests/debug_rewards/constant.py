"""Planted defect: 'bonus' is the same number every step."""
import torch


def compute_reward(s):
    forward = s.body_linvel["torso"][:, 0]
    bonus = 0.5 * torch.ones_like(forward)
    return forward + bonus, {"forward": forward, "bonus": bonus}
