"""Trusted children: the evaluator and the video renderer, each in a confined process of its own.

They read files a worker produced (a policy), so they get limits of their own (address space, no
core dumps, death with the parent) and no secrets in their environment; they run trusted rewardgen
code only. ``run_trusted_evaluation`` and ``render_video`` (``render_in_child`` for a policy in memory)
are the calls; ``run_json_module`` is how each runs (forked from this command's zygote when there is one).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from rewardgen.contract.policy import PolicyExport, policy_job
from rewardgen.tasks.spec import Task


def run_trusted_evaluation(task: Task, policy: bytes | Path, episodes: int | None = None, seed: int = 10_000,
                           timeout: float = 600.0) -> dict[str, Any]:
    """Evaluate ``policy`` (its bytes, or a policy file) in a confined process of its own (the
    orchestrator's entry point). Raises RuntimeError on failure."""
    job = {"task": task.to_dict(), **policy_job(policy), "episodes": episodes, "seed": seed}
    return run_json_module("rewardgen.evaluate.evaluator", job, timeout, "trusted evaluation")


EVALUATOR_MEMORY_BYTES = 4 * 1024**3
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


def run_json_module(module: str, job: dict[str, Any], timeout: float, what: str,
                    env: dict[str, str] | None = None, memory_bytes: int = EVALUATOR_MEMORY_BYTES,
                    idle: bool = False, fresh: bool = False) -> dict[str, Any]:
    """Run ``module`` (trusted rewardgen code) with ``job`` on stdin; its last stdout line is the
    JSON answer. RuntimeError, naming ``what``, on a timeout or failure.

    It reads files a worker produced, so it gets limits of its own (address space ``memory_bytes``,
    no core dumps, dies with this process) and no secrets from the environment. It is forked from
    this command's zygote (``rewardgen.sandbox.zygote``: the imports already paid) when there is one,
    else started as a fresh ``python -m module``. ``idle``: at the lowest CPU priority
    (``SCHED_IDLE``, nice 19), for work nobody waits on (videos). ``fresh``: never forked from the
    zygote, whose mujoco has chosen its GL backend already (a window needs its own)."""
    import os
    import resource

    from rewardgen.resources import PACKAGE_PARENT

    pythonpath = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("OPENAI_") and not any(m in k.upper() for m in _SECRET_MARKERS)}
    full_env = dict(clean, PYTHONPATH=pythonpath, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(env or {}))
    rlimits = [(resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_AS, memory_bytes, memory_bytes)]
    data = json.dumps(job).encode()
    forked = None if fresh else _run_forked(module, data, full_env, rlimits, timeout, what, idle)
    if forked is not None:
        returncode, out, err = forked
    else:
        returncode, out, err = _run_fresh(module, data, full_env, rlimits, timeout, what, idle)
    lines = out.decode("utf-8", "replace").strip().splitlines()
    if returncode != 0 or not lines:
        err_lines = err.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"{what} failed: {(err_lines or ['no output'])[-1][:500]}")
    try:
        answer = json.loads(lines[-1])
    except ValueError:
        raise RuntimeError(f"{what} failed: its answer is not JSON") from None
    if not isinstance(answer, dict):
        raise RuntimeError(f"{what} failed: its answer is not a JSON object")
    return answer


_MAX_ANSWER_BYTES = 64 * 1024 * 1024


def _run_fresh(module: str, data: bytes, env: dict[str, str], rlimits: list, timeout: float, what: str,
               idle: bool) -> tuple[int, bytes, bytes]:
    import os
    import resource

    from rewardgen.sandbox.oslevel import set_parent_death_signal

    def limits() -> None:
        set_parent_death_signal()
        for res, soft, hard in rlimits:
            resource.setrlimit(res, (soft, hard))
        if idle:
            os.nice(19)

    try:
        proc = subprocess.run([sys.executable, "-m", module], input=data, capture_output=True, timeout=timeout,
                              env=env, preexec_fn=limits)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what} exceeded {timeout:.0f} s") from None
    return proc.returncode, proc.stdout, proc.stderr


def _run_forked(module: str, data: bytes, env: dict[str, str], rlimits: list, timeout: float, what: str,
                idle: bool) -> tuple[int, bytes, bytes] | None:
    """The same run forked from the zygote; None when there is no zygote (the caller starts a fresh
    process)."""
    import os
    import threading

    from rewardgen.sandbox import zygote

    z = zygote.shared()
    if z is None:
        return None
    pipes = [os.pipe() for _ in range(3)]  # stdin, stdout, stderr
    request = zygote.SpawnRequest(module=module, argv=[], env=env, cwd=os.getcwd(),
                                  fds={0: pipes[0][0], 1: pipes[1][1], 2: pipes[2][1]}, rlimits=rlimits,
                                  nice=19 if idle else 0, idle=idle,
                                  path=tuple(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p))
    try:
        child = z.spawn(request)
    except zygote.ZygoteUnavailable:
        for r, w in pipes:
            os.close(r)
            os.close(w)
        return None
    for fd in (pipes[0][0], pipes[1][1], pipes[2][1]):
        os.close(fd)
    chunks: dict[int, list[bytes]] = {1: [], 2: []}

    def drain(which: int) -> None:
        got = 0
        with os.fdopen(pipes[which][0], "rb") as stream:
            for chunk in iter(lambda: stream.read1(65536), b""):
                if got < _MAX_ANSWER_BYTES:
                    chunks[which].append(chunk)
                got += len(chunk)

    readers = [threading.Thread(target=drain, args=(k,), daemon=True) for k in (1, 2)]
    for t in readers:
        t.start()
    try:
        with os.fdopen(pipes[0][1], "wb") as stdin:
            stdin.write(data)
    except BrokenPipeError:
        pass
    try:
        returncode = child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(10)
        raise RuntimeError(f"{what} exceeded {timeout:.0f} s") from None
    for t in readers:
        t.join(timeout=5)
    return returncode, b"".join(chunks[1]), b"".join(chunks[2])


def headless_gl() -> str:
    """The headless backend a rendering child uses: this process's when it chose one (``osmesa`` where
    ``rewardgen.glbackend`` found only OSMesa), else ``egl``."""
    import os

    chosen = os.environ.get("MUJOCO_GL", "")
    return chosen if chosen in ("egl", "osmesa") else "egl"


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
        return run_json_module("rewardgen.evaluate.video", job, timeout, "rendering",
                               env={"MUJOCO_GL": headless_gl()}, idle=idle)
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
    return run_json_module("rewardgen.evaluate.window", job, timeout, "the viewer window",
                           env={"MUJOCO_GL": "glfw"}, fresh=True)
