# attack: static check and audit hook skipped: forge a result on the result pipe, then end the process
#   with os._exit(0) so that the forged frame would be the last word
# expect: runtime
# cause: reward process exited
# flags: bypass noaudit


def _os():
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__


def compute_reward(s):
    os = _os()
    sys = os["sys"]
    fd = int(sys.argv[sys.argv.index("--result-fd") + 1])
    frame = sys.modules["json"].dumps({"type": "result", "stats": {}, "env_steps": "many"}).encode()
    try:
        os["write"](fd, sys.modules["struct"].pack(">cQ", b"J", len(frame)) + frame)
    except OSError:
        pass
    os["_exit"](0)
