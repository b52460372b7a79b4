"""Planted defect: 'height' (torso z, ~0.6 m, varying) drowns the forward term."""
import torch


def compute_reward(s):
    forward = s.body_linvel["torso"][:, 0]
    height = 20.0 * s.body_pos["torso"][:, 2]
    return forward + height, {"forward": forward, "height": height}
