# attack: total has the wrong shape
# expect: contract
# cause: shape
import torch

def compute_reward(s):
    t = s.qpos.sum()
    return t, {"t": s.qpos[:, 0]}
