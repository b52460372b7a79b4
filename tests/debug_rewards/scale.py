"""Planted defect: 'posture' is thousands of times smaller than 'forward'."""
import torch


def compute_reward(s):
    forward = s.body_linvel["torso"][:, 0]
    posture = -1e-5 * (s.qpos[:, 2:] ** 2).sum(dim=-1)
    return forward + posture, {"forward": forward, "posture": posture}
