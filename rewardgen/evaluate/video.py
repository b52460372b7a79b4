"""Videos of trained policies: render one deterministic rollout to an H.264 mp4.

``render_rollout`` runs the policy (plain arrays, ``rewardgen.contract.policy``) in ``task.make_env()``, draws
each recorded step with MuJoCo's offscreen renderer and encodes the frames with ffmpeg
(``imageio-ffmpeg``) as H.264 / yuv420p with the index at the front (``+faststart``), which every
browser plays and can seek over HTTP Range requests.

MuJoCo picks its OpenGL backend when ``mujoco`` is imported; importing ``rewardgen`` first picks a
headless one (``egl``) when ``MUJOCO_GL`` is unset and there is no display (``rewardgen.glbackend``).
A process whose mujoco took the windowed default with no display to open gets a ``VideoError`` that
says so; ``rewardgen.procs.trusted.render_in_child`` renders the same video in a confined child
(``python -m rewardgen.evaluate.video`` started with ``MUJOCO_GL=egl``). The result names the backend
that drew it (``renderer``).

The camera follows the robot: the model's ``track`` camera when it has one (gymnasium's locomotion
robots do), else a tracking camera on the schema's robot root body. The video is capped at
``max_seconds`` (10 s by default) and at most ~30 frames per second of simulated time, so a render
costs a few seconds on a CPU. The file is written atomically (temp file in the same directory, then
rename), so a reader never sees half a video.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rewardgen.contract.policy import DeterministicPolicy, PolicyExport, policy_from_job
from rewardgen.glbackend import has_display
from rewardgen.store import VIDEO_FILE, publish
from rewardgen.tasks.spec import Task, mujoco_env, space_dims, task_from_dict

#: frames per second of simulated time above which steps are skipped (rendering is the slow part)
MAX_FPS = 30.0
HEADLESS_BACKENDS = ("egl", "osmesa")


class VideoError(RuntimeError):
    """Rendering or encoding failed; the message is for the user."""


def video_path(cand_dir: Path) -> Path:
    """Where a candidate's video lives."""
    return Path(cand_dir) / VIDEO_FILE


def _gl_backend() -> str:
    """The OpenGL backend the imported mujoco chose ('' means its default, glfw)."""
    from mujoco.rendering.classic import gl_context

    return str(getattr(gl_context, "_MUJOCO_GL", os.environ.get("MUJOCO_GL", ""))).lower()


def frame_plan(dt: float, fps: float | None, max_seconds: float, max_steps: int | None,
                episode_length: int) -> tuple[int, float, int]:
    """(stride in env steps between frames, video fps, env steps to simulate at most)."""
    sim_fps = 1.0 / dt
    if fps is None:
        stride = max(1, math.ceil(sim_fps / MAX_FPS - 1e-9))
        out_fps = sim_fps / stride
    else:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        stride = max(1, round(sim_fps / fps))
        out_fps = float(fps)
    steps = episode_length if max_steps is None else min(int(max_steps), episode_length)
    steps = min(steps, int(max_seconds * out_fps) * stride)
    return stride, out_fps, max(1, steps)


def _camera(model: Any, root_body: int):
    import mujoco

    cam = mujoco.MjvCamera()
    track = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track")
    if track >= 0:
        cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam.fixedcamid = track
        return cam, "track"
    cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    cam.trackbodyid = int(root_body)
    cam.distance = float(model.stat.extent) * 1.6
    cam.azimuth = 90.0
    cam.elevation = -15.0
    return cam, f"tracking body {root_body}"


def _render_here(task: Task, export: PolicyExport, path: Path, seed: int, max_steps: int | None,
                 width: int, height: int, fps: float | None, max_seconds: float) -> dict[str, Any]:
    import imageio_ffmpeg
    import mujoco

    started = time.monotonic()
    width, height = max(16, int(width) // 2 * 2), max(16, int(height) // 2 * 2)  # yuv420p needs even sizes
    env = task.make_env()
    try:
        export.validate(*space_dims(env))
        policy = DeterministicPolicy(export)
        base = mujoco_env(env)
        model, data = base.model, base.data
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
        # no multisampling: in a software renderer it more than doubles a frame's cost, and the H.264
        # encoding that follows blurs the edges it would smooth
        model.vis.quality.offsamples = 0
        stride, out_fps, steps = frame_plan(float(base.dt), fps, max_seconds, max_steps, task.episode_length)
        camera, camera_label = _camera(model, task.schema.robot_root)
        renderer = mujoco.Renderer(model, height=height, width=width)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".mp4", dir=path.parent)
        os.close(fd)
        frames, step, terminated = 0, 0, False
        try:
            writer = imageio_ffmpeg.write_frames(
                tmp, (width, height), fps=out_fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
                macro_block_size=2, ffmpeg_log_level="error",
                output_params=["-preset", "veryfast", "-crf", "26", "-movflags", "+faststart"])
            writer.send(None)

            def draw() -> None:
                renderer.update_scene(data, camera=camera)
                # shadows and reflections triple the cost of a software-rendered frame
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
                writer.send(np.ascontiguousarray(renderer.render()))

            obs, _ = env.reset(seed=seed)
            draw()
            frames = 1
            while step < steps:
                action = policy(np.asarray(obs, dtype=np.float32)[None, :])[0]
                obs, _, terminated, truncated, _ = env.step(action)
                step += 1
                if step % stride == 0 or terminated or truncated:
                    draw()
                    frames += 1
                if terminated or truncated:
                    break
            writer.close()
            publish(Path(tmp), path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        finally:
            renderer.close()
    finally:
        env.close()
    return {"path": str(path), "frames": frames, "seconds": round(frames / out_fps, 3), "fps": round(out_fps, 3),
            "steps": step, "terminated": bool(terminated), "camera": camera_label, "width": width, "height": height,
            "renderer": _gl_backend() or "glfw", "render_seconds": round(time.monotonic() - started, 2)}


def render_rollout(task: Task, export: PolicyExport, path: Path, seed: int, max_steps: int | None = None,
                   width: int = 480, height: int = 360, fps: float | None = None,
                   max_seconds: float = 10.0) -> dict[str, Any]:
    """Render one deterministic rollout of ``export`` in ``task`` to the mp4 at ``path``.

    :param seed: the episode's reset seed.
    :param max_steps: env steps to simulate at most (the episode may end earlier); None = whole episode.
    :param fps: video frame rate; None plays in real time at <= 30 fps (steps in between are skipped).
    :param max_seconds: cap on the video's length.
    :returns: ``{"path", "frames", "seconds", "fps", "steps", "terminated", "camera", ...}``.
    :raises PolicyFormatError: (a ValueError) the policy does not fit the task.
    :raises VideoError: rendering or encoding failed (no file is left at ``path``).
    """
    if max_steps is not None and max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    env = task.make_env()
    try:  # a policy for another robot fails here, as PolicyFormatError, whichever process renders
        export.validate(*space_dims(env))
    finally:
        env.close()
    if _gl_backend() in HEADLESS_BACKENDS or has_display():
        try:
            return _render_here(task, export, Path(path), seed, max_steps, width, height, fps, max_seconds)
        except (OSError, RuntimeError, ImportError) as exc:
            raise VideoError(f"rendering failed ({_gl_backend() or 'glfw'} backend): {exc}") from exc
    raise VideoError(f"this process's MuJoCo renders with {_gl_backend() or 'glfw'!r}, which needs a display, and "
                     "there is none: mujoco was imported before rewardgen without MUJOCO_GL (import rewardgen "
                     "first, or set MUJOCO_GL=egl), or use rewardgen.procs.trusted.render_in_child")


def answer(job: dict[str, Any]) -> dict[str, Any]:
    """Render the video ``job`` asks for (run by ``rewardgen.procs.child``, see ``render_in_child``)."""
    task = task_from_dict(job["task"], where="video job")
    export = policy_from_job(job)
    out = _render_here(task, export, Path(job["path"]), int(job["seed"]), job.get("max_steps"),
                       int(job.get("width", 480)), int(job.get("height", 360)), job.get("fps"),
                       float(job.get("max_seconds", 10.0)))
    return out
