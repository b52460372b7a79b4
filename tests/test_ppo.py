"""PPOTrainer: solves the inverted pendulum from its exported policy, reproducibly."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

from rewardgen.contract.policy import DeterministicPolicy, PolicyExport
from rewardgen.contract.reward import load_reward
from rewardgen.sim import make_sim
from rewardgen.sim.protocol import BatchSimulator, ResumableSimulator, TimedSimulator
from rewardgen.tasks.fitness import make_fitness
from rewardgen.tasks.spec import get_task
from rewardgen.trainers import get_trainer
from rewardgen.trainers.base import BatchReward, TrainConfig, TrainingStats
from rewardgen.trainers.gae import bootstrap_truncations, gae
from rewardgen.trainers.ppo import PPOHyperparams, PPOTrainer

warnings.filterwarnings("ignore", message=".*precision lowered.*")

ALIVE = """
import torch

def compute_reward(s):
    alive = torch.ones_like(s.qpos[:, 0])
    upright = -s.qpos[:, 1] ** 2
    return alive + 0.0 * upright, {"alive": alive, "upright": upright}
"""


def _train(steps: int, hp: PPOHyperparams, seed: int = 0, progress=None):
    task = get_task("inverted-pendulum-balance")
    reward = BatchReward(load_reward(ALIVE), make_fitness(task.fitness, task.schema), TrainingStats(steps),
                         hp.num_envs, task.episode_length)
    seen: list[int] = []
    out = PPOTrainer(hp).train(task, reward, TrainConfig(steps=steps, seed=seed), progress or seen.append)
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
        n, terminated, truncated = 0, False, False
        while not (terminated or truncated) and n < task.episode_length:
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            n += 1
        lengths.append(n)
    assert np.mean(lengths) / task.episode_length >= 0.95, lengths
    assert set(out.stats["components"]) == {"alive", "upright"}
    assert out.stats["num_episodes"] > 0
    # the share of training episodes the termination rules ended: all at first (no world can live 1000 steps
    # in the first tenth of 50k env-steps over 32 worlds), fewer once the pole stays up
    early = [row["ended_early"] for row in out.stats["episodes"]]
    assert early[0] == 1.0 and min(early) < 1.0, early
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
    helpers: dict[bool, list[bool]] = {False: [], True: []}

    def helper_alive(pipelined: bool):
        return lambda step: helpers[pipelined].append(
            any(t.name.startswith("rewardgen-ppo") for t in threading.enumerate()))

    _, a, _ = _train(2048, seq, seed=5, progress=helper_alive(False))
    _, b, _ = _train(2048, par, seed=5, progress=helper_alive(True))
    assert not any(helpers[False]) and all(helpers[True])  # the two loops really ran
    assert not any(t.name.startswith("rewardgen-ppo") for t in threading.enumerate())  # and it was shut down
    assert a.stats["num_episodes"] > 16
    assert a.stats == b.stats and a.losses == b.losses
    for k, v in a.policy.arrays.items():
        np.testing.assert_array_equal(v, b.policy.arrays[k])


def test_helper_thread_changes_nothing_with_every_loss_option():
    """The same with the loss's options on (clipped value loss, entropy bonus, KL early stop, annealed
    learning rate), unscaled rewards and a batch the minibatches do not divide: the critic's half of
    each update runs on the helper thread whatever the loss is made of."""
    task = get_task("halfcheetah-run")
    outs = []
    for helper in (False, True):
        hp = PPOHyperparams(num_envs=7, rollout_steps=10, minibatches=4, clip_vloss=True, ent_coef=0.01,
                            target_kl=0.02, anneal_lr=True, normalize_reward=False, use_helper_thread=helper)
        reward = BatchReward(load_reward(FORWARD), make_fitness(task.fitness, task.schema), TrainingStats(2100), 7,
                             task.episode_length)
        outs.append(PPOTrainer(hp).train(task, reward, TrainConfig(steps=2100, seed=6), lambda s: None))
    a, b = outs
    assert a.losses == b.losses and a.losses["entropy"] != 0
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
    _, rw = train(8 * 16 * 24)
    assert r1.stats.episode_returns == [] and len(r2.stats.episode_returns) == 8
    assert {e["length"] for e in two.stats["episodes"]} == {300.0}
    np.testing.assert_allclose(r2.stats.episode_returns, rw.stats.episode_returns, rtol=1e-9)
    np.testing.assert_allclose(r2.stats.episode_fitness, rw.stats.episode_fitness, rtol=1e-9)


def test_gae_is_the_recursion_written_out():
    """Two worlds, three steps; world 1's episode ends after step 0, so nothing of step 1 flows back
    into step 0's advantage, and the last step bootstraps from the value after the rollout."""
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]])
    values = torch.tensor([[0.2, 0.4], [0.1, -0.3], [0.6, 0.5]])
    dones = torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    next_value = torch.tensor([0.7, -0.2])
    adv, ret = gae(rewards, values, dones, next_value, gamma, lam)
    expected = np.zeros((3, 2))
    for w in range(2):
        last = 0.0
        for t in (2, 1, 0):
            following = float(next_value[w]) if t == 2 else float(values[t + 1, w])
            alive = 1.0 - float(dones[t, w])
            delta = float(rewards[t, w]) + gamma * following * alive - float(values[t, w])
            last = delta + gamma * lam * alive * last
            expected[t, w] = last
    np.testing.assert_allclose(adv.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(ret.numpy(), expected + values.numpy(), rtol=1e-6)
    assert expected[0, 1] == pytest.approx(2.0 - 0.4)  # the ended episode: its reward and nothing after


def test_only_worlds_cut_by_the_time_limit_are_bootstrapped():
    rewards = torch.tensor([[1.0, 1.0]])
    truncated = torch.tensor([[0.0, 1.0]])
    final_values = torch.tensor([[5.0, 5.0]])
    out = bootstrap_truncations(rewards, truncated, final_values, 0.5)
    np.testing.assert_array_equal(out.numpy(), [[1.0, 3.5]])
    assert bootstrap_truncations(rewards, truncated, None, 0.5) is rewards


def test_the_cpu_simulator_offers_what_ppo_asks_of_it():
    """PPO continues a resumed training's worlds only on a simulator that can save them, and reports the
    clocks of one that keeps them: BatchSim does both."""
    sim = make_sim(get_task("hopper-hop"), 2, seed=0)
    try:
        assert isinstance(sim, BatchSimulator)
        assert isinstance(sim, ResumableSimulator) and isinstance(sim, TimedSimulator)
    finally:
        sim.close()
