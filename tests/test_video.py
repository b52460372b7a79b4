"""Rollout videos: a playable H.264/yuv420p mp4, written atomically, camera on the robot, capped length."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rewardgen.contract.policy import PolicyExport
from rewardgen.evaluate.video import frame_plan, render_rollout
from rewardgen.tasks.spec import get_task


def random_export(task_id: str, seed: int = 0) -> PolicyExport:
    env = get_task(task_id).make_env()
    o, a = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    rng = np.random.default_rng(seed)
    return PolicyExport({"obs_mean": np.zeros(o), "obs_var": np.ones(o), "w0": rng.normal(size=(8, o)),
                         "b0": np.zeros(8), "w1": 0.1 * rng.normal(size=(a, 8)), "b1": np.zeros(a)})


def stream_info(path: Path) -> dict:
    """Codec, pixel format and size of the first video stream, from ffmpeg's own description."""
    import imageio_ffmpeg

    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True)
    line = next(x for x in proc.stderr.splitlines() if "Video:" in x)
    return {"h264": "h264" in line, "yuv420p": "yuv420p" in line, "line": line}


def test_pendulum_video_is_h264_yuv420p_and_atomic(tmp_path: Path) -> None:
    task = get_task("inverted-pendulum-balance")
    out = tmp_path / "cand" / "video.mp4"
    info = render_rollout(task, random_export(task.id), out, seed=3, max_steps=40, width=161, height=121)
    assert info["path"] == str(out) and out.stat().st_size > 0
    assert info["width"] == 160 and info["height"] == 120  # even sizes for yuv420p
    assert 1 < info["frames"] <= 41 and info["seconds"] == pytest.approx(info["frames"] / info["fps"], abs=1e-3)
    assert info["camera"].startswith("tracking body")
    s = stream_info(out)
    assert s["h264"] and s["yuv420p"] and "160x120" in s["line"], s["line"]
    assert [p.name for p in out.parent.iterdir()] == ["video.mp4"]  # no temp file left behind
    import imageio_ffmpeg

    frames, _secs = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == info["frames"]


def test_locomotion_uses_the_track_camera_and_caps_length(tmp_path: Path) -> None:
    task = get_task("halfcheetah-run")
    info = render_rollout(task, random_export(task.id), tmp_path / "v.mp4", seed=0, width=96, height=64,
                          max_seconds=1.0)
    assert info["camera"] == "track"
    assert info["fps"] == pytest.approx(20.0) and info["frames"] == 21 and info["steps"] == 20


#: the environment of a fresh headless machine: no MUJOCO_GL, no display, nothing that picks a backend
def _headless_env() -> dict[str, str]:
    import os

    drop = {"MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_a_frame_renders_with_mujoco_gl_unset(tmp_path: Path) -> None:
    """A fresh headless machine (no MUJOCO_GL, no display): importing rewardgen picks a headless backend
    before mujoco is imported, says which, and a frame and a video render in that process."""
    code = (
        "import json, os, sys\n"
        "assert 'MUJOCO_GL' not in os.environ and 'DISPLAY' not in os.environ\n"
        "import rewardgen, mujoco, numpy as np\n"
        "from rewardgen.glbackend import CHOICE\n"
        "from rewardgen.tasks.spec import get_task\n"
        "from rewardgen.evaluate.video import render_rollout\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from test_video import random_export\n"
        "m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos=\"0 0 3\"/>"
        "<geom type=\"box\" size=\".3 .3 .3\" rgba=\"1 0 0 1\"/></worldbody></mujoco>')\n"
        "d = mujoco.MjData(m); mujoco.mj_forward(m, d)\n"
        "r = mujoco.Renderer(m, height=48, width=64); r.update_scene(d); frame = r.render(); r.close()\n"
        "t = get_task('inverted-pendulum-balance')\n"
        "info = render_rollout(t, random_export(t.id), sys.argv[1], seed=0, max_steps=5, width=64, height=48)\n"
        "print(json.dumps({'env': os.environ.get('MUJOCO_GL'), 'choice': CHOICE.describe(), 'shape': frame.shape,\n"
        "                  'red': int((frame[..., 0] > 100).sum()), 'renderer': info['renderer']}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "v.mp4"), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120, env=_headless_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = __import__("json").loads(proc.stdout.splitlines()[-1])
    assert out["env"] in ("egl", "osmesa") and out["renderer"] == out["env"]
    assert out["choice"] == f"{out['env']} (chosen by rewardgen: no display)"
    assert out["shape"] == [48, 64, 3] and out["red"] > 100  # the red box was drawn
    assert stream_info(tmp_path / "v.mp4")["h264"]


def test_a_backend_the_user_set_is_kept() -> None:
    from rewardgen.glbackend import choose

    env = {"MUJOCO_GL": "osmesa"}
    assert choose(env).describe() == "osmesa (MUJOCO_GL was set)" and env == {"MUJOCO_GL": "osmesa"}
    env = {"DISPLAY": ":0"}
    assert choose(env).backend == "" and env == {"DISPLAY": ":0"}  # with a display, mujoco's default stays
    env = {}
    assert choose(env).backend in ("egl", "osmesa") and env["MUJOCO_GL"] == choose(env).backend


def test_frame_plan_skips_steps_above_30_fps() -> None:
    assert frame_plan(0.008, None, 10.0, None, 1000) == (5, 25.0, 1000)  # hopper: 125 Hz -> every 5th step
    assert frame_plan(0.05, None, 10.0, None, 1000) == (1, 20.0, 200)
    assert frame_plan(0.05, None, 10.0, 50, 1000) == (1, 20.0, 50)
    assert frame_plan(0.02, 25, 2.0, None, 1000) == (2, 25.0, 100)
    with pytest.raises(ValueError):
        frame_plan(0.02, 0, 2.0, None, 10)


@pytest.mark.slow
def test_renders_in_a_child_when_mujoco_was_imported_without_egl(tmp_path: Path) -> None:
    """A process that imported mujoco with the default (windowed) backend gets a clear error in process,
    and its video through ``render_in_child``."""
    code = (
        "import os; os.environ.pop('MUJOCO_GL', None)\n"
        "import mujoco, sys, json\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from test_video import random_export\n"
        "from rewardgen.evaluate.video import render_rollout, _gl_backend, VideoError\n"
        "from rewardgen.procs.trusted import render_in_child\n"
        "from rewardgen.tasks.spec import get_task\n"
        "assert _gl_backend() not in ('egl', 'osmesa'), _gl_backend()\n"
        "t = get_task('inverted-pendulum-balance')\n"
        "try:\n"
        "    render_rollout(t, random_export(t.id), sys.argv[1], seed=0, max_steps=10)\n"
        "    raise SystemExit('rendered in process without a headless backend')\n"
        "except VideoError as exc:\n"
        "    assert 'MUJOCO_GL=egl' in str(exc), exc\n"
        "print(json.dumps(render_in_child(t, random_export(t.id), sys.argv[1], seed=0, max_steps=10,\n"
        "                                  width=64, height=48)))\n"
    )
    out = tmp_path / "child.mp4"
    proc = subprocess.run([sys.executable, "-c", code, str(out), str(Path(__file__).parent)], capture_output=True,
                          text=True, timeout=120, env=_headless_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file() and stream_info(out)["h264"]
    assert not list(tmp_path.glob(".policy.*"))


def test_bad_arguments_raise(tmp_path: Path) -> None:
    task = get_task("inverted-pendulum-balance")
    with pytest.raises(ValueError):
        render_rollout(task, random_export(task.id), tmp_path / "v.mp4", seed=0, max_steps=0)
    with pytest.raises(ValueError):  # a policy for another robot
        render_rollout(task, random_export("halfcheetah-run"), tmp_path / "v.mp4", seed=0, max_steps=5)
    assert not list(tmp_path.iterdir())
