# attack: never return
# expect: runtime
# cause: wall-clock limit
# wall: 8
def compute_reward(s):
    while True:
        pass
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
