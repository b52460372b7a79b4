# attack: print megabytes per call
# expect: runtime
# cause: output flood
def compute_reward(s):
    print("A" * 1_000_000)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
