"""Trusted evaluation: run a trained policy and measure the task's fitness.

This runs in a confined process of its own (``answer``, run by ``rewardgen.procs.child``), started by
the orchestrator through ``rewardgen.procs.trusted.run_trusted_evaluation``, and imports nothing that
loads candidate code (``tests/test_architecture.py`` holds ``rewardgen.evaluate`` to that). Its
inputs are the task spec and a policy file of plain arrays (``rewardgen.contract.policy``); its
output is one JSON object. Selection uses only its fitness.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rewardgen.contract.policy import DeterministicPolicy, PolicyExport, policy_from_job
from rewardgen.evaluate.trajectory import best_and_worst, main_body, trajectory_from_episode
from rewardgen.sim.episode import run_episode
from rewardgen.tasks.fitness import make_fitness
from rewardgen.tasks.spec import Task, space_dims, task_from_dict


def evaluate_policy(task: Task, export: PolicyExport, episodes: int | None = None, seed: int = 10_000,
                    record: bool = False) -> dict[str, Any]:
    """Mean trusted fitness of the deterministic policy over ``episodes`` seeded episodes.

    ``record``: also keep every episode's trajectory (``rewardgen.evaluate.trajectory.record_trajectory``'s
    format) under the private key ``_recorded`` (episode index -> trajectory), so the best and the
    worst episode need not be replayed."""
    episodes = episodes or task.eval_episodes
    env = task.make_env()
    export.validate(*space_dims(env))
    policy = DeterministicPolicy(export)
    fitness = make_fitness(task.fitness, task.schema)
    body = None
    if record:
        body = task.schema.body_index(main_body(task))
    results, recorded = [], {}
    for ep in range(episodes):
        run = run_episode(task, env, policy, fitness, seed + ep, body)
        results.append({
            "fitness": fitness.episode_value(run["values"], task.episode_length),
            "length": run["length"],
            "terminated": run["terminated"],
            "ended_by": [e["text"] for e in run.get("ended_by") or []],
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


def answer(job: dict[str, Any]) -> dict[str, Any]:
    """The evaluation ``job`` asks for (task, policy, episodes, seed): fitness and trajectories; with
    ``cpu_time``, the CPU seconds this process used (``cpu_seconds``: the time forecast's calibration)."""
    import time

    import torch

    torch.set_num_threads(1)
    task = task_from_dict(job["task"], where="evaluation job")
    export = policy_from_job(job)
    seed = int(job.get("seed", 10_000))
    trajectories = bool(job.get("trajectories", True))
    result = evaluate_policy(task, export, job.get("episodes"), seed, record=trajectories)
    recorded = result.pop("_recorded", None)
    if trajectories:
        result["trajectories"] = best_and_worst(task, export, result, seed, recorded=recorded)
    if job.get("cpu_time"):
        result["cpu_seconds"] = time.process_time()
    return result
