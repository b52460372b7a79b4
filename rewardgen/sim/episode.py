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
TRAJECTORY_ROWS = ("height", "up_z", "tilt_deg", "com", "com_vel", "fitness", "env_reward", "action_sq")


def initial_up(task: Task, model: mujoco.MjModel) -> np.ndarray:
    """Each body's local z axis in the world frame in the model's initial pose (``qpos0``), shape
    (bodies, 3): tilt is measured from there, so a body built lying on its side is not "tilted"."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    one = StateBuffers(task.schema, model, 1)
    one.fill(0, data, np.zeros(model.nu, dtype=np.float32), 0)
    return one.body_up[0].astype(np.float64)


def run_episode(task: Task, env, policy: DeterministicPolicy, fitness, seed: int,
                record_body: int | None = None) -> dict[str, Any]:
    """One episode of the deterministic policy in the canonical env (reset with ``seed``).

    The State of every step is filled into preallocated buffers and the trusted per-step fitness is
    measured ``FITNESS_CHUNK`` steps at a time (always on a full chunk, so a step's value never
    depends on where the episode ends). Evaluation and trajectory recording both run episodes
    through here, so a recorded trajectory is exactly an evaluation episode. With ``record_body``
    (a body index) the per-step trajectory rows (``TRAJECTORY_ROWS``) are kept as well: ``up_z`` and
    ``tilt_deg`` measure each body's z axis against its own in the initial pose (``initial_up``)."""
    schema = task.schema
    model, data = env.unwrapped.model, env.unwrapped.data
    buffers = StateBuffers(schema, model, FITNESS_CHUNK)
    up0 = initial_up(task, model) if record_body is not None else None
    obs, _ = env.reset(seed=seed)
    start_com = data.subtree_com[schema.robot_root].copy()
    values: list[float] = []
    rows: dict[str, list] = {k: [] for k in TRAJECTORY_ROWS}
    length, env_return, filled, terminated, done = 0, 0.0, 0, False, False
    while not done:
        action = policy(obs[None, :].astype(np.float32))[0]
        obs, r, terminated, truncated, _ = env.step(action)
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
            if record_body is not None:
                cos = np.clip((buffers.body_up[:filled].astype(np.float64) * up0).sum(axis=-1), -1.0, 1.0)
                rows["height"].extend(buffers.body_pos[:filled, record_body, 2].astype(np.float64))
                rows["up_z"].extend(cos[:, record_body])
                rows["tilt_deg"].extend(np.degrees(np.arccos(cos)))
                rows["com"].extend(buffers.com_pos[:filled].copy())
                rows["com_vel"].extend(buffers.com_vel[:filled].copy())
            filled = 0
    rows["fitness"] = values
    end_com = data.subtree_com[schema.robot_root].copy()
    return {"values": values, "length": length, "terminated": bool(terminated), "env_return": env_return,
            "start_com": start_com, "end_com": end_com, "rows": rows if record_body is not None else None}
