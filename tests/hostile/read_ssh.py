# attack: read ~/.ssh/id_rsa via pathlib
# expect: static
# cause: import of 'pathlib'
import pathlib

def compute_reward(s):
    raise ValueError(pathlib.Path("~/.ssh/id_rsa").expanduser().read_text())
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
