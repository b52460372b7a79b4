# attack: write a file with open() at an absolute /tmp path
# expect: static
# cause: 'open'
def compute_reward(s):
    with open("@PWNED@", "w") as f:
        f.write("pwned")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
