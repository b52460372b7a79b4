# attack: read OPENAI_API_KEY from the environment via torch.os
# expect: static
# cause: .os
import torch

def compute_reward(s):
    raise ValueError(torch.os.environ.get("OPENAI_API_KEY"))
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
