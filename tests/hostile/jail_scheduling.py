# attack: static check and audit hook skipped: slow the orchestrator and siblings down or hog the CPU:
#   setpriority on a sibling, on the whole user, sched_setaffinity of a sibling, SCHED_FIFO for itself
# expect: ok
# cause:
# flags: bypass noaudit


def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__


def compute_reward(s):
    sys = _os()["sys"]
    ct = sys.modules["ctypes"]
    libc = ct.CDLL(None, use_errno=True)
    mask = ct.c_ulong(1)
    param = ct.c_int(50)
    attempts = {
        "setpriority-sibling": lambda: libc.setpriority(0, @VICTIM@, 19),
        "setpriority-orchestrator": lambda: libc.setpriority(0, @ORCH@, 19),
        "setpriority-user": lambda: libc.setpriority(2, 0, 19),
        "setpriority-self": lambda: libc.setpriority(0, 0, -20),
        "affinity-sibling": lambda: libc.sched_setaffinity(@VICTIM@, ct.sizeof(mask), ct.byref(mask)),
        "sched-fifo": lambda: libc.sched_setscheduler(0, 1, ct.byref(param)),
    }
    for name, call in attempts.items():
        if call() == 0:
            raise RuntimeError(f"ESCAPED: {name} succeeded")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
