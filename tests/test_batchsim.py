"""BatchSim against the gymnasium env it reproduces, world by world, for all eleven MuJoCo v5 envs.

``mujoco.rollout`` starts every call with a zero constraint-solver warmstart, while a gymnasium env
carries ``qacc_warmstart`` from one step to the next. That changes results at the solver's tolerance
(then chaotically, after contacts), so the reference env here zeroes its warmstart before each step;
everything else (model, frame skip, resets, termination, truncation, observations, env reward,
State) must agree.

What "agree" means per env: whatever gymnasium computes from qpos, qvel and the action is exact, and
so is everything with a single-stage integrator (HalfCheetah, Pusher). With RK4, gymnasium reads
derived quantities (body and site positions, com-based inertia and velocity, contact forces) at
RK4's last stage, which BatchSim approximates by the new state: those observation entries and the
rewards built on them are checked to be close for most steps (``Approx``), everything else exact.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from rewardgen.contract.state import StateBuffers, refresh_derived
from rewardgen.sim.cpu import BatchSim
from rewardgen.tasks.spec import get_task

warnings.filterwarnings("ignore", message=".*settotalmass.*")

FIELDS = ("qpos", "qvel", "action", "ctrl", "step", "body_pos", "body_quat", "body_up", "body_linvel",
          "body_angvel", "joint_pos", "joint_vel", "site_pos", "com_pos", "com_vel", "contact_force")


@dataclasses.dataclass(frozen=True)
class Approx:
    """Observation columns ``cols`` (a slice) that only approximate gymnasium's: the share of their
    entries within ``atol`` must be at least ``share``."""

    cols: slice
    atol: float
    share: float


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """How closely BatchSim reproduces an env: ``approx`` observation blocks (every other column is
    exact), and the env reward: exact (``reward_share`` None) or within ``reward_atol`` on at least
    ``reward_share`` of the steps. ``reset_atol``: start observations built from derived quantities
    (the humanoids' com-based inertia and velocity) are computed in another order than MuJoCo's."""

    approx: tuple[Approx, ...] = ()
    reward_atol: float = 1e-6
    reward_share: float | None = None
    reset_atol: float = 0.0


def _humanoid(nq: int = 24, nv: int = 23, nbody: int = 14, cvel_share: float = 0.85,
              cfrc_share: float = 0.9) -> Fidelity:
    """Humanoid-v5 and HumanoidStandup-v5: qpos[2:], qvel, cinert, cvel, qfrc_actuator[6:], cfrc_ext."""
    start = nq - 2 + nv
    cinert, cvel = slice(start, start + 10 * (nbody - 1)), slice(start + 10 * (nbody - 1), start + 16 * (nbody - 1))
    cfrc = slice(start + 16 * (nbody - 1) + nv - 6, None)
    return Fidelity(approx=(Approx(cinert, 5e-3, 1.0), Approx(cvel, 0.05, cvel_share), Approx(cfrc, 1.0, cfrc_share)),
                    reward_atol=0.05, reward_share=0.9, reset_atol=1e-12)


FIDELITY = {
    "InvertedPendulumEnv": Fidelity(),
    "InvertedDoublePendulumEnv": Fidelity(reward_atol=1e-3, reward_share=0.9),  # the tip's position
    "ReacherEnv": Fidelity(approx=(Approx(slice(8, 10), 0.02, 1.0),), reward_atol=0.02, reward_share=1.0),
    "PusherEnv": Fidelity(),
    "HalfCheetahEnv": Fidelity(),
    "HopperEnv": Fidelity(),
    "Walker2dEnv": Fidelity(),
    "SwimmerEnv": Fidelity(),
    # contact forces (clipped to [-1, 1]) and the x speed of the torso's position as the env read it
    "AntEnv": Fidelity(approx=(Approx(slice(27, None), 0.1, 0.95),), reward_atol=0.05, reward_share=0.9),
    "HumanoidEnv": _humanoid(),
    "HumanoidStandupEnv": _humanoid(),
}


def _compare(task_id: str, steps: int, episode_length: int | None = None, n: int = 3, actions=None):
    task = get_task(task_id)
    if episode_length is not None:
        task = dataclasses.replace(task, episode_length=episode_length)
    sim = BatchSim(task, n, seed=3)
    fid = FIDELITY[sim.kind]
    obs = sim.reset()
    envs = [task.make_env() for _ in range(n)]
    for i, env in enumerate(envs):
        gobs, _ = env.reset(seed=sim.world_seeds[i])
        np.testing.assert_allclose(obs[i], gobs, rtol=0, atol=fid.reset_atol)
    buffers = StateBuffers(task.schema, envs[0].unwrapped.model, n)
    rng = np.random.default_rng(0)
    rk4 = sim._rk4
    exact = np.ones(sim.obs_dim, dtype=bool)
    for a in fid.approx:
        exact[a.cols] = False
    counts = {"terminated": 0, "truncated": 0}
    seen = np.zeros(sim.obs_dim)  # the largest |observation| gymnasium produced, per entry
    close: list[list[np.ndarray]] = [[] for _ in fid.approx]
    reward_close = []
    for t in range(steps):
        action = (rng.uniform(-1, 1, (n, sim.act_dim)) if actions is None else actions(t, n, sim.act_dim)).astype(np.float32)
        res = sim.step(action)
        arrays = sim.state_arrays()
        for i, env in enumerate(envs):
            u = env.unwrapped
            u.data.qacc_warmstart[:] = 0
            gobs, grew, term, trunc, _ = env.step(action[i])
            assert (term, trunc) == (bool(res.terminated[i]), bool(res.truncated[i])), f"step {t} world {i}"
            refresh_derived(u.model, u.data)
            buffers.fill(i, u.data, action[i], int(arrays["step"][i]))
            np.testing.assert_allclose(res.final_obs[i][exact], gobs[exact], rtol=0, atol=1e-9,
                                       err_msg=f"{task_id} observation at step {t}")
            for a, hits in zip(fid.approx, close):
                hits.append(np.abs(res.final_obs[i][a.cols] - gobs[a.cols]) <= a.atol)
            reward_close.append(abs(grew - res.env_reward[i]) <= fid.reward_atol)
            seen = np.maximum(seen, np.abs(gobs))
            if term or trunc:
                counts["terminated" if term else "truncated"] += 1
                gobs, _ = env.reset()
                np.testing.assert_allclose(res.obs[i], gobs, rtol=0, atol=fid.reset_atol)
        for name in FIELDS:
            if name == "contact_force" and rk4:
                continue
            np.testing.assert_allclose(arrays[name], getattr(buffers, name), rtol=1e-5, atol=1e-4,
                                       err_msg=f"{task_id} field {name} at step {t}")
    for env in envs:
        env.close()
    for a, hits in zip(fid.approx, close):
        share = float(np.mean(hits))
        assert share >= a.share, f"{task_id}: observation {a.cols} within {a.atol} on {share:.3f} of entries"
    reward_share = float(np.mean(reward_close))
    assert reward_share >= (fid.reward_share or 1.0), f"{task_id}: env reward within {fid.reward_atol} on {reward_share:.3f}"
    return counts, seen


def test_fidelity_covers_every_mujoco_env():
    from rewardgen.sim.rules import RULES

    assert set(FIDELITY) | {"MjcfEnv"} == set(RULES)
    assert len(FIDELITY) == 11


def test_halfcheetah_matches_gym_across_truncation():
    counts, _ = _compare("halfcheetah-run", 130, episode_length=60)
    assert counts["truncated"] >= 3


def test_hopper_matches_gym_across_termination():
    counts, _ = _compare("hopper-hop", 120)
    assert counts["terminated"] >= 3


def test_walker_matches_gym_across_termination():
    counts, _ = _compare("walker-run", 150)
    assert counts["terminated"] >= 3


def test_ant_matches_gym_across_termination():
    counts, _ = _compare("ant-run", 120, episode_length=50)
    assert counts["truncated"] + counts["terminated"] >= 3


def test_humanoid_matches_gym_across_termination():
    counts, _ = _compare("humanoid-run", 120)
    assert counts["terminated"] >= 3


def test_humanoid_standup_matches_gym_across_truncation():
    counts, _ = _compare("humanoid-stand-up", 90, episode_length=40)
    assert counts["truncated"] >= 3


@pytest.mark.parametrize("task_id", ["inverted-pendulum-balance", "reacher-reach", "pusher-push"])
def test_small_tasks_match_gym(task_id):
    counts, _ = _compare(task_id, 110)
    assert counts["terminated"] + counts["truncated"] >= 1


def test_double_pendulum_matches_gym_across_termination_and_the_slider_limit():
    """The cart driven hard both ways: its slider's limit force shows in the observation."""
    counts, seen = _compare("double-pendulum-balance", 150, actions=lambda t, n, k: np.full((n, k), (-1) ** (t // 15)))
    assert counts["terminated"] >= 3
    assert seen[8] > 0  # the slider's constraint force (clipped to 10)


def test_swimmer_matches_gym_across_truncation():
    counts, _ = _compare("swimmer-swim", 100, episode_length=40)
    assert counts["truncated"] >= 3


def test_pusher_resets_like_gym():
    """Pusher's reset: the puck redrawn until it is more than 0.17 from the goal (at the origin)."""
    task = get_task("pusher-push")
    sim = BatchSim(task, 64, seed=11)
    sim.reset()
    puck, goal = sim.qpos[:, -4:-2], sim.qpos[:, -2:]
    assert np.all(goal == 0) and np.all(np.linalg.norm(puck, axis=1) > 0.17)
    assert np.all((-0.3 <= puck[:, 0]) & (puck[:, 0] <= 0) & (-0.2 <= puck[:, 1]) & (puck[:, 1] <= 0.2))
    assert np.all(sim.qvel[:, -4:] == 0) and np.abs(sim.qvel[:, :7]).max() <= 0.005
    env = task.make_env()
    for i in (0, 17, 63):
        gobs, _ = env.reset(seed=sim.world_seeds[i])
        np.testing.assert_array_equal(sim.obs[i], gobs)
        np.testing.assert_array_equal(sim.qpos[i], env.unwrapped.data.qpos)
    env.close()


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
