# attack: allocate a 40 GB tensor
# expect: runtime
# cause: memory limit
import torch

def compute_reward(s):
    big = torch.ones(10_000_000_000)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
