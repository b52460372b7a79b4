"""Resumable training (issue 8): a slice continues from the previous slice's state, never from scratch.

Two slices of N env-steps with ``TrainConfig.resume`` against one slice of 2N: the env-step counter
and the optimizer's step counter continue, the weights, Adam moments and normalisation statistics
at the start of slice 2 are exactly those at the end of slice 1 (so the policy, and its trusted
fitness, is not reset), and the state crosses the worker boundary as pickle-free bytes frames.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from conftest import GOOD_PENDULUM_REWARD

from rewardgen.contract.reward import load_reward
from rewardgen.procs import WorkerLimits, run_worker
from rewardgen.tasks.fitness import make_fitness
from rewardgen.tasks.spec import get_task
from rewardgen.trainers.base import (
    BatchReward,
    ResumeStateError,
    TrainConfig,
    TrainingStats,
    pack_resume_state,
    unpack_resume_state,
)
from rewardgen.trainers.sb3 import SB3Trainer, export_policy

N = 2048  # one SB3 rollout (8 envs x 256 steps)
TASK = "inverted-pendulum-balance"


@pytest.fixture(scope="module")
def task():
    return get_task(TASK)


def _reward(task, steps: int) -> BatchReward:
    fn = load_reward(GOOD_PENDULUM_REWARD, "reward.py")  # trusted test reward, loaded in-process
    return BatchReward(fn, make_fitness(task.fitness, task.schema), TrainingStats(steps), 8, task.episode_length)


@pytest.fixture(scope="module")
def slices(task):
    """Slice 1 (N steps), slice 2 resumed from it (N more), and one uninterrupted slice of 2N."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = SB3Trainer().train(task, _reward(task, N), TrainConfig(N, seed=3), lambda s: None)
        two = SB3Trainer().train(task, _reward(task, N), TrainConfig(N, seed=4, resume=one.resume_state),
                                 lambda s: None)
        whole = SB3Trainer().train(task, _reward(task, 2 * N), TrainConfig(2 * N, seed=3), lambda s: None)
    finally:
        torch.set_num_threads(threads)
    return one, two, whole


@pytest.mark.slow
def test_state_is_pickle_free_npz_with_json_header(slices):
    one, _, _ = slices
    raw = one.resume_state
    assert isinstance(raw, bytes)
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:  # loads without pickles
        names = set(npz.files)
    assert {"__header__", "obs_rms/mean", "ret_rms/var", "rng/torch", "rng/numpy"} <= names
    assert any(n.startswith("policy/mlp_extractor.value_net") for n in names)  # value weights too
    assert any(n.endswith("/exp_avg_sq") for n in names)  # Adam moments
    header, _ = unpack_resume_state(raw, trainer="sb3")
    assert header["env_steps"] == N and header["trainer"] == "sb3"


@pytest.mark.slow
def test_second_slice_continues_the_counters(slices):
    one, two, whole = slices
    assert one.env_steps == N
    assert two.env_steps == 2 * N == whole.env_steps  # the env-step counter continues
    assert two.resumed_from == N and two.slice_env_steps == N
    h2, a2 = unpack_resume_state(two.resume_state)
    hw, aw = unpack_resume_state(whole.resume_state)
    assert h2["env_steps"] == hw["env_steps"] == 2 * N
    assert h2["n_updates"] == hw["n_updates"]  # as many gradient epochs as one run of 2N
    assert float(a2["optim/0/step"]) == float(aw["optim/0/step"])  # Adam's step count continues
    assert a2["obs_rms/count"] > unpack_resume_state(one.resume_state)[1]["obs_rms/count"]


@pytest.mark.slow
def test_slice_two_starts_where_slice_one_ended(task, slices):
    one, _, _ = slices
    _header, arrays = unpack_resume_state(one.resume_state)
    model, venv, restored = SB3Trainer().build(task, _reward(task, N), TrainConfig(N, seed=99,
                                                                                     resume=one.resume_state))
    assert restored["env_steps"] == N and model.num_timesteps == N
    for name, tensor in model.policy.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), arrays[f"policy/{name}"], err_msg=name)
    for idx, entry in model.policy.optimizer.state_dict()["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(torch.as_tensor(value).numpy(), arrays[f"optim/{idx}/{key}"])
    np.testing.assert_array_equal(venv.obs_rms.mean, arrays["obs_rms/mean"])
    np.testing.assert_array_equal(venv.ret_rms.var, arrays["ret_rms/var"])
    # the exported policy at the start of slice 2 is the one slice 1 returned: fitness is not reset
    start = export_policy(model, venv)
    for key, value in one.policy.arrays.items():
        np.testing.assert_allclose(start.arrays[key], value, rtol=0, atol=1e-7, err_msg=key)
    venv.close()


@pytest.mark.slow
def test_slice_two_trained(slices):
    one, two, _ = slices
    assert any(not np.array_equal(one.policy.arrays[k], two.policy.arrays[k]) for k in one.policy.arrays if k[0] == "w")


@pytest.mark.slow
def test_bad_states_are_refused(task, slices):
    with pytest.raises(ResumeStateError):
        unpack_resume_state(b"not an npz")
    other = pack_resume_state({"trainer": "ppo", "env_steps": 1}, {"x": np.zeros(2)})
    with pytest.raises(ResumeStateError, match="trainer 'ppo'"):
        unpack_resume_state(other, trainer="sb3")
    with pytest.raises(ResumeStateError):
        SB3Trainer().build(task, _reward(task, N), TrainConfig(N, resume=other))


# ----- across the worker boundary --------------------------------------------------------------

def _job(task, **extra) -> dict:
    return {"mode": "train", "task": task.to_dict(), "source": GOOD_PENDULUM_REWARD, "steps": N, "seed": 5,
            "trainer": "sb3", **extra}


@pytest.mark.slow
def test_worker_sends_and_accepts_resume_state(task):
    first = run_worker(_job(task), WorkerLimits(wall_seconds=300))
    assert first.ok, first.error
    assert first.resume_state and first.payload and first.resume_state != first.payload
    assert "resume_state" not in first.result["extra"]  # bytes travel as a frame, never inside JSON
    assert unpack_resume_state(first.resume_state)[0]["env_steps"] == N
    second = run_worker(_job(task, seed=6, resume=base64.b64encode(first.resume_state).decode()),
                        WorkerLimits(wall_seconds=300))
    assert second.ok, second.error
    assert second.result["env_steps"] == 2 * N
    assert second.result["extra"]["resumed_from"] == N
    assert unpack_resume_state(second.resume_state)[0]["env_steps"] == 2 * N


def test_worker_refuses_bad_resume(task):
    res = run_worker(_job(task, resume="%%% not base64"), WorkerLimits(wall_seconds=120))
    assert res.stage == "job" and "base64" in res.error


def test_env_reward_job_needs_no_source(task):
    job = {"mode": "train", "task": task.to_dict(), "env_reward": True, "steps": N, "seed": 1, "trainer": "sb3"}
    res = run_worker(job, WorkerLimits(wall_seconds=300))
    assert res.ok, (res.error, res.log[-2000:])
    assert res.payload and res.resume_state
    assert list(res.result["stats"]["components"]) == ["env_reward"]
    assert any("env reward" in w for w in res.warnings)


# ----- rewardgen's PPO -------------------------------------------------------------------------

def test_ppo_resume_continues(task):
    from rewardgen.trainers.ppo import ActorCritic, PPOHyperparams, PPOTrainer, RunningMeanStd, restore_state

    hp = PPOHyperparams(num_envs=16, rollout_steps=16, sim_threads=1)
    steps = 512
    one = PPOTrainer(hp).train(task, _reward(task, steps), TrainConfig(steps, seed=1), lambda s: None)
    two = PPOTrainer(hp).train(task, _reward(task, steps), TrainConfig(steps, seed=2, resume=one.resume_state),
                               lambda s: None)
    assert (one.env_steps, two.env_steps) == (steps, 2 * steps)
    assert two.resumed_from == steps and two.slice_env_steps == steps
    assert unpack_resume_state(two.resume_state, trainer="ppo")[0]["env_steps"] == 2 * steps
    # restoring into fresh objects gives back exactly slice 1's final actor, critic, moments and statistics
    _, arrays = unpack_resume_state(one.resume_state, trainer="ppo")
    agent = ActorCritic(4, 1, hp.hidden, hp.init_log_std)
    optimizer = torch.optim.Adam(agent.parameters(), lr=hp.learning_rate, eps=1e-5)
    obs_rms, ret_rms = RunningMeanStd((4,)), RunningMeanStd(())
    done, worlds = restore_state(one.resume_state, agent, optimizer, obs_rms, ret_rms, torch.Generator())
    assert done == steps and worlds is not None and worlds[1]["state"].shape[0] == 16
    for name, tensor in agent.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), arrays[f"agent/{name}"], err_msg=name)
    np.testing.assert_allclose(obs_rms.mean.numpy().astype(np.float32), one.policy.arrays["obs_mean"])
    layers = [m for m in agent.actor if isinstance(m, torch.nn.Linear)]
    np.testing.assert_array_equal(layers[0].weight.detach().numpy(), one.policy.arrays["w0"])
    assert optimizer.state_dict()["state"][0]["exp_avg"].abs().sum() > 0
    with pytest.raises(ResumeStateError, match="trainer 'sb3'"):
        PPOTrainer(hp).train(task, _reward(task, steps), TrainConfig(steps, resume=pack_resume_state(
            {"trainer": "sb3", "env_steps": 1}, {})), lambda s: None)


def test_ppo_slices_equal_one_uninterrupted_training():
    """Resume carries the simulated worlds too (mid-episode, reset generators, discounted returns): two
    slices of 2 PPO iterations give bit for bit the policy of one training of 4. Hopper: episodes end
    early and last longer than a slice (16 worlds x 16 steps x 2 = 512 env-steps, 32 steps a world),
    so a slice that restarted its worlds would train on other states."""
    from rewardgen.trainers.ppo import PPOHyperparams, PPOTrainer

    task = get_task("hopper-hop")
    hp = PPOHyperparams(num_envs=16, rollout_steps=16, sim_threads=1, use_helper_thread=False)
    source = "def compute_reward(s):\n    v = s.body_linvel['torso'][:, 0]\n    return v, {'forward': v}\n"

    def reward(steps: int) -> BatchReward:
        fn = load_reward(source, "reward.py")
        return BatchReward(fn, make_fitness(task.fitness, task.schema), TrainingStats(steps), 16, task.episode_length)

    whole = PPOTrainer(hp).train(task, reward(1024), TrainConfig(1024, seed=5), lambda s: None)
    one = PPOTrainer(hp).train(task, reward(512), TrainConfig(512, seed=5), lambda s: None)
    two = PPOTrainer(hp).train(task, reward(512), TrainConfig(512, seed=99, resume=one.resume_state), lambda s: None)
    assert two.env_steps == whole.env_steps == 1024
    for name, value in whole.policy.arrays.items():
        np.testing.assert_array_equal(two.policy.arrays[name], value, err_msg=name)
    header, _ = unpack_resume_state(two.resume_state, trainer="ppo")
    assert header["worlds"]["n"] == 16 and len(header["worlds"]["rngs"]) == 16
    # a snapshot of other worlds is refused, not half-applied
    small = PPOHyperparams(num_envs=8, rollout_steps=16, sim_threads=1, use_helper_thread=False)
    other = PPOTrainer(small).train(task, reward(256), TrainConfig(256, seed=5), lambda s: None)
    tampered = other.resume_state
    h, arrays = unpack_resume_state(tampered, trainer="ppo")
    h["worlds"]["n"] = 16
    with pytest.raises(ResumeStateError, match="snapshot"):
        PPOTrainer(hp).train(task, reward(512), TrainConfig(512, seed=5, resume=pack_resume_state(h, arrays)),
                             lambda s: None)
