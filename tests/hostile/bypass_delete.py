# attack: static check skipped: os.remove of a file the test created
# expect: runtime
# cause: os.remove
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    _os()["remove"]("@VICTIMFILE@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
