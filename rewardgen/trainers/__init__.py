"""Trainers: RL algorithms that train a policy with a candidate reward (run inside a worker)."""
