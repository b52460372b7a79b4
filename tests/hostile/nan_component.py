# attack: a component that is NaN
# expect: contract
# cause: non-finite
import torch

def compute_reward(s):
    bad = s.qpos[:, 0] * float("nan")
    return bad, {"bad": bad}
