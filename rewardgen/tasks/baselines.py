"""The sparse success reward: the baseline of tasks without an env reward, and of ``final``'s table.

It pays 1 per step when the trusted fitness's per-step measure is at or above its success pace,
written as reward code over the contract (from ``Fitness.expr``), so it runs in the sandbox like any
candidate.
"""

from __future__ import annotations

from typing import Any

from rewardgen.tasks.fitness import make_fitness


def sparse_reward_source(task: Any) -> str:
    """Reward source (in the reward contract) paying 1 on every step where the success indicator holds.

    The indicator is the task's fitness measured at that step compared with
    ``Fitness.step_threshold(task.success_threshold, task.episode_length)``: e.g. the body moves at
    least as fast as the success speed (``forward_velocity``), is turning at the pace that completes
    the required turns by the episode's end (``rotation``, ``circle_laps``), is at least the success
    height above rest (``jump_height``), or is within the success distance of the goal
    (``negative_distance``). It is the "sparse" baseline of tasks with ``baseline: sparse``: what a
    person gets by writing the success test down as a reward.
    """
    fitness = make_fitness(task.fitness, task.schema)
    threshold = fitness.step_threshold(task.success_threshold, task.episode_length)
    return "\n".join([
        f'"""Sparse success reward for {task.id} (rewardgen baseline).',
        "",
        f"Pays 1 on steps where the trusted fitness's per-step measure ({fitness.name}: {fitness.doc})",
        f"is at least {threshold:.6g}, the per-step pace of the success threshold {task.success_threshold:g}.",
        '"""',
        "import math",
        "",
        "import torch",
        "",
        "",
        "def compute_reward(s):",
        f"    measure = {fitness.expr}",
        f"    success = (measure >= {threshold!r}).float()",
        '    return success, {"success": success}',
        "",
    ])
