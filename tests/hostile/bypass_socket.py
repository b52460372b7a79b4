# attack: static check skipped: socket via the real __import__ from os globals
# expect: runtime
# cause: sandbox refused
# flags: bypass

def _os():
    # walk the class hierarchy to os._wrap_close and take the os module's globals
    for c in ().__class__.__base__.__subclasses__():
        if c.__name__ == "_wrap_close":
            return c.__init__.__globals__

def compute_reward(s):
    socket = _os()["sys"].modules["builtins"].__import__("socket")
    sock = socket.socket()  # (create_connection would first need the idna codec, which the jail cannot load)
    sock.connect(("127.0.0.1", @PORT@))
    sock.sendall(b"pwned")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
