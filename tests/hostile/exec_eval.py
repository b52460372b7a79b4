# attack: exec a string that imports os
# expect: static
# cause: 'exec'
def compute_reward(s):
    exec("import os; os.system('touch @PWNED@')")
    eval("1")
    z = s.qpos[:, 0] * 0.0
    return z, {"z": z}
