# attack: static check skipped: import a module not loaded yet through the real __import__
# expect: runtime
# cause: sandbox refused
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    imp = _os()["sys"].modules["builtins"].__import__
    imp("smtplib").SMTP("127.0.0.1", @PORT@)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
