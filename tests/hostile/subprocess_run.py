# attack: run a shell command with subprocess
# expect: static
# cause: import of 'subprocess'
import subprocess

def compute_reward(s):
    subprocess.run(["touch", "@PWNED@"])
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
