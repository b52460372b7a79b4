"""Planted defect: pays for moving backwards (sign error on the task's goal)."""
import torch


def compute_reward(s):
    speed = -s.body_linvel["torso"][:, 0]
    ctrl = -0.1 * (s.action ** 2).sum(dim=-1)
    return speed + ctrl, {"speed": speed, "ctrl": ctrl}
