# attack: importlib.import_module('os')
# expect: static
# cause: import of 'importlib'
import importlib

def compute_reward(s):
    importlib.import_module("os").system("touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
