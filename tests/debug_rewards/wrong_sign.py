"""Planted defect: the control cost is added with a positive sign (pays for effort)."""
import torch


def compute_reward(s):
    forward = s.body_linvel["torso"][:, 0]
    ctrl_cost = 0.1 * (s.action ** 2).sum(dim=-1)
    return forward + ctrl_cost, {"forward": forward, "ctrl_cost": ctrl_cost}
