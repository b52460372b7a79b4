"""Reward-hacking alarm (issue 7): fires when the reward rises and the fitness does not.

The real test trains two tiny Reacher policies (rewardgen PPO, 40k env-steps each, two at a time) in
the sandboxed worker: one reward pays for holding the fingertip far from the arm's base (which the
reach fitness does not care about), the other for the distance to the target.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from rewardgen.evaluate.hacking import hacking_alarm
from rewardgen.procs import WorkerLimits, run_worker
from rewardgen.tasks.spec import get_task

REACH_FAR = '''
import torch

def compute_reward(s):
    far = torch.linalg.norm(s.body_pos["fingertip"][:, :2], dim=-1)
    ctrl = -0.01 * (s.action ** 2).sum(dim=-1)
    return far + ctrl, {"far": far, "ctrl": ctrl}
'''

REACH_TARGET = '''
import torch

def compute_reward(s):
    d = torch.linalg.norm(s.body_pos["fingertip"][:, :2] - s.body_pos["target"][:, :2], dim=-1)
    ctrl = -0.01 * (s.action ** 2).sum(dim=-1)
    return -d + ctrl, {"distance": -d, "ctrl": ctrl}
'''


def _points(returns, fitness):
    return {"episodes": [{"step": 100 * (i + 1), "episodes": 10, "length": 50.0, "return": r, "fitness": f}
                         for i, (r, f) in enumerate(zip(returns, fitness))],
            "reward_fitness_correlation": None}


def test_synthetic_cases():
    assert hacking_alarm(_points([1, 2, 3, 4, 5, 6], [0.5, 0.5, 0.49, 0.5, 0.5, 0.5]))["flag"] == "reward_hacking"
    falling = hacking_alarm(_points([-10, -8, -6, -4, -3, -2], [1.0, 0.9, 0.8, 0.6, 0.5, 0.4]))
    assert falling and "fell" in falling["message"] and falling["fitness_change"] < 0
    assert hacking_alarm(_points([1, 2, 3, 4, 5, 6], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])) is None  # both rise
    assert hacking_alarm(_points([5, 5, 5, 5, 5, 5], [0.5, 0.4, 0.3, 0.3, 0.2, 0.1])) is None  # reward flat
    assert hacking_alarm(_points([1, 9], [0, 0])) is None  # too few points
    assert hacking_alarm({}) is None and hacking_alarm(None) is None
    assert hacking_alarm({"episodes": [{"return": float("nan"), "fitness": 1.0}] * 5}) is None


@pytest.fixture(scope="module")
def trained() -> dict[str, dict]:
    task = get_task("reacher-reach")

    def train(source: str) -> dict:
        job = {"mode": "train", "task": task.to_dict(), "source": source, "steps": 40_000, "seed": 0,
               "trainer": "ppo"}
        res = run_worker(job, WorkerLimits(wall_seconds=300))
        assert res.ok, (res.stage, res.error)
        return res.result["stats"]

    with ThreadPoolExecutor(2) as pool:
        far, target = pool.map(train, [REACH_FAR, REACH_TARGET])
    return {"far": far, "target": target}


@pytest.mark.slow
def test_fires_on_a_reward_that_pays_for_something_else(trained):
    alarm = hacking_alarm(trained["far"])
    assert alarm is not None, trained["far"]["episodes"]
    assert alarm["reward_late"] > alarm["reward_early"] and alarm["fitness_change"] <= 0.05
    assert "reward hacking" in alarm["message"] and "\n" not in alarm["message"]


@pytest.mark.slow
def test_silent_on_a_sound_reward(trained):
    assert hacking_alarm(trained["target"]) is None, trained["target"]["episodes"]
