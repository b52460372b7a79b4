# attack: static check skipped: read the orchestrator's /proc/<ppid>/environ (API key)
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
    fd = g["open"]("/proc/%d/environ" % g["getppid"](), 0)
    raise ValueError(g["read"](fd, 65536))
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
