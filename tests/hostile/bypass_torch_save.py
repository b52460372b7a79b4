# attack: static check skipped: torch.save via the real torch in sys.modules (C++ opens the file: no audit event;
#   the jail's empty root has no module files left to import for it, and seccomp refuses any open)
# expect: runtime
# cause: no module named
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    _os()["sys"].modules["torch"].save(s.qpos, "@PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
