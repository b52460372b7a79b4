"""Planted defect: divides by a quantity that is zero on the first step (inf)."""
import torch


def compute_reward(s):
    forward = s.body_linvel["torso"][:, 0]
    rate = 0.01 / (s.step - 1.0)
    return forward + 0.0 * rate, {"forward": forward, "rate": rate}
