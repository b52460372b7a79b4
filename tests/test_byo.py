"""Bring your own robot: a task from any MJCF file, no YAML needed; clear errors when it cannot work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, last_json
from rewardgen.run.evolve import Evolution, start_run
from rewardgen.run.config import EvolveConfig
from rewardgen.tasks.fitness import FitnessError
from rewardgen.proposers.params import render_params, reward_template
from rewardgen.proposers.base import ProposalContext
from rewardgen.proposers.library import term_library
from rewardgen.proposers.offline import OfflineProposer
from rewardgen.tasks.spec import TaskError, get_task, load_task_file, task_from_dict, task_from_mjcf, write_task_yaml

# A planar two-legged walker written from scratch: root "base" slides in x and z and pitches about y.
WALKER = """
<mujoco model="biped">
  <compiler angle="degree"/>
  <option timestep="0.005"/>
  <default>
    <joint damping="0.5" armature="0.01"/>
    <geom friction="1 0.1 0.1" rgba="0.6 0.5 0.4 1"/>
    <motor ctrlrange="-1 1" ctrllimited="true" gear="40"/>
  </default>
  <worldbody>
    <geom name="floor" type="plane" size="20 2 0.1" rgba="0.8 0.9 0.8 1"/>
    <body name="base" pos="0 0 0.75">
      <joint name="rootx" type="slide" axis="1 0 0" limited="false" damping="0"/>
      <joint name="rootz" type="slide" axis="0 0 1" limited="false" damping="0"/>
      <joint name="rooty" type="hinge" axis="0 1 0" limited="false" damping="0"/>
      <geom type="capsule" fromto="-0.15 0 0 0.15 0 0" size="0.06"/>
      <body name="left_thigh" pos="0 0.08 -0.05">
        <joint name="left_hip" type="hinge" axis="0 1 0" range="-60 60"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.3" size="0.04"/>
        <body name="left_shin" pos="0 0 -0.3">
          <joint name="left_knee" type="hinge" axis="0 1 0" range="-100 0"/>
          <geom type="capsule" fromto="0 0 0 0 0 -0.3" size="0.035"/>
        </body>
      </body>
      <body name="right_thigh" pos="0 -0.08 -0.05">
        <joint name="right_hip" type="hinge" axis="0 1 0" range="-60 60"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.3" size="0.04"/>
        <body name="right_shin" pos="0 0 -0.3">
          <joint name="right_knee" type="hinge" axis="0 1 0" range="-100 0"/>
          <geom type="capsule" fromto="0 0 0 0 0 -0.3" size="0.035"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="left_hip"/>
    <motor joint="left_knee"/>
    <motor joint="right_hip"/>
    <motor joint="right_knee"/>
  </actuator>
</mujoco>
"""

# A two-link arm bolted to the world: it cannot travel.
ARM = """
<mujoco model="arm">
  <worldbody>
    <body name="upper" pos="0 0 0.1">
      <joint name="shoulder" type="hinge" axis="0 0 1" limited="false"/>
      <geom type="capsule" fromto="0 0 0 0.2 0 0" size="0.02"/>
      <body name="hand" pos="0.2 0 0">
        <joint name="elbow" type="hinge" axis="0 0 1" range="-3 3"/>
        <geom type="capsule" fromto="0 0 0 0.2 0 0" size="0.02"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="shoulder" ctrlrange="-1 1"/>
    <motor joint="elbow" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


@pytest.fixture
def robot(tmp_path: Path) -> Path:
    path = tmp_path / "robot" / "biped.xml"
    path.parent.mkdir()
    path.write_text(WALKER)
    return path


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text
    return text


def test_task_from_mjcf_builds_a_task_that_round_trips(robot, tmp_path):
    task = task_from_mjcf(str(robot), "make it walk forward", "forward_velocity(body=base)",
                          episode_length=200, default_steps=4096)
    assert task.id == "biped" and task.mjcf == str(robot.resolve()) and Path(task.mjcf).is_absolute()
    assert task.fitness == {"name": "forward_velocity", "params": {"body": "base"}}
    assert task.baseline_kind == "sparse" and not task.has_env_reward
    assert task.success_threshold > 0  # the generic default for forward_velocity
    assert "base" in task.schema.bodies and task.schema.nu == 4
    # runs store to_dict() and workers rebuild from it
    again = task_from_dict(json.loads(json.dumps(task.to_dict())), where="run.json")
    assert again.to_dict() == task.to_dict()
    # the generic env: the root's x position is not observed, the height is
    env = task.make_env()
    obs, _ = env.reset(seed=0)
    assert env.unwrapped._skip == 1 and obs.shape == (task.model.nq - 1 + task.model.nv,)
    env.close()
    # a task file the user keeps: relative MJCF path beside it, read back identically
    out = write_task_yaml(task, robot.parent / "biped-walk.yaml")
    assert "mjcf: biped.xml" in out.read_text()
    assert load_task_file(out).to_dict() == task.to_dict()
    assert get_task(str(out)).to_dict() == task.to_dict()
    elsewhere = write_task_yaml(task, tmp_path / "tasks" / "walk.yaml")
    assert str(robot.resolve()) in elsewhere.read_text()
    assert load_task_file(elsewhere).to_dict() == task.to_dict()
    with pytest.raises(TaskError, match="already exists"):
        write_task_yaml(task, out)
    # the offline proposer and parameter mode both have terms for it
    assert any(t.goal for t in term_library(task, task.schema).values())
    assert "compute_reward" in render_params(reward_template(task), reward_template(task).defaults())
    assert len(OfflineProposer().propose(ProposalContext(task, task.schema, 0, 2, seed=0))) == 2


def test_healthy_height_ends_episodes_and_makes_alive_fraction_apply(robot):
    with pytest.raises(FitnessError, match="never end early"):
        task_from_mjcf(str(robot), "stay up", "alive_fraction")
    task = task_from_mjcf(str(robot), "stay up", "alive_fraction", healthy_z_range=(0.5, 2.0), episode_length=300)
    assert task.env_kwargs == {"healthy_z_range": [0.5, 2.0]}
    env = task.make_env()
    env.reset(seed=0)
    ended = False
    for _ in range(300):  # limp legs: the biped collapses and the episode ends
        _, _, terminated, truncated, _ = env.step(np.zeros(4, dtype=np.float32))
        if terminated:
            ended = True
            break
        assert not truncated
    env.close()
    assert ended
    jump = task_from_mjcf(str(robot), "jump", "jump_height(body=base)")
    assert jump.fitness["params"]["rest"] == pytest.approx(0.75, abs=1e-3)  # filled from the model


def test_clear_errors_for_broken_model_missing_body_and_inapplicable_fitness(tmp_path, robot):
    broken = tmp_path / "broken.xml"
    broken.write_text("<mujoco><worldbody><body name='a'><geom type='sphere'></worldbody></mujoco>")
    with pytest.raises(TaskError) as err:
        task_from_mjcf(str(broken), "walk", "forward_velocity(body=a)")
    assert "cannot load MJCF model" in _one_line(err.value)

    with pytest.raises(TaskError, match="not found"):
        task_from_mjcf(str(tmp_path / "missing.xml"), "walk", "forward_velocity(body=a)")

    with pytest.raises(FitnessError) as err:
        task_from_mjcf(str(robot), "walk", "forward_velocity(body=torso)")
    assert "no body named 'torso'" in _one_line(err.value) and "base" in str(err.value)

    with pytest.raises(FitnessError, match="unknown fitness 'run_fast'"):
        task_from_mjcf(str(robot), "walk", "run_fast(body=base)")

    with pytest.raises(FitnessError, match="cannot parse"):
        task_from_mjcf(str(robot), "walk", "forward_velocity(body=")

    arm = tmp_path / "arm.xml"
    arm.write_text(ARM)
    with pytest.raises(FitnessError) as err:
        task_from_mjcf(str(arm), "move the hand forward", "forward_velocity(body=hand)")
    text = _one_line(err.value)
    assert "does not apply" in text and "cannot translate along x" in text and "free joint" in text
    with pytest.raises(FitnessError, match="cannot move vertically"):
        task_from_mjcf(str(arm), "jump", "jump_height(body=hand, rest=0.1)")
    # the planar biped cannot move sideways: circling needs x and y
    with pytest.raises(FitnessError, match="cannot translate along y"):
        task_from_mjcf(str(robot), "circle", "circle_laps(body=base, radius=1)")
    # an arm's goal that does apply (the shoulder turns without limits), and one that does not
    ok = task_from_mjcf(str(arm), "spin the arm", "rotation(body=upper, axis=z)", success_threshold=2.0)
    assert ok.success_threshold == 2.0
    with pytest.raises(FitnessError, match="cannot turn freely about x"):
        task_from_mjcf(str(arm), "roll the arm", "rotation(body=hand, axis=x)")

    no_motor = tmp_path / "passive.xml"
    no_motor.write_text("<mujoco><worldbody><body name='b'><freejoint/><geom type='sphere' size='0.1'/></body>"
                        "</worldbody></mujoco>")
    with pytest.raises(TaskError, match="no actuators"):
        task_from_mjcf(str(no_motor), "roll", "forward_velocity(body=b)")


@pytest.mark.slow
def test_evolve_a_brought_robot_to_a_finished_run(robot, runs_dir):
    """What ``rewardgen evolve --env ROBOT.xml --describe ... --fitness ...`` does, through the library."""
    task = task_from_mjcf(str(robot), "make it walk forward", "forward_velocity(body=base)", episode_length=200,
                          default_steps=2048, eval_episodes=2)
    yaml_path = write_task_yaml(task, robot.parent / "biped.yaml")
    config = EvolveConfig(task=str(yaml_path), samples=2, generations=1, steps=2048, workers=2, num_envs=4)
    store = start_run(config, runs_dir)
    summary = Evolution(store).run()
    run = json.loads((store.path / "run.json").read_text())
    assert run["status"] == "finished"
    assert task_from_dict(run["task"], where="run.json").to_dict() == task.to_dict()
    cands = summary["generations"][0]["candidates"]
    assert len(cands) == 2 and all(c["status"] == "ok" for c in cands), cands
    assert summary["best"] is not None and isinstance(summary["best"]["fitness"], float)


@pytest.mark.slow
def test_cli_evolve_with_env_flags(robot, runs_dir):
    """The CLI's bring-your-own-robot flags."""
    help_text = cli("evolve", "--help", timeout=60).stdout
    for flag in ("--env", "--describe", "--fitness"):
        assert flag in help_text, flag
    res = cli("evolve", "--env", str(robot), "--describe", "make it walk forward", "--fitness",
              "forward_velocity(body=base)", "--samples", "2", "--generations", "1", "--steps", "2048",
              "--runs-dir", str(runs_dir), "--json", timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = last_json(res.stdout)
    run = json.loads((Path(out["run_dir"]) / "run.json").read_text())
    assert run["status"] == "finished" and run["task"]["mjcf"] == str(robot.resolve())
    bad = cli("evolve", "--env", str(robot), "--describe", "walk", "--fitness", "forward_velocity(body=torso)",
              "--runs-dir", str(runs_dir), timeout=60)
    assert bad.returncode == 2 and "no body named 'torso'" in bad.stderr


@pytest.mark.parametrize("text", ['forward_velocity(body=-"torso")', "forward_velocity(body=-None)",
                                  "forward_velocity(**params)"])
def test_fitness_text_with_a_negated_word_or_unnamed_parameters_is_a_fitness_error(text):
    """A negated string or None, or ``**params``, is refused as the user's mistake (FitnessError, one
    line), not a TypeError traceback or a parameter named None."""
    from rewardgen.tasks.fitness import parse_fitness

    with pytest.raises(FitnessError, match="fitness"):
        parse_fitness(text)
