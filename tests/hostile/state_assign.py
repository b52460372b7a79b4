# attack: static check skipped (it refuses attribute stores outside the reward's own class): rebind a State
#   field (frozen)
# expect: runtime
# cause: frozeninstanceerror
# flags: bypass
def compute_reward(s):
    s.qpos = s.qvel
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
