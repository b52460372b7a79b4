"""Trajectory analyser (issue 7): records replay the trusted evaluation, summaries state the facts."""

from __future__ import annotations

import json
import re

import mujoco
import numpy as np
import pytest
from conftest import mlp_policy

from rewardgen.evaluate.evaluator import evaluate_policy
from rewardgen.evaluate.trajectory import best_and_worst, episode_facts, record_trajectory, summarize_episode
from rewardgen.tasks.spec import get_task


@pytest.mark.parametrize("task_id", ["hopper-hop", "inverted-pendulum-balance"])
def test_record_matches_trusted_evaluation(task_id):
    task = get_task(task_id)
    export = mlp_policy(task)
    evaluation = evaluate_policy(task, export, episodes=2, seed=10_000)
    for i, ep in enumerate(evaluation["episodes"]):
        traj = record_trajectory(task, export, 10_000 + i)
        assert traj["length"] == ep["length"] and traj["terminated"] == ep["terminated"]
        assert traj["fitness_value"] == pytest.approx(ep["fitness"], abs=1e-9)
        assert traj["env_reward"].sum() == pytest.approx(ep["env_return"], rel=1e-6, abs=1e-9)
        assert np.allclose(traj["com"][-1] - traj["start_com"], ep["com_displacement"], atol=1e-5)
        n = traj["length"]
        assert traj["height"].shape == (n,) and traj["com"].shape == (n, 3)
        assert traj["tilt_deg"].shape == (n, len(task.schema.bodies))


def _synthetic(n=200, dt=0.05):
    """A body that walks 1 m/s for half the episode, then stops, tips over and lies upside-down."""
    t = np.arange(1, n + 1)
    x = np.where(t <= n // 2, t * dt * 1.0, (n // 2) * dt)
    com = np.stack([x, np.zeros(n), np.full(n, 0.5)], axis=1)
    up = np.where(t <= n // 2, 1.0, np.where(t <= n // 2 + 10, 0.3, -0.9))
    height = np.where(t <= n // 2, 1.0, 0.2)
    return {"length": n, "horizon": 1000, "terminated": True, "fitness_value": 0.123, "dt": dt, "seed": 7,
            "main_body": "torso", "bodies": ["torso"], "height": height, "up_z": up,
            "tilt_deg": np.degrees(np.arccos(up))[:, None], "com": com, "start_com": np.array([0.0, 0.0, 0.5])}


def test_summary_states_the_facts():
    traj = _synthetic()
    f = episode_facts(traj)
    assert f["falls"] == 1 and f["first_fall_step"] == 101
    assert f["upside_down_fraction"] == pytest.approx(0.45)
    assert f["displacement"][0] == pytest.approx(5.0)
    assert f["longest_stall"][1] == 200 and 0.4 < f["stalled_fraction"] < 0.55
    text = summarize_episode(traj, "worst episode")
    assert text.startswith("worst episode: seed 7, fitness 0.123; lasted 200 of 1000 steps")
    assert "ended early: the env's termination rule ended it (its failure condition)" in text
    assert "torso fell 1 time(s)" in text and "first at step 101" in text
    assert "upside-down 45% of the time" in text
    assert "+5.00 m along x" in text
    assert "until the end" in text


def test_an_episode_the_env_ended_is_never_called_fall_free():
    """A walker standing still sinks below its healthy torso height (0.8 m) and the env ends the episode,
    though the torso never tilts 60 degrees or halves its height: the summary names the env's rule and
    does not say "No falls" beside it."""
    task = get_task("walker-run")
    text = summarize_episode(record_trajectory(task, mlp_policy(task, scale=0.0), 10_000), "best episode")
    # the rule that fired, with the value that broke it (the walker sinks: its height, not its pitch)
    assert re.search(r"ended early by the env's termination rule: the torso's height 0\.\d+ m, not between 0\.8 "
                     r"and 2 m\.", text), text
    assert "No falls" not in text and "did not tilt past 60 deg or drop below half its start height before " \
           "the env ended the episode" in text
    cheetah = get_task("halfcheetah-run")  # nothing ends its episodes early
    text = summarize_episode(record_trajectory(cheetah, mlp_policy(cheetah, scale=0.0), 10_000))
    assert "ran to the time limit" in text and "No falls of torso." in text


def test_best_and_worst_of_an_evaluation():
    task = get_task("inverted-pendulum-balance")
    export = mlp_policy(task, seed=3, scale=0.2)
    evaluation = evaluate_policy(task, export, episodes=3, seed=10_000)
    out = best_and_worst(task, export, evaluation, seed=10_000)
    fits = [e["fitness"] for e in evaluation["episodes"]]
    assert out["best"]["fitness"] == pytest.approx(max(fits))
    assert out["worst"]["fitness"] == pytest.approx(min(fits))
    assert out["best"]["summary"].startswith("best episode: seed")
    # the cart never tilts, so the summary watches the pole
    assert "pole" in out["best"]["summary"]
    json.dumps(out, allow_nan=False)


# A slab built lying on its side (its frame turned 90 degrees about x) that stays where it lies.
SLAB = """
<mujoco model="slab">
  <worldbody>
    <geom name="floor" type="plane" size="5 5 0.1"/>
    <body name="slab" pos="0 0 0.06" euler="90 0 0">
      <freejoint name="root"/>
      <geom type="box" size="0.3 0.05 0.2" density="500"/>
      <body name="flap" pos="0.3 0 0">
        <joint name="hinge" type="hinge" axis="0 0 1" range="-30 30"/>
        <geom type="capsule" fromto="0 0 0 0.1 0 0" size="0.01" mass="0.01"/>
      </body>
    </body>
  </worldbody>
  <actuator><motor joint="hinge" ctrlrange="-1 1" gear="0.01"/></actuator>
</mujoco>
"""


def test_tilt_is_measured_from_each_bodys_initial_pose(tmp_path):
    """A body built lying on its side is not 'tilted 90 deg' or 'fallen': tilt is from its own initial pose."""
    from rewardgen.tasks.spec import task_from_mjcf

    (tmp_path / "slab.xml").write_text(SLAB)
    task = task_from_mjcf(tmp_path / "slab.xml", "slide", "forward_velocity(body=slab)", episode_length=60,
                          reset_noise=0.0)
    traj = record_trajectory(task, mlp_policy(task, scale=0.0), seed=1)
    slab = task.schema.bodies.index("slab")
    assert traj["tilt_deg"][:, slab].max() < 5.0 and traj["up_z"].min() > 0.99
    f = episode_facts(traj)
    assert f["falls"] == 0 and f["upside_down_fraction"] == 0.0 and f["max_tilt_deg"] < 5.0
    assert "fell" not in summarize_episode(traj) and "upside-down 0% of the time" in summarize_episode(traj)


def test_a_flip_is_not_reported_as_a_fall():
    """Where the fitness is a rotation (a backflip), turning over is the task: no 'fell N times'."""
    from rewardgen.proposers.reflection import behaviour_facts

    traj = _synthetic() | {"fitness_name": "rotation"}
    assert "fell" not in summarize_episode(traj) and "turned more than 90 deg for 45% of the time" in \
        summarize_episode(traj)
    assert "fell 1 time(s)" in summarize_episode(_synthetic() | {"fitness_name": "forward_velocity"})
    trajectories = {"best": {"facts": episode_facts(traj)}}
    assert not behaviour_facts(trajectories, get_task("halfcheetah-backflip")).flipped
    assert behaviour_facts(trajectories, get_task("halfcheetah-run")).flipped


def test_rising_from_lying_is_not_a_flip_or_a_fall():
    """The stand-up humanoid lies on its back with its torso's z axis up (out of its chest), so sitting
    up turns that axis past horizontal: the suite's run read "upside-down 91% of an episode" as a flip,
    raised the control cost and the torso's upright term (which pays for lying down) in all eight
    children, and none beat generation 0. A height fitness turns the body as a flip's does."""
    from rewardgen.proposers.history import behaviour_line
    from rewardgen.proposers.library import term_library
    from rewardgen.proposers.reflection import behaviour_facts

    standup = get_task("humanoid-stand-up")
    data = mujoco.MjData(standup.model)
    mujoco.mj_forward(standup.model, data)
    torso, pelvis = (standup.model.body(n).id for n in ("torso", "pelvis"))
    assert data.xpos[torso][2] < 0.15 and abs(data.xpos[pelvis][0] - data.xpos[torso][0]) > 0.3  # lying along x
    assert data.xmat[torso].reshape(3, 3)[2, 2] > 0.99  # yet "upright" by its z axis
    # as its task says: on its back, head toward -x along the torso's -x axis, feet toward +x, right side -y
    head, foot, arm = data.geom_xpos[standup.model.geom("head").id], data.xpos[standup.model.body("right_foot").id], \
        data.xpos[standup.model.body("right_upper_arm").id]
    assert data.xmat[torso].reshape(3, 3)[0, 0] > 0.99 and head[0] < data.xpos[torso][0] - 0.1 < foot[0] - 0.5
    assert arm[1] < -0.1  # head toward -x, chest up: the right side is at -y (lying face down, it would be +y)
    assert "lying on its back" in standup.description and "head toward -x" in standup.description
    traj = _synthetic() | {"fitness_name": "height"}
    # neither the summary nor the LLM's line calls the sit-up a fall or upside-down, nor the chest the top
    text = summarize_episode(traj)
    assert "fell" not in text and "turned more than 90 deg for 45% of the time" in text
    assert "upside-down" not in text and "its top" not in text
    trajectories = {"best": {"facts": episode_facts(traj)}}
    line = behaviour_line({"trajectories": trajectories}, standup, standup.episode_length)
    assert "turned more than 90 deg for up to 45% of an episode" in line, line
    assert "upside-down" not in line and "its top" not in line and "fell" not in line, line
    # one episode shown: one figure, not "+5.00 to +5.00 m"
    assert re.search(r"centre of mass moved [+-]\d+\.\d\d m along x \([+-]\d+\.\d\d m/s\)", line), line
    assert not behaviour_facts(trajectories, standup).flipped
    walker = get_task("walker-run")  # where falls matter, the same turn is upside-down
    assert behaviour_facts(trajectories, walker).flipped
    assert "upside-down 45% of the time" in summarize_episode(_synthetic())
    assert "upside-down up to 45% of an episode" in behaviour_line({"trajectories": trajectories}, walker, 1000)
    assert not [k for k in term_library(standup, standup.schema) if k.startswith("upright") or k == "posture"]


def test_a_fixed_base_arm_pointing_down_has_not_flipped_over():
    """The pusher's base never tilts, so the episode facts watch its most tilted link; a forearm
    pointing down most of the episode is a pose, not a fall, and must not raise the control cost
    (the suite's pusher run: "its policy spent 88% of an episode upside-down")."""
    from rewardgen.proposers.reflection import behaviour_facts

    traj = _synthetic()
    up_link = traj["up_z"]
    arm = traj | {"main_body": "shoulder", "bodies": ["shoulder", "forearm"], "up_z": np.ones_like(up_link),
                  "height": np.full(len(up_link), 0.5),
                  "tilt_deg": np.stack([np.zeros(len(up_link)), np.degrees(np.arccos(up_link))], axis=1)}
    facts = episode_facts(arm)
    assert facts["tilt_body"] == "forearm" and facts["upside_down_fraction"] == pytest.approx(0.45)
    pusher = get_task("pusher-push")
    assert not behaviour_facts({"best": {"facts": facts}}, pusher).flipped
    walker = {"best": {"facts": episode_facts(traj)}}  # the main body itself turned over: a fall
    assert behaviour_facts(walker, pusher).flipped and behaviour_facts(walker, pusher).upside_down == pytest.approx(0.45)


def test_the_largest_tilt_says_which_way_the_body_leaned_in_degrees_and_radians():
    """A hopper given no action falls over; the summary's direction is checked against MuJoCo itself: the
    same episode replayed, a positive rooty turns the torso's top toward +x."""
    task = get_task("hopper-hop")
    traj = record_trajectory(task, mlp_policy(task, scale=0.0), seed=3)
    f = episode_facts(traj)
    env = task.make_env()
    env.reset(seed=3)
    rooty = []
    for _ in range(int(traj["length"])):
        env.step(np.zeros(env.action_space.shape))
        rooty.append(float(env.unwrapped.data.qpos[2]))
    env.close()
    at = int(np.argmax(np.abs(rooty)))
    assert f["max_tilt_deg"] == pytest.approx(np.degrees(abs(rooty[at])), abs=0.5)
    assert f["max_tilt_toward"] == ("+x" if rooty[at] > 0 else "-x")
    text = summarize_episode(traj)
    assert f"max tilt {f['max_tilt_deg']:.0f} deg ({np.radians(f['max_tilt_deg']):.2f} rad) from its initial pose, " \
           f"its top toward {f['max_tilt_toward']}" in text

