# attack: torch.ops / torch.classes / cpp_extension / from_file native entry points
# expect: static
# cause: torch.
import torch
from torch.utils import cpp_extension

def compute_reward(s):
    torch.from_file("/etc/shadow", size=10)
    torch.ops.load_library("/tmp/x.so")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
