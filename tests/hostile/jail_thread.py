# attack: static check and audit hook skipped: start a thread (a second flow of control the trusted
#   side does not wait for)
# expect: runtime
# cause: can't start new thread
# flags: bypass noaudit


def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__


def compute_reward(s):
    threading = _os()["sys"].modules["threading"]
    threading.Thread(target=lambda: None).start()
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
