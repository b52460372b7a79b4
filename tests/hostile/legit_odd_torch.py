# attack: legitimate, odd-but-valid torch: einsum, where, indexing, math, helpers, a class
# expect: ok
# cause: 
import math
import torch
import torch.nn.functional as F
from torch import linalg


class Shaper:
    def __init__(self, scale):
        self.scale = scale

    def __call__(self, x):
        return torch.exp(-self.scale * x)


def _angle(s):
    return s.joint_pos[list(s.joint_pos)[-1]]


def compute_reward(s):
    shape = Shaper(2.0)
    ang = _angle(s)
    energy = torch.einsum("ni,ni->n", s.qvel, s.qvel)
    upright = torch.where(ang.abs() < math.pi / 8, torch.ones_like(ang), shape(ang.abs()))
    idx = torch.arange(s.qpos.shape[0])
    picked = s.qpos[idx, torch.zeros_like(idx)]
    centred = -F.relu(picked.abs() - 0.5) - 0.01 * linalg.norm(s.qvel, dim=-1)
    comps = {"upright": upright, "energy": -1e-3 * energy, "centred": centred}
    total = sum(comps.values())
    return total, comps
