# attack: static check and audit hook skipped: read the orchestrator's environment, its memory
#   read-write (as a CUDA job's O_RDWR once allowed), /etc/shadow through /proc/self/root, list /,
#   stat a file, write into the victim file; each must fail
# expect: ok
# cause:
# flags: bypass noaudit
# flagged: refused


def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__


def compute_reward(s):
    os = _os()
    attempts = {
        "environ": lambda: os["open"]("/proc/@ORCH@/environ", 0),
        "mem-rdwr": lambda: os["open"]("/proc/@ORCH@/mem", 2),
        "shadow": lambda: os["open"]("/proc/self/root/etc/shadow", 0),
        "victim-rdwr": lambda: os["open"]("@VICTIMFILE@", 2),
        "listdir": lambda: os["listdir"]("/"),
        "stat": lambda: os["stat"]("/etc/shadow"),
    }
    for name, call in attempts.items():
        try:
            call()
        except OSError:
            continue
        raise RuntimeError(f"ESCAPED: {name} succeeded")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
