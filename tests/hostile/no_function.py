# attack: defines no compute_reward
# expect: static
# cause: compute_reward
import torch

def reward(s):
    return 0
