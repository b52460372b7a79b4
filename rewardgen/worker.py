"""Worker process entry point: the only place candidate reward code ever runs.

Started by ``rewardgen.sandbox`` as ``python -m rewardgen.worker --result-fd N`` with a job on
stdin. It loads the reward, then either smoke-tests it (``check``) or trains with it (``train``),
and sends results as frames on fd N: progress, a result or an error, and the policy as bytes.
It never writes to the run store; the orchestrator does, from the data it receives.

Hardening (``_harden``): every trusted import happens first (torch, mujoco, gymnasium, the
trainer); then the static validator runs again, the seccomp filter and the audit hook are armed
(``rewardgen.guard``), an ``isolation`` frame reports which layers are active, and only then is
the candidate executed, with restricted builtins. Job keys ``sandbox``/``validate``/``seccomp``/
``audit`` (default true) switch layers off for overhead measurements and tests of single layers.

Train jobs may carry ``resume`` (base64 of a trainer's resume state from an earlier slice, see
``rewardgen.trainers.base.pack_resume_state``): training continues from it. The trainer's new
resume state comes back as a ``{"type": "resume_state"}`` header frame followed by a bytes frame,
sent before the result (so a reader that does not know the header still takes the last bytes frame,
the policy, as the payload). ``env_reward: true`` trains on the env's own reward (the "human"
baseline); no candidate source is needed then and none is loaded.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import time
import traceback
from dataclasses import replace

MAX_JOB_BYTES = 64 * 1024 * 1024  # room for a base64 resume state


def _trim_traceback(exc: BaseException, filename: str) -> str:
    """The traceback frames from the candidate's file when there are any, else the whole one."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if f.filename == filename]
    lines = traceback.format_list(own) if own else traceback.format_list(frames[-3:])
    return "".join(lines) + "".join(traceback.format_exception_only(type(exc), exc))


def _harden(job: dict, out, filename: str):
    """Validate, arm seccomp and the audit hook, load the reward; returns the guarded reward.

    Called after every trusted import. Sends an ``isolation`` frame (which layers are active)
    before any candidate code runs, so the report cannot come from the candidate.
    """
    import torch

    from rewardgen.guard import Guard, install_seccomp, load_candidate
    from rewardgen.validate import ensure_valid

    layers: list[str] = []
    warnings: list[str] = []
    if job.get("validate", True):
        ensure_valid(job["source"], filename)  # defence in depth: the orchestrator checked already
        layers.append("static-validation")
    else:
        warnings.append("static validation skipped by the job (tests only)")
    device = str(job.get("device", "cpu"))
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.zeros(1, device=device)  # open the driver's device files before the filter forbids it
        if job.get("gpu_memory_fraction"):  # candidates sharing one GPU: each gets its slice of memory
            torch.cuda.set_per_process_memory_fraction(float(job["gpu_memory_fraction"]), torch.device(device))
    if job.get("seccomp", True):
        why = install_seccomp(allow_rdwr=device.startswith("cuda"))
        if why is None:
            layers.append("seccomp")
        else:
            warnings.append(f"seccomp filter not active: {why}")
    else:
        warnings.append("seccomp disabled by the job (tests only)")
    guard = None
    if job.get("audit", True):
        guard = Guard()
        guard.install()
        layers.append("audit-hook")
    else:
        warnings.append("audit hook disabled by the job (tests only)")
    layers.append("restricted-builtins")
    out.json({"type": "isolation", "layers": layers, "warnings": warnings})
    return load_candidate(job["source"], guard, filename)


def _warm_up(job: dict) -> None:
    """Trusted work that would be refused once the guards are armed (same in both modes, for fair timing)."""
    import tempfile

    tempfile.gettempdir()  # probes by writing a file; cache the answer (the scratch dir) while allowed
    if job.get("mode") == "train":
        try:  # torch.optim imports it lazily on first use; load it while imports are unrestricted
            import torch._dynamo  # noqa: F401
        except Exception:  # noqa: BLE001
            pass
        if job.get("sim", "cpu") == "warp":  # Warp loads native code and its kernel cache: before the guards
            from rewardgen.tasks import task_from_dict
            from rewardgen.warpsim import prewarm

            prewarm(task_from_dict(job["task"], where="job"), job.get("device") or "cuda")


def _run(job: dict, out) -> None:
    import numpy as np
    import torch

    import rewardgen.guard  # noqa: F401 - with candidate and validate: loaded before the guards arm
    import rewardgen.validate  # noqa: F401 - (report_failure uses them after)
    from rewardgen.candidate import load_reward
    from rewardgen.fitness import make_fitness
    from rewardgen.tasks import task_from_dict
    from rewardgen.trainers.base import BatchReward, TrainConfig, TrainingStats
    from rewardgen.trainers.sb3 import RewardVecEnv

    torch.set_num_threads(int(job.get("torch_threads", 1)))
    task = task_from_dict(job["task"], where="job")
    fitness = make_fitness(task.fitness, task.schema)
    env_reward = bool(job.get("env_reward", False)) and job["mode"] == "train"
    resume = None
    if job["mode"] == "train" and job.get("resume") is not None:
        try:
            resume = base64.b64decode(job["resume"], validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            out.json({"type": "error", "stage": "job", "error": f"job key 'resume' is not base64: {exc}"})
            return
    trainer = _make_trainer(job.get("trainer", "sb3"), env_reward, job, task.ppo) if job["mode"] == "train" else None
    if resume is not None and not getattr(trainer, "supports_resume", False):
        out.json({"type": "error", "stage": "job", "error": f"trainer {trainer.name!r} cannot resume from a state"})
        return
    _warm_up(job)
    filename = "reward.py"
    stage = "load"
    try:
        if env_reward:  # the env's own reward: trusted code only, no candidate to load or guard against
            from rewardgen.trainers.sb3 import EnvRewardFn

            out.json({"type": "isolation", "layers": [], "warnings": ["env reward: no candidate code was run"]})
            fn = EnvRewardFn()
        elif job.get("sandbox", True):
            fn = _harden(job, out, filename)
        else:
            fn = load_reward(job["source"], filename)
        if job["mode"] == "check":
            stage = "runtime"
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
            if hasattr(fn, "verify"):
                fn.verify()
            out.json({"type": "result", "stats": reward.summary(), "env_steps": venv.total_steps})
            return
        stage = "runtime"
        config = TrainConfig(steps=int(job["steps"]), seed=int(job["seed"]), num_envs=int(job.get("num_envs", 8)),
                             device=job.get("device", "cpu"), resume=resume)
        stats = TrainingStats(config.steps)
        reward = BatchReward(fn, fitness, stats, config.num_envs, task.episode_length)
        if env_reward and trainer.name != "sb3":
            reward = None  # trainers other than SB3 read the env reward themselves (PPOTrainer(env_reward=True))
        last = [0.0]

        def progress(steps: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.5 or steps >= config.steps:
                last[0] = now
                out.json({"type": "progress", "steps": int(steps), "total": config.steps})

        result = trainer.train(task, reward, config, progress)
        if hasattr(fn, "verify"):
            fn.verify()
        extra = dict(result.extra)
        state = extra.pop("resume_state", None)
        if isinstance(state, (bytes, bytearray)):  # before the result, see the module docstring
            out.json({"type": "resume_state", "env_steps": int(result.env_steps), "bytes": len(state)})
            out.bytes(bytes(state))
        checkpoints = extra.pop("checkpoints", None) or []
        for step, export in checkpoints:  # intermediate policies: a header frame, then the bytes
            out.json({"type": "checkpoint", "step": int(step)})
            out.bytes(export.to_bytes())
        if checkpoints:
            extra["checkpoint_steps"] = [int(step) for step, _ in checkpoints]
        out.json({"type": "result", "stats": result.stats, "env_steps": result.env_steps,
                  "seconds": result.seconds, "trainer": trainer.name,
                  "extra": json.loads(json.dumps(extra, default=lambda o: repr(o)[:200]))})
        out.bytes(result.policy.to_bytes())
    except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded verdict
        report_failure(out, exc, stage, filename)


def report_failure(out, exc: BaseException, stage: str, filename: str) -> None:
    """Send the verdict for an exception raised while loading or running the candidate."""
    from rewardgen.candidate import ContractError
    from rewardgen.guard import RefusedImport, SandboxViolation
    from rewardgen.validate import ValidationError

    if isinstance(exc, ValidationError):
        out.json({"type": "error", "stage": "static", "error": str(exc),
                  "traceback": "\n".join(str(i) for i in exc.issues)})
    elif isinstance(exc, (SandboxViolation, RefusedImport)):
        out.json({"type": "error", "stage": "sandbox", "error": str(exc), "traceback": _trim_traceback(exc, filename)})
    elif isinstance(exc, ContractError):
        out.json({"type": "error", "stage": "contract", "error": str(exc), "traceback": _trim_traceback(exc, filename)})
    elif isinstance(exc, SyntaxError):
        out.json({"type": "error", "stage": "load", "error": f"SyntaxError: {exc.msg} (line {exc.lineno})",
                  "traceback": "".join(traceback.format_exception_only(type(exc), exc))})
    elif (cause := _violation_cause(exc)) is not None:
        out.json({"type": "error", "stage": "sandbox", "error": cause, "traceback": _trim_traceback(exc, filename)})
    else:
        error = f"{type(exc).__name__}: {exc}"
        line = _candidate_line(exc, filename)
        if line and f"line {line}" not in error:
            error = f"{error} ({filename} line {line})"
        out.json({"type": "error", "stage": stage, "error": error, "traceback": _trim_traceback(exc, filename)})


def _make_trainer(name: str, env_reward: bool, job: dict | None = None, task_ppo: dict | None = None):
    """The job's trainer; for PPO, the task's own settings (``Task.ppo``) over the defaults, and the
    job's ``num_envs``, ``sim`` and ``cpu_threads`` over those."""
    from rewardgen.trainers.base import get_trainer

    job = job or {}
    if name == "ppo":
        from rewardgen.trainers.ppo import PPOHyperparams, PPOTrainer

        hp = PPOHyperparams(**(task_ppo or {}))
        if job.get("num_envs"):
            hp = replace(hp, num_envs=int(job["num_envs"]))
        if job.get("sim", "cpu") != "cpu":
            hp = replace(hp, sim=str(job["sim"]), sim_device=job.get("device"))
        if job.get("cpu_threads"):  # this job's share of the machine's cores (Executor.cpu_threads)
            threads = max(1, int(job["cpu_threads"]))
            hp = replace(hp, sim_threads=threads, use_helper_thread=threads >= 2)
        return PPOTrainer(hp, env_reward=env_reward)
    if not env_reward:
        return get_trainer(name)
    if name == "sb3":
        from rewardgen.trainers.sb3 import SB3Trainer

        return SB3Trainer(env_reward=True)
    return get_trainer(name)  # raises for unknown names


def _violation_cause(exc: BaseException) -> str | None:
    """A sandbox refusal wrapped in another exception (raise X from violation, or during handling)."""
    from rewardgen.guard import RefusedImport, SandboxViolation

    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (SandboxViolation, RefusedImport)):
            return str(cur)
        cur = cur.__cause__ or cur.__context__
    return None


def _candidate_line(exc: BaseException, filename: str) -> int | None:
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return lines[-1] if lines else None


def serve(run, prog: str) -> None:
    """A worker's entry point: read the job from stdin (bounded), answer with frames on --result-fd."""
    from rewardgen.ipc import FrameWriter

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args()
    out = FrameWriter(args.result_fd)
    os.set_inheritable(args.result_fd, False)
    raw = sys.stdin.buffer.read(MAX_JOB_BYTES + 1)
    if len(raw) > MAX_JOB_BYTES:
        out.json({"type": "error", "stage": "job", "error": "job too large"})
        return
    run(json.loads(raw), out)


def main() -> None:
    serve(_run, "rewardgen.worker")


if __name__ == "__main__":
    main()
