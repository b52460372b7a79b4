"""PPOTrainer: solves the inverted pendulum from its exported policy, reproducibly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rewardgen.contract.reward import load_reward
from rewardgen.tasks.fitness import make_fitness
from rewardgen.contract.policy import DeterministicPolicy, PolicyExport
from rewardgen.tasks.spec import get_task
from rewardgen.trainers import get_trainer
from rewardgen.trainers.base import BatchReward, TrainConfig, TrainingStats
from rewardgen.trainers.ppo import PPOHyperparams, PPOTrainer

warnings.filterwarnings("ignore", message=".*precision lowered.*")

ALIVE = """
import torch

def compute_reward(s):
    alive = torch.ones_like(s.qpos[:, 0])
    upright = -s.qpos[:, 1] ** 2
    return alive + 0.0 * upright, {"alive": alive, "upright": upright}
"""


def _train(steps: int, hp: PPOHyperparams, seed: int = 0):
    task = get_task("inverted-pendulum-balance")
    reward = BatchReward(load_reward(ALIVE), make_fitness(task.fitness, task.schema), TrainingStats(steps),
                         hp.num_envs, task.episode_length)
    seen: list[int] = []
    out = PPOTrainer(hp).train(task, reward, TrainConfig(steps=steps, seed=seed), seen.append)
    return task, out, seen


@pytest.mark.slow
def test_ppo_solves_inverted_pendulum():
    task, out, seen = _train(50_000, PPOHyperparams(num_envs=32, rollout_steps=16))
    assert out.env_steps <= 50_000 + 32 * 16 and seen[-1] == out.env_steps
    export = PolicyExport.from_bytes(out.policy.to_bytes())
    policy = DeterministicPolicy(export)
    env = task.make_env()
    lengths = []
    for episode in range(3):
        obs, _ = env.reset(seed=1000 + episode)
        for n in range(1, task.episode_length + 1):
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            if terminated or truncated:
                break
        lengths.append(n)
    assert np.mean(lengths) / task.episode_length >= 0.95, lengths
    assert set(out.stats["components"]) == {"alive", "upright"}
    assert out.stats["num_episodes"] > 0
    assert out.slice_env_steps == out.env_steps and out.resumed_from == 0 and out.resume_state


def test_ppo_is_reproducible_and_registered():
    hp = PPOHyperparams(num_envs=8, rollout_steps=16, epochs=2)
    _, a, _ = _train(1024, hp, seed=3)
    _, b, _ = _train(1024, hp, seed=3)
    for k, v in a.policy.arrays.items():
        np.testing.assert_array_equal(v, b.policy.arrays[k])
    assert isinstance(get_trainer("ppo"), PPOTrainer)


def test_batch_the_minibatches_do_not_divide_trains():
    """7 worlds x 10 steps = 70 samples in 4 minibatches of 17: the last 2 sit out each epoch."""
    _, out, seen = _train(2000, PPOHyperparams(num_envs=7, rollout_steps=10, minibatches=4))
    assert seen[-1] == out.env_steps == 2030
    assert all(np.isfinite(v) for v in out.losses.values())


def test_helper_thread_changes_nothing():
    """The helper thread (step t+1's physics while step t's reward is booked; the critic's backward
    pass beside the actor's) must give the single-threaded loop's results exactly: same policy, same
    episode books (the pendulum falls often early on, so resets are in)."""
    seq = PPOHyperparams(num_envs=16, rollout_steps=16, epochs=2, minibatches=2, use_helper_thread=False)
    par = PPOHyperparams(num_envs=16, rollout_steps=16, epochs=2, minibatches=2, use_helper_thread=True)
    _, a, _ = _train(2048, seq, seed=5)
    _, b, _ = _train(2048, par, seed=5)
    assert a.stats["num_episodes"] > 16
    assert a.stats == b.stats and a.losses == b.losses
    for k, v in a.policy.arrays.items():
        np.testing.assert_array_equal(v, b.policy.arrays[k])


def test_jobs_get_their_share_of_the_cores():
    """Workers running side by side must not each start a physics pool over every core plus the helper
    thread (measured 7-12% slower in all); a lone worker uses the whole machine."""
    from rewardgen.run.executors import LocalExecutor, usable_cores

    cores = usable_cores()
    pool = LocalExecutor(max_workers=cores)
    try:
        assert pool.cpu_threads(1) == cores
        assert pool.cpu_threads(cores) == 1 and pool.cpu_threads(10 * cores) == 1
    finally:
        pool.close()
    alone = get_trainer("ppo", cpu_threads=2).hp
    shared = get_trainer("ppo", cpu_threads=1).hp
    assert (alone.sim_threads, alone.use_helper_thread) == (2, True)
    assert (shared.sim_threads, shared.use_helper_thread) == (1, False)
    assert get_trainer("ppo").hp.use_helper_thread  # `rewardgen train`: the whole machine


FORWARD = """
import torch

def compute_reward(s):
    forward = s.qvel[:, 0]
    return forward, {"forward": forward}
"""


def test_an_episode_that_straddles_a_resumed_slice_is_booked_whole():
    """halfcheetah-backflip's episodes are 300 steps (no early end). Slice 1 stops mid-episode (192 steps
    per world), slice 2 continues the worlds: its episodes are 300 steps long, with the returns and
    fitness of one uninterrupted training, not 108-step pieces booked from the resume on."""
    task = get_task("halfcheetah-backflip")
    hp = PPOHyperparams(num_envs=8, rollout_steps=16, epochs=1)
    fitness = make_fitness(task.fitness, task.schema)

    def train(steps: int, resume: bytes | None = None):
        reward = BatchReward(load_reward(FORWARD), fitness, TrainingStats(steps), 8, task.episode_length)
        out = PPOTrainer(hp).train(task, reward, TrainConfig(steps=steps, seed=2, resume=resume), lambda s: None)
        return out, reward

    one, r1 = train(8 * 16 * 12)
    two, r2 = train(8 * 16 * 12, one.resume_state)
    whole, rw = train(8 * 16 * 24)
    assert r1.stats.episode_returns == [] and len(r2.stats.episode_returns) == 8
    assert {e["length"] for e in two.stats["episodes"]} == {300.0}
    np.testing.assert_allclose(r2.stats.episode_returns, rw.stats.episode_returns, rtol=1e-9)
    np.testing.assert_allclose(r2.stats.episode_fitness, rw.stats.episode_fitness, rtol=1e-9)
