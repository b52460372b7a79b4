# attack: write a file into the test's tmp dir via os
# expect: static
# cause: import of 'os'
import os

def compute_reward(s):
    os.makedirs("@TMPDIR@", exist_ok=True)
    open("@TMPDIR@/x", "w").write("x")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
