# attack: a component name with a lone surrogate (crashes HTML pages and terminal output downstream)
# expect: contract
# cause: valid unicode
import torch


def compute_reward(s):
    z = s.qpos[:, 0] * 0.0
    return z, {"ok": z, "bad\udce9name": z}
