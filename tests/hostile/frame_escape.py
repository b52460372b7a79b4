# attack: climb generator frames to the worker's globals
# expect: static
# cause: gi_frame
def compute_reward(s):
    g = (x for x in [0])
    f = g.gi_frame.f_back
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
