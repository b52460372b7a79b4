# attack: static check skipped: the validator's earlier bypass run in the jail; the reward's torch
#   there is a view with no real submodule, so torch.nn.modules is not there to walk
# expect: runtime
# cause: has no attribute 'modules'
# flags: bypass
import torch


def compute_reward(s):
    op = torch.nn.modules.container.operator
    real_os = op.attrgetter("o" + "s")(torch.nn.modules.module.torch)
    real_os.system("touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
