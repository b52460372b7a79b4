"""Worker process for ``rewardgen.inspect.debug``: runs a candidate reward on rollouts and sends raw per-step data.

Started by ``rewardgen.procs.run_worker(job, limits, module="rewardgen.inspect.debug_worker")``, its job a
``Job`` frame on stdin. Like
``rewardgen.trainers.worker`` it runs no candidate code itself: the candidate runs in its jail
(``rewardgen.trainers.worker.open_jail``), which sees each step's State and answers the reward. Nothing is
written to disk; the data leaves as frames on the result fd.

Job keys: ``task`` (``Task.to_dict()``), ``source``, ``episodes``, ``seed``, optional ``policy_b64``
(base64 of ``PolicyExport.to_bytes()``), optional ``max_steps`` (cap on steps per episode).

For every rollout kind ("random": uniform actions in [-1, 1]; "policy": the deterministic policy)
and episode, each step fills one State from the env's MjData, computes the trusted per-step fitness
from it *before* the reward runs, then calls the reward. Results: one ``DebugResult`` frame
(``rewardgen.procs.frames``: the component names, and per episode its kind, number, seed, length,
whether it terminated and its fitness) followed by one bytes frame, an ``.npz`` (no pickles) holding per episode ``i``:
``i/fitness``, ``i/total``, ``i/c/<k>`` (component index ``k`` of ``components``).
Non-finite values are kept (the debugger counts them); wrong shapes or types are contract errors.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from rewardgen.contract.job import WorkerJob
from rewardgen.procs.frames import DebugResult, FrameWriter
from rewardgen.sandbox.confined import ConfinedReward


def _as_batch(label: str, value, n: int):
    """Like ``rewardgen.contract.reward`` but keeps NaN/inf (the debugger reports them instead of refusing)."""
    import torch

    from rewardgen.contract.reward import ContractError

    if not isinstance(value, torch.Tensor):
        raise ContractError(f"{label} must be a torch.Tensor of shape ({n},), got {type(value).__name__}")
    if tuple(value.shape) != (n,):
        raise ContractError(f"{label} has shape {tuple(value.shape)}, expected ({n},)")
    return value.detach().to(torch.float32)


def _check(result, n: int):
    from rewardgen.contract.reward import ContractError

    if not isinstance(result, tuple) or len(result) != 2:
        raise ContractError(f"compute_reward must return (total, components), got {type(result).__name__}")
    total, components = result
    if not isinstance(components, dict):
        raise ContractError(f"the second value must be a dict of components, got {type(components).__name__}")
    checked = {}
    for name, value in components.items():
        if not isinstance(name, str) or not name:
            raise ContractError(f"component names must be non-empty strings, got {name!r}")
        checked[name] = _as_batch(f"component {name!r}", value, n)
    return _as_batch("total", total, n), checked


def _run(job: WorkerJob, out: FrameWriter) -> None:
    import numpy as np
    import torch

    from rewardgen.contract.policy import DeterministicPolicy, PolicyExport
    from rewardgen.contract.state import StateBuffers, refresh_derived
    from rewardgen.tasks.fitness import make_fitness
    from rewardgen.tasks.spec import task_from_dict
    from rewardgen.trainers.worker import CANDIDATE_FILENAME, open_jail, report_failure

    torch.set_num_threads(1)
    task = task_from_dict(job.task, where="debug job")
    fitness = make_fitness(task.fitness, task.schema)
    episodes, seed = max(1, job.episodes), job.seed
    max_steps = job.max_steps or task.episode_length
    policy = None
    env: Any = task.make_env()  # a MuJoCo env: gymnasium's Env type declares neither model nor data
    if job.policy_b64:
        export = PolicyExport.from_bytes(base64.b64decode(job.policy_b64))
        export.validate(obs_dim=env.observation_space.shape[0], act_dim=env.action_space.shape[0])
        policy = DeterministicPolicy(export)
    model = env.unwrapped.model
    buffers = StateBuffers(task.schema, model, 1)
    rng = np.random.default_rng(seed)
    stage = "load"
    fn: Any = None  # what is called: the jail, or the candidate in this process (overhead measurements)
    jail: ConfinedReward | None = None
    try:
        if job.sandbox:
            fn = jail = open_jail(job, out, task.schema, 1)
        else:
            from rewardgen.contract.reward import load_reward

            fn = load_reward(job.source or "", CANDIDATE_FILENAME)
        stage = "runtime"
        names: list[str] = []
        meta: list[dict] = []
        arrays: dict[str, Any] = {}  # np.savez's keyword arrays
        kinds = ["random"] + (["policy"] if policy is not None else [])
        for kind in kinds:
            for ep in range(episodes):
                obs, _ = env.reset(seed=seed + ep)
                fit_v: list[float] = []
                tot_v: list[float] = []
                comp_v: dict[str, list[float]] = {}
                terminated = truncated = False
                t = 0
                while not (terminated or truncated) and t < max_steps:
                    if policy is None or kind == "random":
                        action = rng.uniform(-1.0, 1.0, size=task.schema.nu).astype(np.float32)
                    else:
                        action = policy(obs[None, :].astype(np.float32))[0]
                    obs, _, terminated, truncated, _ = env.step(action)
                    data = env.unwrapped.data
                    refresh_derived(model, data)
                    t += 1
                    buffers.fill(0, data, action, t)
                    state = buffers.to_state()
                    fit_v.append(float(fitness.per_step(state)[0]))  # before the reward sees the State
                    total, comps = _check(fn(buffers.to_state()), 1)
                    tot_v.append(float(total[0]))
                    for name, value in comps.items():
                        if name not in comp_v:
                            comp_v[name] = [float("nan")] * (t - 1)  # appeared late: earlier steps missing
                        comp_v[name].append(float(value[0]))
                    for values in comp_v.values():
                        if len(values) < t:
                            values.append(float("nan"))
                i = len(meta)
                meta.append({"kind": kind, "episode": ep, "seed": seed + ep, "length": t,
                             "terminated": bool(terminated),
                             "fitness": fitness.episode_value(fit_v, task.episode_length)})
                arrays[f"{i}/fitness"] = np.asarray(fit_v, np.float64)
                arrays[f"{i}/total"] = np.asarray(tot_v, np.float64)
                for name, values in comp_v.items():
                    if name not in names:
                        names.append(name)
                    arrays[f"{i}/c/{names.index(name)}"] = np.asarray(values, np.float64)
        if jail is not None:
            jail.verify()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        out.send(DebugResult(names, meta, fitness.name, fitness.aggregate))
        out.bytes(buf.getvalue())
    except Exception as exc:  # every failure becomes a recorded verdict
        report_failure(out, exc, stage)
    finally:
        env.close()
        if jail is not None:
            jail.close()


def main() -> None:
    from rewardgen.trainers.worker import serve

    serve(_run, "rewardgen.inspect.debug_worker")


if __name__ == "__main__":
    main()
