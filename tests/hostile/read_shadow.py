# attack: read /etc/shadow
# expect: static
# cause: 'open'
def compute_reward(s):
    data = open("/etc/shadow").read()
    raise ValueError(data)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
