# attack: static check and audit hook skipped: write a forged result frame (huge fitness-bearing
#   env_steps, a smuggled policy) onto the worker's result pipe, whose number is in sys.argv, then
#   carry on as a reward that pays nothing
# expect: ok
# cause:
# flags: bypass noaudit


def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__


def _forge():
    os = _os()
    sys = os["sys"]
    json, struct = sys.modules["json"], sys.modules["struct"]
    fd = int(sys.argv[sys.argv.index("--result-fd") + 1])
    frame = json.dumps({"type": "result", "stats": {}, "env_steps": 10**9, "seconds": 1.0,
                        "trainer": "forged"}).encode()
    policy = b"PK-forged-policy"
    for kind, body in ((b"J", frame), (b"B", policy)):
        for target in (fd, 0, 5, 6, 7, 8, 9, 10):  # (3 and 4 are its own channel: see jail_channel_garbage)
            try:
                os["write"](target, struct.pack(">cQ", kind, len(body)) + body)
            except OSError:
                pass


def compute_reward(s):
    _forge()
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
