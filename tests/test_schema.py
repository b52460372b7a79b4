"""Schema derivation on every task, and State values checked against MuJoCo's own data."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from rewardgen.contract.schema import derive_schema
from rewardgen.contract.state import StateBuffers, refresh_derived
from rewardgen.tasks.spec import get_task, list_tasks

FOUNDATION_TASKS = ["inverted-pendulum-balance", "reacher-reach", "halfcheetah-run", "hopper-hop", "ant-run"]


def test_foundation_tasks_are_listed():
    ids = {t.id for t in list_tasks()}
    assert set(FOUNDATION_TASKS) <= ids


@pytest.mark.parametrize("task_id", FOUNDATION_TASKS)
def test_schema_names_and_state_shapes(task_id):
    task = get_task(task_id)
    schema, model = task.schema, task.model
    # every non-world body, every hinge/slide joint and every actuator is named, uniquely
    assert len(schema.bodies) == model.nbody - 1
    assert len(set(schema.bodies)) == len(schema.bodies)
    hinge_slide = [j for j in range(model.njnt) if model.jnt_type[j] in (2, 3)]
    assert len(schema.joints) == len(hinge_slide)
    assert len(schema.actuators) == model.nu and all(schema.actuators)
    assert schema.dt == pytest.approx(task.make_env().unwrapped.dt)
    # the description names every element it exposes
    for name in schema.bodies + schema.joints + schema.actuators:
        assert name in schema.description

    n = 3
    buffers = StateBuffers(schema, model, n)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    for i in range(n):
        buffers.fill(i, data, np.zeros(model.nu), 0)
    s = buffers.to_state()
    assert s.qpos.shape == (n, model.nq) and s.qvel.shape == (n, model.nv)
    assert s.action.shape == (n, model.nu) and s.ctrl.shape == (n, model.nu)
    assert s.step.shape == (n,) and isinstance(s.dt, float)
    assert s.com_pos.shape == (n, 3) and s.com_vel.shape == (n, 3)
    for name in schema.bodies:
        assert s.body_pos[name].shape == (n, 3)
        assert s.body_quat[name].shape == (n, 4)
        assert s.body_linvel[name].shape == (n, 3)
        assert s.body_angvel[name].shape == (n, 3)
        assert s.body_up[name].shape == (n, 3)
        assert s.contact_force[name].shape == (n,)
    for name in schema.joints:
        assert s.joint_pos[name].shape == (n,) and s.joint_vel[name].shape == (n,)
    assert all(t.dtype == torch.float32 for t in (s.qpos, s.qvel, s.com_pos))


def test_unnamed_elements_get_stable_generated_names():
    ant = get_task("ant-run").schema
    assert "body4" in ant.bodies  # the ant's feet are unnamed in Ant-v5
    assert ant.actuators[0] == "actuator0"
    xml = """
    <mujoco>
      <worldbody>
        <body pos="0 0 1"><freejoint/><geom size="0.1"/>
          <body pos="0.2 0 0"><joint type="hinge" axis="0 1 0"/><geom size="0.05"/><site/></body>
        </body>
      </worldbody>
      <actuator><motor joint="joint1" gear="10"/></actuator>
    </mujoco>"""
    # an actuator may only name a named joint: name it, leave the rest anonymous
    xml = xml.replace('<joint type="hinge"', '<joint name="joint1" type="hinge"')
    model = mujoco.MjModel.from_xml_string(xml)
    schema = derive_schema(model, model_name="test", frame_skip=2)
    assert schema.bodies == ("body1", "body2")
    assert schema.joints == ("joint1",)
    assert schema.sites == ("site0",)
    assert schema.actuators == ("actuator0",)
    assert schema.robot_root == 1
    again = derive_schema(model, model_name="test", frame_skip=2)
    assert again.bodies == schema.bodies and again.description == schema.description
    assert "free joint" in schema.description


@pytest.mark.parametrize("task_id", ["halfcheetah-run", "ant-run", "reacher-reach"])
def test_state_values_match_mujoco(task_id):
    """After real steps with random actions, every State field equals what MuJoCo computes."""
    task = get_task(task_id)
    env = task.make_env()
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, env.action_space.shape)
        env.step(action)
    model, data = env.unwrapped.model, env.unwrapped.data
    refresh_derived(model, data)
    buffers = StateBuffers(task.schema, model, 1)
    buffers.fill(0, data, action, 20)
    s = buffers.to_state()

    # reference values from an independent copy, recomputed by mj_forward
    ref = mujoco.MjData(model)
    ref.qpos[:], ref.qvel[:], ref.ctrl[:], ref.act[:] = data.qpos, data.qvel, data.ctrl, data.act
    mujoco.mj_forward(model, ref)
    mujoco.mj_subtreeVel(model, ref)
    np.testing.assert_allclose(s.qpos[0].numpy(), ref.qpos, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.qvel[0].numpy(), ref.qvel, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.action[0].numpy(), action, atol=1e-6)
    np.testing.assert_allclose(s.ctrl[0].numpy(), data.ctrl, atol=1e-6)
    # body-origin linear velocity by finite differences of the kinematics (independent of cvel)
    ahead = mujoco.MjData(model)
    ahead.qpos[:] = ref.qpos
    eps = 1e-6
    mujoco.mj_integratePos(model, ahead.qpos, ref.qvel, eps)
    mujoco.mj_kinematics(model, ahead)
    fd_linvel = (ahead.xpos - ref.xpos) / eps
    vel = np.zeros(6)
    for name, b in zip(task.schema.bodies, task.schema.body_ids):
        np.testing.assert_allclose(s.body_pos[name][0].numpy(), ref.xpos[b], atol=1e-5)
        np.testing.assert_allclose(s.body_quat[name][0].numpy(), ref.xquat[b], atol=1e-5)
        np.testing.assert_allclose(s.body_up[name][0].numpy(), ref.xmat[b].reshape(3, 3)[:, 2], atol=1e-5)
        mujoco.mj_objectVelocity(model, ref, mujoco.mjtObj.mjOBJ_BODY, b, vel, 0)
        np.testing.assert_allclose(s.body_angvel[name][0].numpy(), vel[:3], atol=1e-4)
        np.testing.assert_allclose(s.body_linvel[name][0].numpy(), fd_linvel[b], atol=1e-3)
    for name, j in zip(task.schema.joints, task.schema.joint_ids):
        assert s.joint_pos[name][0].item() == pytest.approx(ref.qpos[model.jnt_qposadr[j]], abs=1e-5)
        assert s.joint_vel[name][0].item() == pytest.approx(ref.qvel[model.jnt_dofadr[j]], abs=1e-4)
    root = task.schema.robot_root
    np.testing.assert_allclose(s.com_pos[0].numpy(), ref.subtree_com[root], atol=1e-5)
    np.testing.assert_allclose(s.com_vel[0].numpy(), ref.subtree_linvel[root], atol=1e-4)


def test_state_is_a_copy_and_named_fields_are_read_only():
    task = get_task("halfcheetah-run")
    env = task.make_env()
    env.reset(seed=0)
    model, data = env.unwrapped.model, env.unwrapped.data
    buffers = StateBuffers(task.schema, model, 1)
    buffers.fill(0, data, np.zeros(model.nu), 0)
    s = buffers.to_state()
    before = data.qpos.copy()
    s.qpos.zero_()
    s.body_pos["torso"].add_(100.0)
    np.testing.assert_array_equal(data.qpos, before)  # the simulator is untouched
    assert buffers.to_state().body_pos["torso"][0, 2].item() == pytest.approx(data.xpos[1][2], abs=1e-5)
    with pytest.raises(TypeError):
        s.body_pos["torso"] = torch.zeros(1, 3)  # mappings cannot be assigned
    with pytest.raises(KeyError, match="known names"):
        s.body_pos["nope"]
