# attack: sys.modules['os']
# expect: static
# cause: import of 'sys'
import sys

def compute_reward(s):
    sys.modules["os"].system("touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
