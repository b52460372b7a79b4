# attack: replace builtins (len, print) for everyone
# expect: static
# cause: __builtins__
def compute_reward(s):
    __builtins__["len"] = lambda x: 0
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
