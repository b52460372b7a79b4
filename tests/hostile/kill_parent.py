# attack: os.kill the orchestrator / a victim process
# expect: static
# cause: import of 'os'
import os

def compute_reward(s):
    os.kill(@VICTIM@, 9)
    os.kill(os.getppid(), 9)
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
