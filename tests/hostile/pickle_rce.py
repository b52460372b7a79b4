# attack: pickle.loads of a crafted payload
# expect: static
# cause: import of 'pickle'
import pickle

def compute_reward(s):
    pickle.loads(b"cos\nsystem\n(S'touch @PWNED@'\ntR.")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
