# attack: match statement reads attributes by bare name (case C(__base__=O)) to reach object and from there os
# expect: static
# cause: match pattern
import torch


def compute_reward(s):
    match int:
        case torch.Tensor(__base__=O):
            pass
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
