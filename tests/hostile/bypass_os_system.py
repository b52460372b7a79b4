# attack: static check skipped: os.system via os globals
# expect: runtime
# cause: os.system
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    _os()["system"]("touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
