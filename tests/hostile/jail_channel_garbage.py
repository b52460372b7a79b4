# attack: static check and audit hook skipped: write garbage into the jail's own reply pipe (the one
#   descriptor it may write besides stdout/stderr) to confuse the trusted side
# expect: runtime
# cause: malformed reply
# flags: bypass noaudit


def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__


def compute_reward(s):
    _os()["write"](4, b"\xff" * 64)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
