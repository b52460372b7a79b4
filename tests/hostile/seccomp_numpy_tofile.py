# attack: static check and audit hook skipped: numpy tofile writes the file from C (no audit event), must hit seccomp
# expect: runtime
# cause: tofile
# flags: bypass noaudit
def compute_reward(s):
    s.qpos.numpy().tofile("@TMPDIR@")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
