# attack: raises at import time
# expect: runtime
# cause: zerodivisionerror
X = 1 / 0

def compute_reward(s):
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
