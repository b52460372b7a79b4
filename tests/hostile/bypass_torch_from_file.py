# attack: static check skipped: torch.from_file is not in the reward's torch
# expect: runtime
# cause: from_file
# flags: bypass
import torch

def compute_reward(s):
    torch.from_file("/etc/shadow", size=10)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
