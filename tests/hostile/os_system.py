# attack: os.system via torch.os
# expect: static
# cause: .os
import torch

def compute_reward(s):
    torch.os.system("touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
