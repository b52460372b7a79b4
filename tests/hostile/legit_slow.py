# attack: legitimate but slow: 200 small torch ops per call
# expect: ok
# cause: 
import torch

def compute_reward(s):
    x = s.qpos[:, 1]
    acc = torch.zeros_like(x)
    for i in range(200):
        acc = acc + torch.cos(x * (i % 7)) * 1e-3
    return acc, {"acc": acc}
