# attack: a thousand components (memory and books of the trusted side)
# expect: contract
# cause: at most 64 components
import torch


def compute_reward(s):
    z = s.qpos[:, 0] * 0.0
    comps = {f"c{i}": z for i in range(1000)}
    return z, comps
