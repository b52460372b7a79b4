# attack: static check skipped: raise the recursion limit through sys, then recurse without end (stack/memory exhaustion)
# expect: runtime
# cause: wall-clock limit
# wall: 8
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__


def f(n):
    return f(n + 1) + 1


def compute_reward(s):
    _os()["sys"].setrecursionlimit(10**8)
    f(0)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
