"""Trusted children: the evaluator, the video renderer and the viewer window, each in a confined process.

They read what a worker produced (a policy), so they get limits of their own (``trusted_confinement``:
address space, no core dumps, death with the parent, the one environment policy, so no secret) and
run trusted rewardgen code only. ``run_trusted_evaluation`` and ``render_video`` (``render_in_child``
for a policy in memory) are the calls; ``run_trusted_child`` is how each runs (``launch``: forked
from this command's zygote when there is one; frames both ways).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from rewardgen.contract.policy import PolicyExport, policy_job
from rewardgen.procs.confine import Confinement, headless_gl
from rewardgen.procs.frames import CHILD_FRAMES, Answer, FrameError, FrameWriter, Job, SchemaError, parse_frame, read_frames
from rewardgen.procs.launch import launch
from rewardgen.tasks.spec import Task


def run_trusted_evaluation(task: Task, policy: bytes | Path, episodes: int | None = None, seed: int = 10_000,
                           timeout: float = 600.0, cpu_time: bool = False) -> dict[str, Any]:
    """Evaluate ``policy`` (its bytes, or a policy file) in a confined process of its own (the
    orchestrator's entry point); ``cpu_time``: the answer says the CPU seconds the evaluation used
    (``cpu_seconds``). Raises RuntimeError on failure."""
    job = {"task": task.to_dict(), **policy_job(policy), "episodes": episodes, "seed": seed, "cpu_time": cpu_time}
    return run_trusted_child("rewardgen.evaluate.evaluator", job, timeout, "trusted evaluation")


EVALUATOR_MEMORY_BYTES = 4 * 1024**3
_MAX_ANSWER_BYTES = 64 * 1024 * 1024


def trusted_confinement(memory_bytes: int = EVALUATOR_MEMORY_BYTES, idle: bool = False, display: bool = False,
                        env: tuple[tuple[str, str], ...] = ()) -> Confinement:
    """What holds a trusted child: an address-space limit, no core dumps, death with this process, the
    one environment policy (no secret); ``idle``: the lowest CPU priority (nice 19, ``SCHED_IDLE``),
    for work nobody waits on (videos); ``display``: it opens a window."""
    return Confinement(memory_bytes=memory_bytes, nice=19 if idle else 0, idle=idle, display=display, env=env)


def run_trusted_child(module: str, job: dict[str, Any], timeout: float, what: str,
                      confinement: Confinement | None = None, fresh: bool = False) -> dict[str, Any]:
    """``module.answer(job)`` (trusted rewardgen code) in a confined child of its own
    (``rewardgen.procs.child``): the job goes as a ``Job`` frame, the answer comes back as an
    ``Answer`` frame. RuntimeError, naming ``what``, on a timeout or failure.

    It reads what a worker produced (a policy), so it is held by ``confinement`` (default
    ``trusted_confinement()``), forked from this command's zygote when there is one (else a fresh
    process); ``fresh``: never forked from the zygote, whose mujoco has chosen its GL backend already
    (a window needs its own). Its working directory is this process's (paths in the job may be
    relative to it)."""
    confinement = confinement or trusted_confinement()
    with tempfile.TemporaryDirectory(prefix="rewardgen-trusted-") as home:
        child = launch("rewardgen.procs.child", confinement, home=home, cwd=os.getcwd(), argv=("--module", module),
                       fresh=fresh, output_bytes=64 * 1024, what=what)
        answers: list[Answer] = []
        problem: list[str] = []

        def read() -> None:
            with os.fdopen(child.results, "rb", closefd=False) as stream:
                try:
                    for kind, value in read_frames(stream, _MAX_ANSWER_BYTES):
                        frame = parse_frame(value, CHILD_FRAMES) if kind == "json" else None
                        if not isinstance(frame, Answer) or answers:
                            raise FrameError("more than one answer, or bytes")
                        answers.append(frame)
                except (FrameError, SchemaError) as exc:
                    problem.append(str(exc))
                    child.kill_group()

        reader = threading.Thread(target=read, daemon=True, name="rewardgen-trusted-answer")
        reader.start()
        try:
            FrameWriter(child.stdin.fileno()).send(Job(job))
        except OSError:
            pass
        finally:
            try:
                child.stdin.close()
            except OSError:
                pass
        try:
            returncode = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill_group()
            raise RuntimeError(f"{what} exceeded {timeout:.0f} s") from None
        finally:
            child.kill_group()  # whatever it started goes with it
            reader.join(timeout=5)
            child.finish()
    if problem:
        raise RuntimeError(f"{what} failed: its answer is malformed ({problem[0][:200]})")
    if returncode != 0 or not answers:
        raise RuntimeError(f"{what} failed: {child.log.last_line()[:500]}")
    return answers[0].value


def render_video(task: Task, policy: bytes | Path, path: Path, seed: int, max_steps: int | None = None,
                 width: int = 480, height: int = 360, fps: float | None = None, max_seconds: float = 10.0,
                 timeout: float = 300.0, idle: bool = False) -> dict[str, Any]:
    """``rewardgen.evaluate.video.render_rollout`` of ``policy`` (its bytes, or a policy file) to the mp4
    at ``path`` (not a run's file: evolve renders into scratch and stores the result), in a confined
    child with a headless ``MUJOCO_GL`` (``headless_gl``); ``idle``: at the lowest CPU priority, for
    videos nobody waits on.

    :raises VideoError: rendering or encoding failed (no file is left at ``path``)."""
    from rewardgen.evaluate.video import VideoError

    job = {"task": task.to_dict(), **policy_job(policy), "path": str(path), "seed": seed,
           "max_steps": max_steps, "width": width, "height": height, "fps": fps, "max_seconds": max_seconds}
    try:
        return run_trusted_child("rewardgen.evaluate.video", job, timeout, "rendering",
                                 trusted_confinement(idle=idle, env=(("MUJOCO_GL", headless_gl()),)))
    except RuntimeError as exc:
        raise VideoError(str(exc)) from None


def render_in_child(task: Task, export: PolicyExport, path: Path, seed: int, max_steps: int | None = None,
                    width: int = 480, height: int = 360, fps: float | None = None, max_seconds: float = 10.0,
                    timeout: float = 300.0, idle: bool = False) -> dict[str, Any]:
    """``render_video`` of a policy held in memory (for a process whose mujoco chose a windowed backend).

    :raises VideoError: rendering or encoding failed (no file is left at ``path``)."""
    return render_video(task, export.to_bytes(), Path(path), seed, max_steps, width, height, fps, max_seconds,
                        timeout, idle)


def show_in_window(task: Task, export: PolicyExport, seed: int, max_seconds: float = 10.0,
                   timeout: float = 3600.0) -> dict[str, Any]:
    """``rewardgen.evaluate.window.watch_rollout`` in a confined fresh child with ``MUJOCO_GL=glfw``
    (the policy goes to it as bytes in its job). RuntimeError when no window could be opened."""
    job = {"task": task.to_dict(), **policy_job(export.to_bytes()), "seed": seed, "max_seconds": max_seconds}
    return run_trusted_child("rewardgen.evaluate.window", job, timeout, "the viewer window",
                             trusted_confinement(display=True, env=(("MUJOCO_GL", "glfw"),)), fresh=True)
