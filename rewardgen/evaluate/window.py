"""Watching a trained policy in a window: one deterministic rollout in MuJoCo's own viewer, in real time.

``rewardgen play`` shows it when a display exists, after writing the video. It needs MuJoCo's
windowed backend (glfw), which a process chooses when it first imports mujoco, so it always runs in a
fresh child started with ``MUJOCO_GL=glfw`` (``rewardgen.procs.trusted.show_in_window``), never in a
process that renders offscreen. The camera follows the robot like the videos' (``video._camera``).
Closing the window ends the rollout early.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from rewardgen.contract.policy import DeterministicPolicy, PolicyExport, policy_from_job
from rewardgen.tasks.spec import Task, mujoco_env, space_dims, task_from_dict


def display_available() -> bool:
    """Whether this process can open a window (an X11 or Wayland display is named)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def watch_rollout(task: Task, export: PolicyExport, seed: int, max_seconds: float = 10.0) -> dict[str, Any]:
    """Run the policy for one episode (at most ``max_seconds`` of simulated time) in a viewer window,
    paced to real time. Returns ``{"steps", "seconds", "closed", "terminated"}``."""
    import mujoco
    import mujoco.viewer

    from rewardgen.evaluate.video import _camera

    env = task.make_env()
    try:
        export.validate(*space_dims(env))
        policy = DeterministicPolicy(export)
        base = mujoco_env(env)
        dt = float(base.dt)
        steps = min(task.episode_length, max(1, int(max_seconds / dt)))
        obs, _ = env.reset(seed=seed)
        step, terminated, closed = 0, False, False
        with mujoco.viewer.launch_passive(base.model, base.data, show_left_ui=False, show_right_ui=False) as viewer:
            camera, _ = _camera(base.model, task.schema.robot_root)
            viewer.cam.type, viewer.cam.fixedcamid, viewer.cam.trackbodyid = camera.type, camera.fixedcamid, \
                camera.trackbodyid
            if camera.type == mujoco.mjtCamera.mjCAMERA_TRACKING:
                viewer.cam.distance, viewer.cam.azimuth, viewer.cam.elevation = camera.distance, camera.azimuth, \
                    camera.elevation
            viewer.sync()
            while step < steps:
                if not viewer.is_running():
                    closed = True
                    break
                started = time.monotonic()
                action = policy(np.asarray(obs, dtype=np.float32)[None, :])[0]
                obs, _, terminated, truncated, _ = env.step(action)
                step += 1
                viewer.sync()
                if terminated or truncated:
                    break
                time.sleep(max(0.0, dt - (time.monotonic() - started)))
    finally:
        env.close()
    return {"steps": step, "seconds": round(step * dt, 3), "closed": closed, "terminated": bool(terminated)}


def answer(job: dict[str, Any]) -> dict[str, Any]:
    """Show the rollout ``job`` asks for (run by ``rewardgen.procs.child`` in a fresh process)."""
    import warnings

    warnings.filterwarnings("ignore")  # the output's last line is the error the caller reports, not a warning
    task = task_from_dict(job["task"], where="window job")
    export = policy_from_job(job)
    return watch_rollout(task, export, int(job["seed"]), float(job.get("max_seconds", 10.0)))
