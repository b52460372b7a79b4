# attack: grow a Python list without bound
# expect: runtime
# cause: memory limit
def compute_reward(s):
    xs = []
    while True:
        xs.append([0] * 1_000_000)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
