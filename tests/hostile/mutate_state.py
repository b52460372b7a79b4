# attack: write into the State tensors (must not move the simulator or the fitness)
# expect: ok
# cause: 
import torch

def compute_reward(s):
    s.qpos.add_(100.0)
    s.qvel[:] = 1e6
    s.body_pos["pole"].zero_()
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
