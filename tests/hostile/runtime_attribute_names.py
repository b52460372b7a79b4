# attack: attribute names built at runtime without getattr: hasattr probing, a format field, an alias
#   of torch whose namespace is read from a plain variable (t.functional is the real torch.functional)
# expect: static
# cause: built at runtime
import torch


def compute_reward(s):
    name = "sa" + "ve"
    if hasattr(torch, name):
        pass
    t = torch
    real = t.functional
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
