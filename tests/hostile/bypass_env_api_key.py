# attack: static check skipped: dump os.environ in the error message (must not contain the key)
# expect: runtime
# cause: valueerror
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    raise ValueError(str(dict(_os()["environ"])))
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
