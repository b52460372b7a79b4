"""The MuJoCo Warp backend (rewardgen.sim.warp) against the CPU backend (BatchSim), on Warp's CPU device.

One test on purpose: Warp compiles MuJoCo Warp's kernels for the CPU on first use (about half a
minute to a minute on 2 cores for this model), then loads them from the persistent kernel cache
(``REWARDGEN_WARP_CACHE`` or ``~/.cache/rewardgen/warp``; a few seconds). Skipped when
``rewardgen[gpu]`` (warp-lang, mujoco-warp) is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("warp", reason="the Warp backend needs warp-lang: pip install 'rewardgen[gpu]'")
pytest.importorskip("mujoco_warp", reason="the Warp backend needs mujoco-warp: pip install 'rewardgen[gpu]'")

from rewardgen.sim import make_sim
from rewardgen.sim.cpu import BatchSim
from rewardgen.sim.warp import WarpSim, WarpUnavailable
from rewardgen.tasks.spec import get_task

FIELDS = ("qpos", "qvel", "action", "ctrl", "step", "com_pos", "com_vel")
NAMED = ("body_pos", "body_quat", "body_linvel", "body_angvel", "body_up", "joint_pos", "joint_vel",
         "site_pos", "contact_force")


def _assert_states_close(a, b, atol: float) -> None:
    for f in FIELDS:
        np.testing.assert_allclose(getattr(a, f).numpy(), getattr(b, f).numpy(), atol=atol, err_msg=f)
    for f in NAMED:
        na, nb = getattr(a, f), getattr(b, f)
        assert list(na) == list(nb), f
        for name in nb:
            np.testing.assert_allclose(na[name].numpy(), nb[name].numpy(), atol=atol, err_msg=f"{f}[{name}]")


def test_warp_cpu_matches_batchsim_state_obs_reward_and_resets():
    task = get_task("inverted-pendulum-balance")
    n = 4
    ws = make_sim(task, n, seed=0, sim="warp", device="cpu")
    bs = make_sim(task, n, seed=0, sim="cpu", nthread=1)
    assert isinstance(ws, WarpSim) and isinstance(bs, BatchSim)
    assert (ws.obs_dim, ws.act_dim) == (bs.obs_dim, bs.act_dim)
    with pytest.raises(ValueError, match="unknown simulator"):
        make_sim(task, n, sim="jax")

    # resets: the task's noise (InvertedPendulum: U(-0.01, 0.01) around the initial pose)
    obs = ws.reset()
    bs.reset()
    assert obs.shape == (n, ws.obs_dim) and np.all(np.abs(obs) <= 0.01 + 1e-6)
    assert np.abs(obs).max() > 0  # noise was drawn
    # same start state in both backends, then the same actions: the same trajectory (float32 vs float64)
    # (re-synced each step: a world that ends is reset from each backend's own generator)
    rng = np.random.default_rng(0)
    for _ in range(5):
        for i in range(n):
            ws.set_world_state(i, bs.qpos[i], bs.qvel[i])
        action = rng.uniform(-0.5, 0.5, (n, ws.act_dim)).astype(np.float32)
        rw, rb = ws.step(action), bs.step(action)
        np.testing.assert_allclose(rw.final_obs, rb.final_obs, atol=1e-5)
        live = ~rb.done
        np.testing.assert_allclose(rw.obs[live], rb.obs[live], atol=1e-5)
        np.testing.assert_allclose(rw.env_reward, rb.env_reward, atol=1e-6)
        assert (rw.terminated == rb.terminated).all() and (rw.truncated == rb.truncated).all()
        _assert_states_close(ws.state("cpu"), bs.state("cpu"), atol=1e-5)

    # the State is a copy: writing into it does not move the simulation
    s = ws.state("cpu")
    before = ws.qpos.copy()
    s.qpos.fill_(123.0)
    s.body_pos["pole"].fill_(123.0)
    assert np.array_equal(ws.qpos, before)
    assert not torch.equal(ws.state("cpu").qpos, s.qpos)

    # termination: world 1's pole past 0.2 rad ends its episode; it alone is reset
    qpos = ws.qpos
    qpos[1, 1] = 0.5
    ws.set_world_state(1, qpos[1], ws.qvel[1])
    res = ws.step(np.zeros((n, ws.act_dim), np.float32))
    assert res.terminated.tolist() == [False, True, False, False] and not res.truncated.any()
    assert abs(res.final_obs[1, 1]) > 0.2 and ws.state("cpu").qpos[1, 1] > 0.2  # State: before the reset
    assert np.all(np.abs(res.obs[1]) <= 0.01 + 1e-6)  # fresh reset draw
    np.testing.assert_allclose(ws.qpos[1], res.obs[1, :2], atol=1e-7)
    steps = ws.episode_step.tolist()
    assert steps[1] == 0 and min(steps[0], steps[2], steps[3]) >= 1
    np.testing.assert_allclose(res.obs[[0, 2, 3]], res.final_obs[[0, 2, 3]])

    # time limit: truncated (not terminated), then reset
    ws.episode_length = max(steps) + 1
    res = ws.step(np.zeros((n, ws.act_dim), np.float32))
    expect = [s + 1 >= ws.episode_length for s in steps]
    assert res.truncated.tolist() == expect and not res.terminated.any()
    assert ws.episode_step.tolist() == [0 if e else s + 1 for s, e in zip(steps, expect)]
    ws.close()
    bs.close()

    # a device that does not exist is a clear error, not a crash
    import warp as wp

    if not wp.is_cuda_available():
        with pytest.raises(WarpUnavailable, match="not available"):
            WarpSim(task, 2, device="cuda")


def test_ppo_trains_on_warp_with_reward_and_books_on_the_sim_device():
    """PPO's rollout over WarpSim's torch output (no numpy in the loop): a reward, its episode books
    and a resumed second slice, on Warp's CPU device (kernels already loaded by the test above)."""
    from rewardgen.contract.reward import load_reward
    from rewardgen.tasks.fitness import make_fitness
    from rewardgen.trainers.base import BatchReward, TrainConfig, TrainingStats
    from rewardgen.trainers.ppo import PPOHyperparams, PPOTrainer

    task = get_task("inverted-pendulum-balance")
    source = ("import torch\n\ndef compute_reward(s):\n    up = s.body_up['pole'][:, 2]\n"
              "    effort = -0.01 * (s.action ** 2).sum(dim=1)\n    return up + effort, {'up': up, 'effort': effort}\n")
    hp = PPOHyperparams(num_envs=8, rollout_steps=8, sim="warp", sim_device="cpu")
    steps = 128
    reward = BatchReward(load_reward(source), make_fitness(task.fitness, task.schema), TrainingStats(steps), 8,
                         task.episode_length)
    one = PPOTrainer(hp).train(task, reward, TrainConfig(steps, seed=0), lambda s: None)
    assert one.env_steps == steps
    assert set(one.stats["components"]) == {"up", "effort"}
    up = one.stats["components"]["up"][-1]
    assert 0.9 < up["mean"] <= 1.0 and up["max"] <= 1.0 + 1e-6  # the pole starts upright: cos(tilt)
    assert one.stats["num_episodes"] > 0  # a random policy drops the pole: episodes were closed on the device
    assert all(np.isfinite(a).all() for a in one.policy.arrays.values())
    two = PPOTrainer(hp).train(task, reward, TrainConfig(steps, seed=0, resume=one.resume_state),
                               lambda s: None)
    assert two.env_steps == 2 * steps and two.resumed_from == steps


@pytest.mark.slow
@pytest.mark.parametrize("task_id", ["double-pendulum-balance", "swimmer-swim", "pusher-push", "walker-run"])
def test_warp_cpu_runs_the_same_rules_as_batchsim(task_id):
    """The rules classes on torch: from the same states with the same actions, WarpSim's observations,
    env rewards and terminations are BatchSim's (to float32 precision), and its resets are the env's
    distribution (Pusher's puck rejection-sampled away from the goal)."""
    task = get_task(task_id)
    n = 6
    ws = make_sim(task, n, seed=0, sim="warp", device="cpu")
    bs = make_sim(task, n, seed=0, sim="cpu", nthread=1)
    ws.reset()
    bs.reset()
    rng = np.random.default_rng(1)
    terminated = 0
    for _ in range(8):
        for i in range(n):
            ws.set_world_state(i, bs.qpos[i], bs.qvel[i])
        action = rng.uniform(-1, 1, (n, ws.act_dim)).astype(np.float32)
        rw, rb = ws.step(action), bs.step(action)
        np.testing.assert_allclose(rw.final_obs, rb.final_obs, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(rw.env_reward, rb.env_reward, atol=1e-3, rtol=1e-4)
        assert (rw.terminated == rb.terminated).all() and (rw.truncated == rb.truncated).all()
        terminated += int(rb.terminated.sum())
    if task_id == "double-pendulum-balance":
        assert terminated > 0  # random pushes drop the poles: terminations were compared too
    if task_id == "pusher-push":
        ws.reset()
        puck, goal = ws.qpos[:, -4:-2], ws.qpos[:, -2:]
        assert np.all(goal == 0) and np.all(np.linalg.norm(puck, axis=1) > 0.17)
        assert np.all((puck[:, 0] <= 0) & (puck[:, 0] >= -0.3) & (np.abs(puck[:, 1]) <= 0.2))
    ws.close()
    bs.close()


def test_warp_refuses_a_model_it_cannot_run_with_a_clear_error():
    """MuJoCo Warp has no PGS solver, which the humanoids use: a clear error, not a crash."""
    with pytest.raises(WarpUnavailable, match=r"PGS.*--sim cpu"):
        WarpSim(get_task("humanoid-run"), 2, device="cpu")
