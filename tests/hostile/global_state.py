# attack: torch.set_num_threads(512) / set_default_dtype to disturb training
# expect: static
# cause: torch.set_
import torch

def compute_reward(s):
    torch.set_num_threads(512)
    torch.set_default_dtype(torch.float64)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
