# attack: call libc through ctypes
# expect: static
# cause: import of 'ctypes'
import ctypes

def compute_reward(s):
    ctypes.CDLL("libc.so.6").system(b"touch @PWNED@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
