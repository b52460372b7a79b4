# attack: a class whose method is called unbound with self bound to a module, reading an attribute
#   name of its own that real modules carry (self.torch, then self.os)
# expect: static
# cause: real objects carry
import torch
import torch.nn.functional as F


class Trick:
    def __init__(self):
        self.torch = 0
        self.os = 0

    def exp(self):
        return self.torch

    def sum(self):
        return self.os


def compute_reward(s):
    real_os = Trick.sum(Trick.exp(F))
    real_os.system("touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
