# attack: the reward's torch reaches real submodules, and operator.attrgetter builds an attribute
#   name at runtime: torch.nn.modules.container.operator.attrgetter("o" + "s") on
#   torch.nn.modules.module.torch gives the real os (the validator's earlier bypass)
# expect: static
# cause: .modules
import torch


def compute_reward(s):
    op = torch.nn.modules.container.operator
    real_os = op.attrgetter("o" + "s")(torch.nn.modules.module.torch)
    real_os.system("touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
