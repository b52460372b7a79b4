# attack: __import__('os')
# expect: static
# cause: __import__
def compute_reward(s):
    __import__("os").system("touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
