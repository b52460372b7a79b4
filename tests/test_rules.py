"""Each env's rules in one class: every gymnasium MuJoCo v5 env has one, the simulators know no env,
and the termination rules the prompt states (``termination_of``) are the ones the simulator enforces.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_byo import WALKER

import rewardgen.sim as sim_package
from rewardgen.sim.cpu import BatchSim
from rewardgen.sim.rules import RULES, rules_for, unsupported_reason
from rewardgen.sim.termination import termination_of
from rewardgen.tasks.spec import get_task, list_tasks, task_from_mjcf

warnings.filterwarnings("ignore", message=".*settotalmass.*")

MUJOCO_V5 = sorted(k for k, spec in gym.registry.items()
                   if k.endswith("-v5") and "gymnasium.envs.mujoco" in str(spec.entry_point))


def test_every_mujoco_v5_env_has_rules():
    assert len(MUJOCO_V5) == 11
    for env_id in MUJOCO_V5:
        env = gym.make(env_id)
        try:
            rules = rules_for(env)
            assert rules.env_class == type(env.unwrapped).__name__
        finally:
            env.close()
    assert set(RULES) == {cls.env_class for cls in RULES.values()}
    assert len(RULES) == 12  # and brought MJCF robots


def test_every_task_trains_on_the_batched_simulator():
    tasks = list_tasks()
    assert len(tasks) == 16
    assert {t.id: unsupported_reason(t) for t in tasks} == {t.id: None for t in tasks}


@pytest.mark.parametrize("module", ["cpu.py", "warp.py"])
def test_the_simulators_hold_no_per_env_rules(module):
    """No env class name, no ``kind ==`` branch, no gymnasium env attribute: the rules classes own them."""
    source = (Path(sim_package.__file__).parent / module).read_text()
    named = [name for name in RULES if name in source]
    assert not named, f"{module} names env classes {named}"
    assert not re.search(r"\.kind\s*(==|!=|in\b)", source)
    assert not re.search(r"\bu\._|\.u\._", source), f"{module} reads the env's private attributes"


def _quantity(state, quantity: str) -> torch.Tensor:
    """A Bound's quantity (reward-contract code, ``a and b`` for several) evaluated on a State."""
    parts = [eval(q, {"s": state}) for q in quantity.split(" and ")]
    return torch.cat([p.reshape(p.shape[0], -1) for p in parts], dim=1)


def _expected_termination(term, state) -> np.ndarray:
    ok = torch.ones(state.qpos.shape[0], dtype=torch.bool)
    for b in term.bounds:
        inside = b.holds(_quantity(state, b.quantity).double())
        ok &= inside.all(dim=1)
    if term.nonfinite:
        ok &= torch.isfinite(state.qpos).all(dim=1) & torch.isfinite(state.qvel).all(dim=1)
    return (~ok).numpy()


def _mjcf_task(tmp_path_factory, healthy: bool):
    path = tmp_path_factory.mktemp("byo") / "walker.xml"
    path.write_text(WALKER)
    return task_from_mjcf(path, "walk", "forward_velocity(body=base)", episode_length=200,
                          healthy_z_range=(0.6, 2.0) if healthy else None)


#: the qpos entry behind a bound's quantity, to push a world out of its healthy range
QPOS_OF = {"s.qpos[:, 2]": 2, 's.joint_pos["rootz"]': 1, 's.joint_pos["hinge"]': 1}


@pytest.mark.parametrize("task_id", [t.id for t in list_tasks()] + ["mjcf", "mjcf-healthy"])
def test_termination_of_is_what_the_simulator_enforces(task_id, tmp_path_factory):
    """Random actions (and a world pushed out of its healthy range, where there is one): the worlds
    the simulator terminates are exactly those whose State leaves ``termination_of``'s bounds."""
    task = (_mjcf_task(tmp_path_factory, task_id == "mjcf-healthy") if task_id.startswith("mjcf")
            else get_task(task_id))
    task = dataclasses.replace(task, episode_length=10_000)  # no truncation in the way
    term = termination_of(task)
    assert term.time_limit == 10_000
    sim = BatchSim(task, 6, seed=1, nthread=1)
    sim.reset()
    rng = np.random.default_rng(0)
    terminated = 0
    for t in range(60):
        if t == 5 and term.bounds and term.bounds[0].quantity in QPOS_OF:
            b = term.bounds[0]  # world 0 above its range (below it where there is no upper bound)
            qpos = sim.qpos[0].copy()
            qpos[QPOS_OF[b.quantity]] = b.high + 0.5 if b.high is not None else b.low - 0.5
            sim.set_world_state(0, qpos, sim.qvel[0])
        res = sim.step(rng.uniform(-1, 1, (sim.n, sim.act_dim)).astype(np.float32))
        np.testing.assert_array_equal(res.terminated, _expected_termination(term, sim.state()),
                                      err_msg=f"{task_id} step {t}")
        terminated += int(res.terminated.sum())
    sim.close()
    if term.ends_early:
        assert terminated > 0, f"{task_id}: no episode ended; the check above proved nothing"
    else:
        assert terminated == 0


def test_termination_of_keeps_its_results():
    """The statements the prompt makes, for a few tasks (as they were before the rules classes held them)."""
    lines = {t: termination_of(get_task(t)).describe() for t in ("hopper-hop", "double-pendulum-balance",
                                                                "humanoid-run", "swimmer-swim")}
    assert lines["hopper-hop"][1:] == [
        'The episode ends at once unless the torso\'s height (s.joint_pos["rootz"]) stays above 0.7 m.',
        'The episode ends at once unless the torso\'s pitch angle (s.joint_pos["rooty"]) stays between -0.2 '
        'and 0.2 rad (exclusive).',
        "The episode ends at once unless the root's pitch and every joint angle, and every velocity, the "
        "root's included (s.qpos[:, 2:] and s.qvel) stays between -100 and 100 (exclusive)."]
    assert lines["double-pendulum-balance"][1] == ("The episode ends at once unless the height of the upper "
                                                   "pole's tip (s.site_pos[\"tip\"][:, 2]) stays above 1 m.")
    assert lines["humanoid-run"][1] == ("The episode ends at once unless the torso's height (s.qpos[:, 2]) "
                                        "stays between 1 and 2 m (exclusive).")
    assert lines["swimmer-swim"][1] == "Nothing ends an episode early: every episode runs to the time limit."
