# attack: str.format attribute walk to reach globals
# expect: static
# cause: '__'
def compute_reward(s):
    raise ValueError("{0.__globals__}".format(compute_reward))
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
