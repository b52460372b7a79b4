# attack: static check skipped: os.open(O_CREAT) through os globals found by a __subclasses__ walk
# expect: runtime
# cause: for writing
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    g = _os()
    fd = g["open"]("@PWNED@", g["O_WRONLY"] | g["O_CREAT"])
    g["write"](fd, b"pwned")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
