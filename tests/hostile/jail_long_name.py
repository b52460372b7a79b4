# attack: a component name of 10,000 characters and one with terminal escape codes
# expect: contract
# cause: longer than 100 characters
import torch


def compute_reward(s):
    z = s.qpos[:, 0] * 0.0
    return z, {"a" * 10000: z, "\x1b[2Jclear": z}
