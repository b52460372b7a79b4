# attack: fork bomb with os.fork (bounded to 30 forks so a failure cannot hurt the machine)
# expect: static
# cause: import of 'os'
import os

def compute_reward(s):
    for _ in range(30):
        if os.fork() == 0:
            os._exit(0)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
