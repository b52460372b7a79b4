# attack: torch.save the state to a file
# expect: static
# cause: .save
import torch

def compute_reward(s):
    torch.save(s.qpos, "@PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
