"""BatchSim against the gymnasium env it reproduces, world by world.

``mujoco.rollout`` starts every call with a zero constraint-solver warmstart, while a gymnasium env
carries ``qacc_warmstart`` from one step to the next. That changes results at the solver's tolerance
(then chaotically, after contacts), so the reference env here zeroes its warmstart before each step;
everything else (model, frame skip, resets, termination, truncation, observations, State) must agree.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from rewardgen.sim.cpu import BatchSim
from rewardgen.contract.state import StateBuffers, refresh_derived
from rewardgen.tasks.spec import get_task

warnings.filterwarnings("ignore", message=".*settotalmass.*")

FIELDS = ("qpos", "qvel", "action", "ctrl", "step", "body_pos", "body_quat", "body_up", "body_linvel",
          "body_angvel", "joint_pos", "joint_vel", "com_pos", "com_vel", "contact_force")


def _compare(task_id: str, steps: int, episode_length: int | None = None, n: int = 3):
    task = get_task(task_id)
    if episode_length is not None:
        task = dataclasses.replace(task, episode_length=episode_length)
    sim = BatchSim(task, n, seed=3)
    obs = sim.reset()
    envs = [task.make_env() for _ in range(n)]
    for i, env in enumerate(envs):
        gobs, _ = env.reset(seed=sim.world_seeds[i])
        np.testing.assert_array_equal(obs[i], gobs)
    buffers = StateBuffers(task.schema, envs[0].unwrapped.model, n)
    rng = np.random.default_rng(0)
    rk4 = sim._rk4
    counts = {"terminated": 0, "truncated": 0}
    cfrc_agree, cfrc_total = 0, 0
    for t in range(steps):
        action = rng.uniform(-1, 1, (n, sim.act_dim)).astype(np.float32)
        res = sim.step(action)
        arrays = sim.state_arrays()
        for i, env in enumerate(envs):
            u = env.unwrapped
            u.data.qacc_warmstart[:] = 0
            gobs, grew, term, trunc, _ = env.step(action[i])
            assert (term, trunc) == (bool(res.terminated[i]), bool(res.truncated[i])), f"step {t} world {i}"
            refresh_derived(u.model, u.data)
            buffers.fill(i, u.data, action[i], int(arrays["step"][i]))
            np.testing.assert_allclose(res.final_obs[i][:sim.nq + sim.nv - sim._excl],
                                       gobs[:sim.nq + sim.nv - sim._excl], rtol=0, atol=1e-9)
            if sim.kind == "AntEnv":  # contact forces: RK4 leaves gym's at a stage no sensor sees
                d = np.abs(res.final_obs[i] - gobs)[sim.nq + sim.nv - sim._excl:]
                cfrc_agree += int((d < 0.1).sum())
                cfrc_total += d.size
            elif not rk4 or sim.kind in ("HopperEnv", "Walker2dEnv", "InvertedPendulumEnv"):
                np.testing.assert_allclose(res.final_obs[i], gobs, rtol=0, atol=1e-9)
            else:
                np.testing.assert_allclose(res.final_obs[i], gobs, rtol=0, atol=0.02)
            if not rk4:
                assert grew == pytest.approx(res.env_reward[i], abs=1e-6)
            if term or trunc:
                counts["terminated" if term else "truncated"] += 1
                gobs, _ = env.reset()
                np.testing.assert_array_equal(res.obs[i], gobs)
        for name in FIELDS:
            if name == "contact_force" and rk4:
                continue
            np.testing.assert_allclose(arrays[name], getattr(buffers, name), rtol=1e-5, atol=1e-4,
                                       err_msg=f"{task_id} field {name} at step {t}")
    for env in envs:
        env.close()
    if cfrc_total:
        assert cfrc_agree / cfrc_total > 0.95
    return counts


def test_halfcheetah_matches_gym_across_truncation():
    counts = _compare("halfcheetah-run", 130, episode_length=60)
    assert counts["truncated"] >= 3


def test_hopper_matches_gym_across_termination():
    counts = _compare("hopper-hop", 120)
    assert counts["terminated"] >= 3


def test_walker_matches_gym_across_termination():
    counts = _compare("walker-run", 150)
    assert counts["terminated"] >= 3


def test_ant_matches_gym_across_termination():
    counts = _compare("ant-run", 120, episode_length=50)
    assert counts["truncated"] + counts["terminated"] >= 3


@pytest.mark.parametrize("task_id", ["inverted-pendulum-balance", "reacher-reach"])
def test_small_tasks_match_gym(task_id):
    counts = _compare(task_id, 60)
    assert counts["terminated"] + counts["truncated"] >= 1


def test_state_is_a_copy_and_seeding_is_reproducible():
    task = get_task("halfcheetah-run")
    a, b = BatchSim(task, 4, seed=7), BatchSim(task, 4, seed=7)
    np.testing.assert_array_equal(a.reset(), b.reset())
    act = np.full((4, a.act_dim), 0.3, dtype=np.float32)
    a.step(act)
    b.step(act)
    s = a.state()
    s.qpos.add_(1.0)  # a reward writing into its State cannot move the simulation
    np.testing.assert_array_equal(a.step(act).obs, b.step(act).obs)
    assert s.body_pos["torso"].shape == (4, 3)
    assert s.step.tolist() == [1.0] * 4
