# attack: static check skipped: running generator frame -> worker globals -> real open() (the audit hook refuses gi_frame)
# expect: runtime
# cause: gi_frame
# flags: bypass
def _gen():
    yield 0

def compute_reward(s):
    def inner():
        f = gen.gi_frame
        while f is not None and "np" not in f.f_globals:
            f = f.f_back
        return f.f_globals["__builtins__"]
    import torch
    gen = (inner() for _ in [0])
    b = next(gen)
    op = b["open"] if isinstance(b, dict) else b.open
    op("@PWNED@", "w").write("pwned")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
