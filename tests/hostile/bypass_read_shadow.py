# attack: static check skipped: os.open('/etc/shadow') via os globals
# expect: runtime
# cause: outside the allowed paths
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    g = _os()
    fd = g["open"]("/etc/shadow", 0)
    raise ValueError(g["read"](fd, 4096))
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
