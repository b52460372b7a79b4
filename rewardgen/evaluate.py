"""Trusted evaluation: run a trained policy and measure the task's fitness.

This runs in its own process (``python -m rewardgen.evaluate``), started by the orchestrator, and
imports nothing that loads candidate code. Its inputs are the task spec and a policy file of plain
arrays (``rewardgen.policy``); its output is one JSON object. Selection uses only its fitness.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rewardgen.fitness import make_fitness
from rewardgen.policy import DeterministicPolicy, PolicyExport
from rewardgen.state import StateBuffers, refresh_derived
from rewardgen.tasks import Task, task_from_dict


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


def evaluate_policy(task: Task, export: PolicyExport, episodes: int | None = None, seed: int = 10_000) -> dict[str, Any]:
    """Mean trusted fitness of the deterministic policy over ``episodes`` seeded episodes."""
    episodes = episodes or task.eval_episodes
    env = task.make_env()
    export.validate(obs_dim=env.observation_space.shape[0], act_dim=env.action_space.shape[0])
    policy = DeterministicPolicy(export)
    fitness = make_fitness(task.fitness, task.schema)
    buffers = StateBuffers(task.schema, env.unwrapped.model, 1)
    results = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        values: list[float] = []
        env_return, length, terminated = 0.0, 0, False
        start_com = env.unwrapped.data.subtree_com[task.schema.robot_root].copy()
        for _, r, terminated, _ in policy_steps(env, policy, buffers, obs):
            length += 1
            values.append(float(fitness.per_step(buffers.to_state())[0]))
            env_return += r
        end_com = env.unwrapped.data.subtree_com[task.schema.robot_root]
        results.append({
            "fitness": fitness.episode_value(values, task.episode_length),
            "length": length,
            "terminated": bool(terminated),
            "env_return": env_return,
            "com_displacement": [float(v) for v in end_com - start_com],
        })
    env.close()
    values = np.asarray([r["fitness"] for r in results])
    mean = float(values.mean())
    return {
        "fitness": mean,
        "fitness_std": float(values.std()),
        "success": bool(mean >= task.success_threshold),
        "success_threshold": task.success_threshold,
        "fitness_name": fitness.name,
        "fitness_doc": fitness.doc,
        "episodes": results,
    }


def run_trusted_evaluation(task: Task, policy_path: Path, episodes: int | None = None, seed: int = 10_000,
                           timeout: float = 600.0) -> dict[str, Any]:
    """Evaluate in a fresh process (the orchestrator's entry point). Raises RuntimeError on failure."""
    job = {"task": task.to_dict(), "policy_path": str(policy_path), "episodes": episodes, "seed": seed}
    return run_json_module("rewardgen.evaluate", job, timeout, "trusted evaluation")


EVALUATOR_MEMORY_BYTES = 4 * 1024**3
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


def run_json_module(module: str, job: dict[str, Any], timeout: float, what: str,
                    env: dict[str, str] | None = None, memory_bytes: int = EVALUATOR_MEMORY_BYTES) -> dict[str, Any]:
    """Run ``python -m module`` (trusted rewardgen code) with ``job`` on stdin; its last stdout line
    is the JSON answer. RuntimeError, naming ``what``, on a timeout or failure.

    It reads files a worker produced, so it gets limits of its own (address space ``memory_bytes``,
    no core dumps, dies with this process) and no secrets from the environment."""
    import os
    import resource

    from rewardgen.sandbox import PACKAGE_PARENT
    from rewardgen.sandbox.process import set_parent_death_signal

    def limits() -> None:
        set_parent_death_signal()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    pythonpath = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("OPENAI_") and not any(m in k.upper() for m in _SECRET_MARKERS)}
    full_env = dict(clean, PYTHONPATH=pythonpath, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(env or {}))
    try:
        proc = subprocess.run([sys.executable, "-m", module], input=json.dumps(job).encode(),
                              capture_output=True, timeout=timeout, env=full_env, preexec_fn=limits)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what} exceeded {timeout:.0f} s") from None
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"{what} failed: {(err or ['no output'])[-1][:500]}")
    try:
        answer = json.loads(lines[-1])
    except ValueError:
        raise RuntimeError(f"{what} failed: its answer is not JSON") from None
    if not isinstance(answer, dict):
        raise RuntimeError(f"{what} failed: its answer is not a JSON object")
    return answer


def main() -> None:
    import torch

    torch.set_num_threads(1)
    job = json.loads(sys.stdin.buffer.read())
    task = task_from_dict(job["task"], where="evaluation job")
    export = PolicyExport.from_bytes(Path(job["policy_path"]).read_bytes())
    seed = int(job.get("seed", 10_000))
    result = evaluate_policy(task, export, job.get("episodes"), seed)
    if job.get("trajectories", True):
        from rewardgen.trajectory import best_and_worst

        result["trajectories"] = best_and_worst(task, export, result, seed)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
