"""What the sandbox costs: the same reward trained with and without every isolation layer, alternating."""

from __future__ import annotations

import json
import statistics
from typing import Any

from rewardgen.contract.job import WorkerJob
from rewardgen.procs import WorkerLimits, run_worker


def sandbox_overhead(task_id: str = "inverted-pendulum-balance", steps: int = 8192, repeats: int = 3,
                     source: str | None = None, trainer: str = "sb3", num_envs: int = 8) -> dict[str, Any]:
    """Train the same reward sandboxed and unsandboxed, alternating, ``repeats`` times each.

    Returns medians of env-steps/s measured by the trainer (training only) and by wall clock
    (including worker start-up), and their sandboxed/unsandboxed ratios.
    """
    from rewardgen.tasks.spec import get_task

    task = get_task(task_id)
    source = source or _OVERHEAD_REWARD
    job = WorkerJob(mode="train", task=task.to_dict(), source=source, steps=int(steps), seed=0, trainer=trainer,
                    num_envs=int(num_envs))
    limits = WorkerLimits(wall_seconds=600.0)
    runs: dict[str, list[tuple[float, float]]] = {"sandboxed": [], "unsandboxed": []}
    for _ in range(repeats):
        for label, flag in (("sandboxed", True), ("unsandboxed", False)):
            res = run_worker(job, limits, sandboxed=flag)
            if not res.ok or not res.result:
                raise RuntimeError(f"{label} training failed: {res.stage}: {res.error}")
            env_steps = float(res.result["env_steps"])
            runs[label].append((env_steps / float(res.result["seconds"]), env_steps / res.seconds))
    out: dict[str, Any] = {"task": task_id, "steps": steps, "repeats": repeats, "trainer": trainer,
                           "num_envs": num_envs}
    for label, values in runs.items():
        out[f"{label}_steps_per_s"] = statistics.median(v[0] for v in values)
        out[f"{label}_wall_steps_per_s"] = statistics.median(v[1] for v in values)
    out["ratio"] = out["sandboxed_steps_per_s"] / out["unsandboxed_steps_per_s"]
    out["wall_ratio"] = out["sandboxed_wall_steps_per_s"] / out["unsandboxed_wall_steps_per_s"]
    return out


_OVERHEAD_REWARD = '''
import math
import torch

def compute_reward(s):
    angle = s.qpos[:, 1]
    upright = torch.cos(angle)
    still = -0.01 * (s.qvel ** 2).sum(dim=-1)
    centred = -0.1 * s.qpos[:, 0].abs()
    total = upright + still + centred
    return total, {"upright": upright, "still": still, "centred": centred}
'''


def main() -> None:  # pragma: no cover - python -m rewardgen.bench.sandbox overhead
    import argparse

    p = argparse.ArgumentParser(prog="python -m rewardgen.bench.sandbox", allow_abbrev=False)
    p.add_argument("what", choices=["overhead"])
    p.add_argument("--task", default="inverted-pendulum-balance")
    p.add_argument("--steps", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--trainer", default="sb3")
    a = p.parse_args()
    print(json.dumps(sandbox_overhead(a.task, a.steps, a.repeats, trainer=a.trainer), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
