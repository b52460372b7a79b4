"""The training worker: trusted code that trains a policy on a candidate's reward without running it.

Started by ``rewardgen.procs.run_worker`` (``python -m rewardgen.trainers.worker --result-fd N``, or
forked from the zygote) with its job as a ``Job`` frame on stdin. It holds the simulator, the
trainer, the policy and the result pipe; the candidate's code runs only in its jail
(``rewardgen.sandbox.jail``), a forked, locked child that sees State batches in shared memory and
answers ``total`` and the components, validated here. The worker
either smoke-tests the reward (``check``: random actions through the real State path) or trains
with it (``train``), and sends frames (``rewardgen.procs.frames``) on fd N: ``Isolation`` (the jail's
layers, observed from outside, before any candidate code runs), ``Progress``, a ``TrainResult`` or
an ``Error``, the trainer's resume state and the policy as bytes, and a ``JailReport`` once the jail
closed. It never writes to the run store; the orchestrator does, from the frames it receives and
checks.

A train job may carry ``check`` (``{"steps", "seed", "num_envs", "seconds"}``): the candidate's
smoke check (what mode ``check`` does) runs first on the same jail, a ``Check`` frame says it
passed, then training starts; an error before that frame is the check's verdict. The orchestrator
kills the worker when no check frame came within ``seconds`` (``run_worker``).

Job keys ``sandbox``/``validate``/``seccomp``/``audit``/``namespaces`` (default true) switch layers
off, for overhead measurements and the tests that prove each layer on its own.

Train jobs may carry ``resume`` (base64 of a trainer's resume state from an earlier slice, see
``rewardgen.trainers.base.pack_resume_state``): training continues from it. The trainer's new
resume state comes back as a ``ResumeHeader`` frame followed by a bytes frame,
sent before the result; the policy is the last bytes frame. ``env_reward: true`` trains on the
env's own reward (the "human" baseline); no candidate source is needed then and no jail is made.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from rewardgen.contract.job import JobError, SmokeCheck, WorkerJob
from rewardgen.procs.frames import (
    Check,
    Error,
    FrameError,
    FrameWriter,
    Isolation,
    JailReport,
    Progress,
    ResumeHeader,
    SchemaError,
    TrainResult,
    read_job,
)
from rewardgen.sandbox.confined import ConfinedReward
from rewardgen.sandbox.guard import CANDIDATE_FILENAME
from rewardgen.trainers import get_trainer

MAX_JOB_BYTES = 64 * 1024 * 1024  # room for a base64 resume state


def open_jail(job: WorkerJob, out: FrameWriter, schema: Any, capacity: int) -> ConfinedReward:
    """Validate the candidate (trusted side), start its jail and report the jail's isolation layers
    (as the trusted side observed them) before any candidate code runs; returns the jail, which
    is called like the reward. Raises ``ValidationError`` or ``JailError`` for a failing candidate."""
    from rewardgen.sandbox.jail import Jail, JailOptions
    from rewardgen.sandbox.validate import ensure_valid

    layers: list[str] = []
    warnings: list[str] = []
    if job.source is None:
        raise JobError("the job has no candidate source")
    if job.validate:
        ensure_valid(job.source, CANDIDATE_FILENAME)  # defence in depth: the orchestrator checked already
        layers.append("static-validation")
    else:
        warnings.append("static validation skipped by the job (tests only)")
    options = JailOptions(audit=job.audit, seccomp=job.seccomp, namespaces=job.namespaces,
                          memory_bytes=job.jail_memory_bytes or None)
    jail = Jail(job.source, schema, capacity, options, CANDIDATE_FILENAME)
    out.send(Isolation(layers + jail.layers, warnings + jail.warnings))
    if jail.load_error is not None:
        jail.close()
        out.send(jail_report(jail))
        raise jail.load_error
    return jail


def _warm_up(job: WorkerJob) -> None:
    """Trusted work done once before training (same with and without the sandbox, for fair timing):
    lazy imports, the GPU's memory share, Warp's kernels. After the jail is forked, so the jail never
    inherits a device context."""
    if job.mode == "train":
        try:  # torch.optim imports it lazily on first use
            import torch._dynamo
        except Exception:
            pass
        device = job.device
        if device.startswith("cuda") and job.gpu_memory_fraction:
            import torch  # candidates sharing one GPU: each worker gets its slice of the device's memory

            torch.cuda.set_per_process_memory_fraction(float(job.gpu_memory_fraction), torch.device(device))
        if job.sim == "warp":  # Warp loads native code and its kernel cache
            from rewardgen.sim.warp import prewarm
            from rewardgen.tasks.spec import task_from_dict

            prewarm(task_from_dict(job.task, where="job"), job.device or "cuda")


def run_job(job: WorkerJob, out: FrameWriter) -> None:
    import torch

    from rewardgen.contract.reward import load_reward
    from rewardgen.tasks.fitness import make_fitness
    from rewardgen.tasks.spec import task_from_dict
    from rewardgen.trainers.base import BatchReward, TrainConfig, TrainingStats

    torch.set_num_threads(job.torch_threads)
    task = task_from_dict(job.task, where="job")
    fitness = make_fitness(task.fitness, task.schema)
    env_reward = job.env_reward and job.mode == "train"
    resume = None
    if job.mode == "train" and job.resume is not None:
        try:
            resume = base64.b64decode(job.resume, validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            out.send(Error("job", f"job key 'resume' is not base64: {exc}"))
            return
    trainer = get_trainer(job.trainer, env_reward, task.ppo, job.num_envs, job.sim, job.device,
                          job.cpu_threads) if job.mode == "train" else None
    if resume is not None and trainer is not None and not getattr(trainer, "supports_resume", False):
        out.send(Error("job", f"trainer {trainer.name!r} cannot resume from a state"))
        return
    if job.mode == "check":
        capacity = job.num_envs or 4
    else:
        capacity = int(getattr(getattr(trainer, "hp", None), "num_envs", None) or job.num_envs or 8)
        if job.check is not None:
            capacity = max(capacity, job.check.num_envs)
    stage = "load"
    fn: Any = None  # what the trainer calls: the jail, the env's reward, or the candidate in this process
    jail: ConfinedReward | None = None
    try:
        if env_reward:  # the env's own reward: trusted code only, no candidate to load or guard against
            from rewardgen.trainers.sb3 import EnvRewardFn

            out.send(Isolation([], ["env reward: no candidate code was run"]))
            fn = EnvRewardFn()
        elif job.sandbox:
            fn = jail = open_jail(job, out, task.schema, capacity)
        else:  # overhead measurements only: the candidate in this process, no isolation at all
            fn = load_reward(job.source or "", CANDIDATE_FILENAME)
        # only now may this process touch a GPU: the jail was forked before any device was opened
        _warm_up(job)
        if job.mode == "check":
            stage = "runtime"
            env_steps, smoke_stats = _smoke(SmokeCheck(job.steps or 256, job.seed, job.num_envs or 4), task, fn,
                                            fitness, jail)
            out.send(TrainResult(env_steps, smoke_stats))
            return
        if job.check is not None:  # the candidate's smoke check, folded into its training
            stage = "runtime"
            env_steps, check_stats = _smoke(job.check, task, fn, fitness, jail)
            out.send(Check(env_steps, check_stats))
        stage = "runtime"
        assert trainer is not None  # a train job (a check job returned above)
        config = TrainConfig(steps=job.steps, seed=job.seed, num_envs=job.num_envs or 8, device=job.device,
                             resume=resume)
        stats = TrainingStats(config.steps)
        reward: BatchReward | None = BatchReward(fn, fitness, stats, config.num_envs, task.episode_length)
        if env_reward and trainer.name != "sb3":
            reward = None  # trainers other than SB3 read the env reward themselves (PPOTrainer(env_reward=True))
        last = [0.0]

        def progress(steps: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.5 or steps >= config.steps:
                last[0] = now
                out.send(Progress(int(steps), int(config.steps)))

        # None: the trainer reads the env's own reward (Trainer.train's signature in trainers/base.py says
        # BatchReward only)
        result = trainer.train(task, reward, config, progress)  # type: ignore[arg-type]
        if jail is not None:
            jail.verify()
        if result.resume_state is not None:  # before the result, see the module docstring
            out.send(ResumeHeader(int(result.env_steps), len(result.resume_state)))
            out.bytes(bytes(result.resume_state))
        out.send(TrainResult(int(result.env_steps), result.stats, float(result.seconds), trainer.name,
                             result.report()))
        out.bytes(result.policy.to_bytes())
    except Exception as exc:  # every failure becomes a recorded verdict
        report_failure(out, exc, stage)
    finally:
        if jail is not None:
            jail.close()
            out.send(jail_report(jail))


def jail_report(jail: ConfinedReward) -> JailReport:
    """The ``jail`` frame: what the trusted side saw of the jail's behaviour, sent after it closed.
    ``refused``: system calls its seccomp filter refused (counted by the supervisor, outside the jail);
    ``guard_off``: the jail said its audit hook was switched off; ``deadline``: the last call deadline."""
    total, by_name = jail.refused()
    top = dict(sorted(by_name.items(), key=lambda kv: -kv[1])[:16])
    return JailReport(int(total), {str(k): int(v) for k, v in top.items()}, bool(jail.guard_off), int(jail.calls),
                      round(float(jail.call_deadline(jail.capacity)), 3))


def _smoke(check: SmokeCheck, task: Any, fn: Any, fitness: Any,
           jail: ConfinedReward | None) -> tuple[int, dict[str, Any]]:
    """The smoke check: random actions through the real State path and the reward (the contract is
    checked on every call); returns its env-steps and statistics."""
    import numpy as np

    from rewardgen.trainers.base import BatchReward, TrainingStats
    from rewardgen.trainers.sb3 import RewardVecEnv

    steps, envs = check.steps, check.num_envs
    stats = TrainingStats(steps)
    reward = BatchReward(fn, fitness, stats, envs, task.episode_length)
    venv = RewardVecEnv(task, reward, envs, check.seed)
    venv.reset()
    rng = np.random.default_rng(check.seed)
    for _ in range(max(1, steps // envs)):
        venv.step_async(rng.uniform(-1, 1, size=(envs, task.schema.nu)).astype(np.float32))
        venv.step_wait()
    if jail is not None:
        jail.verify()
    return int(venv.total_steps), reward.summary()


def report_failure(out: FrameWriter, exc: BaseException, stage: str) -> None:
    """Send the verdict for an exception raised while loading or running the candidate: the jail's
    own record for a failure inside it, else the same classification made here."""
    from rewardgen.sandbox.jail import JailError, failure_record

    if isinstance(exc, JailError):
        out.send(Error(exc.stage, exc.error, exc.traceback or ""))
    else:
        record = failure_record(exc, stage, CANDIDATE_FILENAME)
        out.send(Error(record["stage"], record.get("error") or "", record.get("traceback") or ""))


def serve(run: Callable[[WorkerJob, FrameWriter], None], prog: str) -> None:
    """A worker's entry point: read the job frame from stdin (bounded), answer with frames on --result-fd."""
    parser = argparse.ArgumentParser(prog=prog, allow_abbrev=False)
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args()
    out = FrameWriter(args.result_fd)
    os.set_inheritable(args.result_fd, False)
    try:
        job = WorkerJob.from_dict(read_job(sys.stdin.buffer, MAX_JOB_BYTES))
    except FrameError as exc:
        out.send(Error("job", f"the job is not one frame of at most {MAX_JOB_BYTES} bytes: {exc}"[:500]))
        return
    except (JobError, SchemaError, ValueError) as exc:
        out.send(Error("job", str(exc)[:500]))
        return
    run(job, out)


def main() -> None:
    serve(run_job, "rewardgen.trainers.worker")


if __name__ == "__main__":
    main()
