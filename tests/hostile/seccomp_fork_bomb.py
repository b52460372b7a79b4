# attack: static check and audit hook skipped: bounded fork bomb must hit seccomp
# expect: runtime
# cause: operation not permitted
# flags: bypass noaudit

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
            g["execv"]("/bin/sleep", ["sleep", "30"])
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
