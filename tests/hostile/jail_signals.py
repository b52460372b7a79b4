# attack: static check and audit hook skipped: libc through ctypes (dlopen(NULL) opens no file) to
#   SIGSTOP a sibling with sigqueue (rt_sigqueueinfo), kill it, kill the whole group and every process,
#   drop the parent-death signal, start a new session; each must fail
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
    attempts = {
        "sigqueue": lambda: libc.sigqueue(@VICTIM@, 19, 0),
        "kill": lambda: libc.kill(@VICTIM@, 9),
        "kill-orchestrator": lambda: libc.kill(@ORCH@, 19),
        "kill-group": lambda: libc.kill(0, 19),
        "kill-all": lambda: libc.kill(-1, 9),
        "tgkill": lambda: libc.tgkill(@VICTIM@, @VICTIM@, 9),
        "pdeathsig": lambda: libc.prctl(1, 0, 0, 0, 0),
        "setsid": lambda: libc.setsid(),
        "setpgid": lambda: libc.setpgid(0, 0),
    }
    for name, call in attempts.items():
        if call() == 0:
            raise RuntimeError(f"ESCAPED: {name} succeeded")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
