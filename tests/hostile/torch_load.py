# attack: torch.load a pickle (arbitrary code)
# expect: static
# cause: .load
import torch

def compute_reward(s):
    torch.load("/etc/passwd", weights_only=False)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
