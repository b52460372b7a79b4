# attack: getattr(torch, 'sa' + 've') to dodge the name check
# expect: static
# cause: 'getattr'
import torch

def compute_reward(s):
    getattr(torch, "sa" + "ve")(s.qpos, "@PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
