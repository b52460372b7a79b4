# attack: static check skipped: ctypes (already loaded in the worker) via sys.modules
# expect: runtime
# cause: ctypes.dlopen
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    ctypes = _os()["sys"].modules["ctypes"]
    ctypes.CDLL("libc.so.6").system(b"touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
