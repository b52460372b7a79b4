"""Planted defect: 'time_bonus' grows linearly with the episode step."""
import torch


def compute_reward(s):
    forward = s.body_linvel["torso"][:, 0]
    time_bonus = 0.002 * s.step
    return forward + time_bonus, {"forward": forward, "time_bonus": time_bonus}
