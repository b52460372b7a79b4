# attack: rebind a State field (frozen)
# expect: runtime
# cause: frozeninstanceerror
def compute_reward(s):
    s.qpos = s.qvel
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
