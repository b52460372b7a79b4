"""The episode loop shared by trusted evaluation, trajectory recording and videos' replays.

One deterministic policy in the canonical gymnasium env, step by step, with the State of each step
kept in preallocated buffers so the trusted fitness is measured on the same arrays a reward sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rewardgen.contract.policy import DeterministicPolicy
from rewardgen.contract.state import StateBuffers, refresh_derived
from rewardgen.tasks.spec import Task

#: steps whose States are measured together (one ``fitness.per_step`` call per chunk, not per step)
FITNESS_CHUNK = 256
TRAJECTORY_ROWS = ("height", "up_z", "tilt_deg", "com", "com_vel", "fitness", "env_reward", "action_sq")


def run_episode(task: Task, env, policy: DeterministicPolicy, fitness, seed: int,
                record_body: int | None = None) -> dict[str, Any]:
    """One episode of the deterministic policy in the canonical env (reset with ``seed``).

    The State of every step is filled into preallocated buffers and the trusted per-step fitness is
    measured ``FITNESS_CHUNK`` steps at a time (always on a full chunk, so a step's value never
    depends on where the episode ends). Evaluation and trajectory recording both run episodes
    through here, so a recorded trajectory is exactly an evaluation episode. With ``record_body``
    (a body index) the per-step trajectory rows (``TRAJECTORY_ROWS``) are kept as well."""
    schema = task.schema
    model, data = env.unwrapped.model, env.unwrapped.data
    buffers = StateBuffers(schema, model, FITNESS_CHUNK)
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
                up = buffers.body_up[:filled]
                rows["height"].extend(buffers.body_pos[:filled, record_body, 2].astype(np.float64))
                rows["up_z"].extend(up[:, record_body, 2].astype(np.float64))
                rows["tilt_deg"].extend(np.degrees(np.arccos(np.clip(up[:, :, 2], -1.0, 1.0))))
                rows["com"].extend(buffers.com_pos[:filled].copy())
                rows["com_vel"].extend(buffers.com_vel[:filled].copy())
            filled = 0
    rows["fitness"] = values
    end_com = data.subtree_com[schema.robot_root].copy()
    return {"values": values, "length": length, "terminated": bool(terminated), "env_return": env_return,
            "start_com": start_com, "end_com": end_com, "rows": rows if record_body is not None else None}
