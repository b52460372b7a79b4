"""Trusted evaluation: run a trained policy and measure the task's fitness.

This runs in its own process (``python -m rewardgen.evaluate.evaluator``), started by the orchestrator, and
imports nothing that loads candidate code. Its inputs are the task spec and a policy file of plain
arrays (``rewardgen.contract.policy``); its output is one JSON object. Selection uses only its fitness.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rewardgen.tasks.fitness import make_fitness
from rewardgen.contract.policy import DeterministicPolicy, PolicyExport
from rewardgen.contract.state import StateBuffers, refresh_derived
from rewardgen.tasks.spec import Task, task_from_dict


def policy_steps(env, policy: DeterministicPolicy, buffers: StateBuffers,
                 obs: np.ndarray) -> Iterator[tuple[np.ndarray, float, bool, bool]]:
    """Run the deterministic policy from ``obs`` (just after ``env.reset``) until the episode ends.

    After each step, world 0 of ``buffers`` holds that step's State; yields
    ``(action, env reward, terminated, truncated)``. Evaluation and trajectory recording share it, so
    a recorded trajectory is exactly an evaluation episode."""
    model, length, done = env.unwrapped.model, 0, False
    while not done:
        action = policy(obs[None, :].astype(np.float32))[0]
        obs, r, terminated, truncated, _ = env.step(action)
        refresh_derived(model, env.unwrapped.data)
        length += 1
        buffers.fill(0, env.unwrapped.data, action, length)
        done = bool(terminated or truncated)
        yield action, float(r), bool(terminated), bool(truncated)


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


def evaluate_policy(task: Task, export: PolicyExport, episodes: int | None = None, seed: int = 10_000,
                    record: bool = False) -> dict[str, Any]:
    """Mean trusted fitness of the deterministic policy over ``episodes`` seeded episodes.

    ``record``: also keep every episode's trajectory (``rewardgen.evaluate.trajectory.record_trajectory``'s
    format) under the private key ``_recorded`` (episode index -> trajectory), so the best and the
    worst episode need not be replayed."""
    episodes = episodes or task.eval_episodes
    env = task.make_env()
    export.validate(obs_dim=env.observation_space.shape[0], act_dim=env.action_space.shape[0])
    policy = DeterministicPolicy(export)
    fitness = make_fitness(task.fitness, task.schema)
    body = None
    if record:
        from rewardgen.evaluate.trajectory import main_body, trajectory_from_episode

        body = task.schema.body_index(main_body(task))
    results, recorded = [], {}
    for ep in range(episodes):
        run = run_episode(task, env, policy, fitness, seed + ep, body)
        results.append({
            "fitness": fitness.episode_value(run["values"], task.episode_length),
            "length": run["length"],
            "terminated": run["terminated"],
            "env_return": run["env_return"],
            "com_displacement": [float(v) for v in run["end_com"] - run["start_com"]],
        })
        if record:
            recorded[ep] = trajectory_from_episode(task, fitness, run, seed + ep)
    env.close()
    values = np.asarray([r["fitness"] for r in results])
    mean = float(values.mean())
    out = {
        "fitness": mean,
        "fitness_std": float(values.std()),
        "success": bool(mean >= task.success_threshold),
        "success_threshold": task.success_threshold,
        "fitness_name": fitness.name,
        "fitness_doc": fitness.doc,
        "episodes": results,
    }
    if record:
        out["_recorded"] = recorded
    return out


def run_trusted_evaluation(task: Task, policy_path: Path, episodes: int | None = None, seed: int = 10_000,
                           timeout: float = 600.0) -> dict[str, Any]:
    """Evaluate in a fresh process (the orchestrator's entry point). Raises RuntimeError on failure."""
    job = {"task": task.to_dict(), "policy_path": str(policy_path), "episodes": episodes, "seed": seed}
    return run_json_module("rewardgen.evaluate.evaluator", job, timeout, "trusted evaluation")


EVALUATOR_MEMORY_BYTES = 4 * 1024**3
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


def run_json_module(module: str, job: dict[str, Any], timeout: float, what: str,
                    env: dict[str, str] | None = None, memory_bytes: int = EVALUATOR_MEMORY_BYTES,
                    idle: bool = False) -> dict[str, Any]:
    """Run ``module`` (trusted rewardgen code) with ``job`` on stdin; its last stdout line is the
    JSON answer. RuntimeError, naming ``what``, on a timeout or failure.

    It reads files a worker produced, so it gets limits of its own (address space ``memory_bytes``,
    no core dumps, dies with this process) and no secrets from the environment. It is forked from
    this command's zygote (``rewardgen.sandbox.zygote``: the imports already paid) when there is one,
    else started as a fresh ``python -m module``. ``idle``: at the lowest CPU priority
    (``SCHED_IDLE``, nice 19), for work nobody waits on (videos)."""
    import os
    import resource

    from rewardgen.sandbox import PACKAGE_PARENT

    pythonpath = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("OPENAI_") and not any(m in k.upper() for m in _SECRET_MARKERS)}
    full_env = dict(clean, PYTHONPATH=pythonpath, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(env or {}))
    rlimits = [(resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_AS, memory_bytes, memory_bytes)]
    data = json.dumps(job).encode()
    forked = _run_forked(module, data, full_env, rlimits, timeout, what, idle)
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

    from rewardgen.sandbox.process import set_parent_death_signal

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


def main() -> None:
    import torch

    torch.set_num_threads(1)
    job = json.loads(sys.stdin.buffer.read())
    task = task_from_dict(job["task"], where="evaluation job")
    export = PolicyExport.from_bytes(Path(job["policy_path"]).read_bytes())
    seed = int(job.get("seed", 10_000))
    trajectories = bool(job.get("trajectories", True))
    result = evaluate_policy(task, export, job.get("episodes"), seed, record=trajectories)
    recorded = result.pop("_recorded", None)
    if trajectories:
        from rewardgen.evaluate.trajectory import best_and_worst

        result["trajectories"] = best_and_worst(task, export, result, seed, recorded=recorded)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
