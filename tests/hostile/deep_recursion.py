# attack: unbounded recursion
# expect: runtime
# cause: recursionerror
def f(n):
    return f(n + 1) + 1

def compute_reward(s):
    f(0)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
