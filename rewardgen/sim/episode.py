"""The episode loop shared by trusted evaluation, trajectory recording and videos' replays.

One deterministic policy in the canonical gymnasium env, step by step, with the State of each step
kept in preallocated buffers so the trusted fitness is measured on the same arrays a reward sees.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from rewardgen.contract.policy import DeterministicPolicy
from rewardgen.contract.state import StateBuffers, refresh_derived
from rewardgen.tasks.spec import Task

#: steps whose States are measured together (one ``fitness.per_step`` call per chunk, not per step)
FITNESS_CHUNK = 256
TRAJECTORY_ROWS = ("height", "up_z", "lean_xy", "tilt_deg", "com", "com_vel", "fitness", "env_reward", "action_sq")


def initial_up(task: Task, model: mujoco.MjModel) -> np.ndarray:
    """Each body's local z axis in the world frame in the model's initial pose (``qpos0``), shape
    (bodies, 3): tilt is measured from there, so a body built lying on its side is not "tilted"."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    one = StateBuffers(task.schema, model, 1)
    one.fill(0, data, np.zeros(model.nu, dtype=np.float32), 0)
    return one.body_up[0].astype(np.float64)


class _OneWorld:
    """``rules.base.GymView`` of one gymnasium env right after its step, as the env read it (derived
    quantities before ``refresh_derived``; ``xpos_now`` after it is set by the caller)."""

    def __init__(self, data: mujoco.MjData, action: np.ndarray):
        self.n, self.after_reset = 1, False
        self.qpos, self.qvel = data.qpos[None, :].copy(), data.qvel[None, :].copy()
        self.qpos_before = self.qpos
        self.action = np.asarray(action, dtype=np.float64)[None, :]
        self.ctrl = data.ctrl[None, :].copy()
        self.xpos, self.xipos = data.xpos[None].copy(), data.xipos[None].copy()
        self.cinert, self.cvel = data.cinert[None].copy(), data.cvel[None].copy()
        self.cfrc_ext, self.site_xpos = data.cfrc_ext[None].copy(), data.site_xpos[None].copy()
        self.qfrc_actuator = data.qfrc_actuator[None].copy()
        self.qfrc_constraint = data.qfrc_constraint[None].copy()
        self.xpos_now = self.xpos


def ended_by(env, data: mujoco.MjData, action: np.ndarray, model: mujoco.MjModel) -> list[dict[str, Any]]:
    """Which of the env's termination rules (``rewardgen.sim.rules``) ended an episode at this step:
    ``[{"quantity", "meaning", "value", "text"}]`` (a non-finite state as its own entry); [] when the
    rules are not known. Call right after the step that terminated, before ``refresh_derived``."""
    from array_api_compat import numpy as xp

    from rewardgen.sim.rules import rules_for

    try:
        rules = rules_for(env)
    except ValueError:
        return []
    view = _OneWorld(data, action)
    scratch = mujoco.MjData(model)
    scratch.qpos[:], scratch.qvel[:] = data.qpos, data.qvel
    mujoco.mj_kinematics(model, scratch)
    view.xpos_now = scratch.xpos[None].copy()
    out = []
    try:
        for bound, value, several in rules.broken(xp, view):
            out.append({"quantity": bound.quantity, "meaning": bound.meaning, "value": value,
                        "text": bound.broken_text(value, several)})
    except (AttributeError, TypeError, ValueError):
        return []
    if rules.nonfinite and not (np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()):
        out.append({"quantity": "s.qpos and s.qvel", "meaning": "the state", "value": None,
                    "text": "a position or velocity became NaN or infinite"})
    return out


def run_episode(task: Task, env, policy: DeterministicPolicy, fitness, seed: int,
                record_body: int | None = None) -> dict[str, Any]:
    """One episode of the deterministic policy in the canonical env (reset with ``seed``).

    The State of every step is filled into preallocated buffers and the trusted per-step fitness is
    measured ``FITNESS_CHUNK`` steps at a time (always on a full chunk, so a step's value never
    depends on where the episode ends). Evaluation and trajectory recording both run episodes
    through here, so a recorded trajectory is exactly an evaluation episode. With ``record_body``
    (a body index) the per-step trajectory rows (``TRAJECTORY_ROWS``) are kept as well: ``up_z`` and
    ``tilt_deg`` measure each body's z axis against its own in the initial pose (``initial_up``);
    ``lean_xy`` is how far the recorded body's z axis has moved along world x and y from it (which
    way it leans: +x is its top ahead along x)."""
    schema = task.schema
    model, data = env.unwrapped.model, env.unwrapped.data
    buffers = StateBuffers(schema, model, FITNESS_CHUNK)
    up0 = initial_up(task, model) if record_body is not None else None
    obs, _ = env.reset(seed=seed)
    start_com = data.subtree_com[schema.robot_root].copy()
    values: list[float] = []
    rows: dict[str, list] = {k: [] for k in TRAJECTORY_ROWS}
    length, env_return, filled, terminated, done, why = 0, 0.0, 0, False, False, []
    while not done:
        action = policy(obs[None, :].astype(np.float32))[0]
        obs, r, terminated, truncated, _ = env.step(action)
        if terminated:
            why = ended_by(env, data, action, model)
        refresh_derived(model, data)
        length += 1
        buffers.fill(filled, data, action, length)
        filled += 1
        env_return += float(r)
        done = bool(terminated or truncated)
        if record_body is not None:
            rows["env_reward"].append(float(r))
            rows["action_sq"].append(float(np.sum(np.square(action))))
        if filled == FITNESS_CHUNK or done:
            values.extend(float(v) for v in fitness.per_step(buffers.to_state())[:filled].tolist())
            if record_body is not None and up0 is not None:  # up0 is drawn exactly when a body is recorded
                cos = np.clip((buffers.body_up[:filled].astype(np.float64) * up0).sum(axis=-1), -1.0, 1.0)
                rows["height"].extend(buffers.body_pos[:filled, record_body, 2].astype(np.float64))
                rows["up_z"].extend(cos[:, record_body])
                rows["lean_xy"].extend(buffers.body_up[:filled, record_body, :2].astype(np.float64)
                                       - up0[record_body, :2])
                rows["tilt_deg"].extend(np.degrees(np.arccos(cos)))
                rows["com"].extend(buffers.com_pos[:filled].copy())
                rows["com_vel"].extend(buffers.com_vel[:filled].copy())
            filled = 0
    rows["fitness"] = values
    end_com = data.subtree_com[schema.robot_root].copy()
    return {"values": values, "length": length, "terminated": bool(terminated), "ended_by": why,
            "env_return": env_return,
            "start_com": start_com, "end_com": end_com, "rows": rows if record_body is not None else None}
