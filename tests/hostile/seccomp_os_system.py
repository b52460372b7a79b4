# attack: static check and audit hook skipped: os.system must fail to fork (seccomp)
# expect: runtime
# cause: system failed
# flags: bypass noaudit

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    rc = _os()["system"]("touch @PWNED@")
    if rc != 0:
        raise RuntimeError("system failed: %r" % rc)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
