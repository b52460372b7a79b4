# attack: static check skipped: plain 'import os' inside the reward
# expect: runtime
# cause: import 'os'
# flags: bypass
def compute_reward(s):
    import os
    os.system("touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
