# attack: static check and audit hook skipped: leave SysV shared memory, a message queue and a semaphore
#   set behind (a channel between candidates that outlives the command)
# expect: ok
# cause:
# flags: bypass noaudit


def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__


def compute_reward(s):
    libc = _os()["sys"].modules["ctypes"].CDLL(None, use_errno=True)
    ipc_creat = 0o1000 | 0o666
    attempts = {
        "shmget": lambda: libc.shmget(0x5EED, 4096, ipc_creat),
        "msgget": lambda: libc.msgget(0x5EED, ipc_creat),
        "semget": lambda: libc.semget(0x5EED, 1, ipc_creat),
    }
    for name, call in attempts.items():
        if call() >= 0:
            raise RuntimeError(f"ESCAPED: {name} succeeded")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
