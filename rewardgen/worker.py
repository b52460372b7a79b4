"""Worker process entry point: the only place candidate reward code ever runs.

Started by ``rewardgen.sandbox`` as ``python -m rewardgen.worker --result-fd N`` with a job on
stdin. It loads the reward, then either smoke-tests it (``check``) or trains with it (``train``),
and sends results as frames on fd N: progress, a result or an error, and the policy as bytes.
It never writes to the run store; the orchestrator does, from the data it receives.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

MAX_JOB_BYTES = 4 * 1024 * 1024


def _trim_traceback(exc: BaseException, filename: str) -> str:
    """The traceback frames from the candidate's file when there are any, else the whole one."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if f.filename == filename]
    lines = traceback.format_list(own) if own else traceback.format_list(frames[-3:])
    return "".join(lines) + "".join(traceback.format_exception_only(type(exc), exc))


def _run(job: dict, out) -> None:
    import numpy as np
    import torch

    from rewardgen.candidate import ContractError, load_reward
    from rewardgen.fitness import make_fitness
    from rewardgen.tasks import task_from_dict
    from rewardgen.trainers.base import BatchReward, TrainConfig, TrainingStats, get_trainer

    torch.set_num_threads(int(job.get("torch_threads", 1)))
    task = task_from_dict(job["task"], where="job")
    fitness = make_fitness(task.fitness, task.schema)
    filename = "reward.py"
    stage = "load"
    try:
        fn = load_reward(job["source"], filename)
        if job["mode"] == "check":
            stage = "runtime"
            from rewardgen.trainers.sb3 import RewardVecEnv

            steps = int(job.get("steps", 256))
            envs = int(job.get("num_envs", 4))
            stats = TrainingStats(steps)
            reward = BatchReward(fn, fitness, stats, envs, task.episode_length)
            venv = RewardVecEnv(task, reward, envs, int(job.get("seed", 0)))
            venv.reset()
            rng = np.random.default_rng(int(job.get("seed", 0)))
            for _ in range(max(1, steps // envs)):
                venv.step_async(rng.uniform(-1, 1, size=(envs, task.schema.nu)).astype(np.float32))
                venv.step_wait()
            out.json({"type": "result", "stats": stats.summary(), "env_steps": venv.total_steps})
            return
        stage = "runtime"
        config = TrainConfig(steps=int(job["steps"]), seed=int(job["seed"]), num_envs=int(job.get("num_envs", 8)),
                             device=job.get("device", "cpu"))
        stats = TrainingStats(config.steps)
        reward = BatchReward(fn, fitness, stats, config.num_envs, task.episode_length)
        trainer = get_trainer(job.get("trainer", "sb3"))
        last = [0.0]

        def progress(steps: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.5 or steps >= config.steps:
                last[0] = now
                out.json({"type": "progress", "steps": int(steps), "total": config.steps})

        result = trainer.train(task, reward, config, progress)
        out.json({"type": "result", "stats": result.stats, "env_steps": result.env_steps,
                  "seconds": result.seconds, "trainer": trainer.name, "extra": result.extra})
        out.bytes(result.policy.to_bytes())
    except ContractError as exc:
        out.json({"type": "error", "stage": "contract", "error": str(exc), "traceback": _trim_traceback(exc, filename)})
    except SyntaxError as exc:
        out.json({"type": "error", "stage": "load", "error": f"SyntaxError: {exc.msg} (line {exc.lineno})",
                  "traceback": "".join(traceback.format_exception_only(type(exc), exc))})
    except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded verdict
        out.json({"type": "error", "stage": stage, "error": f"{type(exc).__name__}: {exc}",
                  "traceback": _trim_traceback(exc, filename)})


def main() -> None:
    from rewardgen.ipc import FrameWriter

    parser = argparse.ArgumentParser(prog="rewardgen.worker")
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args()
    out = FrameWriter(args.result_fd)
    raw = sys.stdin.buffer.read(MAX_JOB_BYTES + 1)
    if len(raw) > MAX_JOB_BYTES:
        out.json({"type": "error", "stage": "job", "error": "job too large"})
        return
    _run(json.loads(raw), out)


if __name__ == "__main__":
    main()
