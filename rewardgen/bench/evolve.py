"""``rewardgen bench evolve``: does evolve run at the speed of its trainer?

In one invocation, interleaved, ``repeats`` times:

- **trainer alone**: one training job of ``steps`` env-steps with all the machine's cores (the limit),
  through the same sandboxed worker evolve uses; its rate is the env-steps/s the trainer measured
  over its own training (no start-up, no check, no evaluation);
- **full**: one evolve generation, K candidates x ``steps``, ``--schedule full``, ``--no-video``;
- **full+video**: the same with videos;
- **halving**: one evolve generation, K candidates, the default ``halving`` schedule at the task's
  default budget, with videos;
- **train command**: ``rewardgen train`` of the first candidate's reward file at ``steps``, timed as a
  whole command from the shell (a fresh ``python -m rewardgen``: imports, zygote, check, training,
  evaluation, video, report, exit), beside
- **SB3**: SB3 PPO's training-only env-steps/s on the same reward (``bench throughput``'s row c,
  ``sb3_steps`` env-steps); ``train_vs_sb3`` is the command's whole-command env-steps/s over it.

Every evolve run is a fresh ``Evolution`` in a fresh run directory with the offline proposer's
generation-0 candidates (the same for every run), and pays its own zygote start, as a command does.
For each it reports wall seconds, env-steps, env-steps/s (env-steps over wall time),
**efficiency** = that / the trainer-alone rate of the same repeat, and the **per-candidate fixed
overhead**: (wall - env-steps / trainer-alone rate) / candidates trained, i.e. wall time not spent in
env-steps at the trainer's own speed; plus ``overhead_measured_s``, (wall - the training seconds the
workers measured) / K, which with one worker is the time each candidate costs besides its training.
Medians over the repeats are reported per row, with each repeat's figures. Performance targets are
checked with this command, never by timed tests.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewardgen.bench.train import sb3_throughput
from rewardgen.envsteps import fmt as fmt_steps
from rewardgen.loadavg import load_text
from rewardgen.procs import WorkerLimits, run_worker
from rewardgen.proposers import ProposalContext, get_proposer
from rewardgen.run.config import EvolveConfig
from rewardgen.run.evolve import Evolution, start_run
from rewardgen.run.executors import usable_cores
from rewardgen.run.step import ppo_worlds
from rewardgen.store import RunStore
from rewardgen.tasks.spec import get_task

ROWS = ("full", "full+video", "halving")


def trainer_alone(task, source: str, steps: int, seed: int = 0) -> dict[str, Any]:
    """One training job with every core: the trainer's own env-steps/s (and the whole job's)."""
    cores = usable_cores()
    job = {"mode": "train", "task": task.to_dict(), "source": source, "seed": seed, "trainer": "ppo",
           "steps": int(steps), "num_envs": ppo_worlds(steps, task.ppo.get("num_envs", 128)), "cpu_threads": cores}
    started = time.monotonic()
    res = run_worker(job, WorkerLimits(wall_seconds=120.0 + steps / 100.0))
    wall = time.monotonic() - started
    if not res.ok or not res.result:
        raise RuntimeError(f"trainer alone failed: {res.stage}: {res.error}")
    env_steps = int(res.result["env_steps"])
    seconds = float(res.result["seconds"])
    return {"env_steps": env_steps, "train_seconds": round(seconds, 3), "wall_seconds": round(wall, 3),
            "env_steps_per_s": env_steps / seconds, "wall_env_steps_per_s": env_steps / wall, "cores": cores}


def evolve_once(task_id: str, proposals: list, steps: int, schedule: str, video: bool, workers: int,
                runs_dir: Path, seed: int = 0, eval_episodes: int | None = None) -> dict[str, Any]:
    """One generation of evolve on ``proposals``; wall seconds, env-steps, training seconds."""
    from rewardgen.procs import zygote

    zygote.reset_shared()  # a command starts its own zygote: so does every measured run
    config = EvolveConfig(task=task_id, samples=len(proposals), generations=1, steps=steps, seed=seed,
                          workers=workers, schedule=schedule, video=video, llm="offline",
                          eval_episodes=eval_episodes)
    store = start_run(config, runs_dir)
    started = time.monotonic()
    evo = Evolution(store, forecast=False)  # a calibration would be timed with the run
    evo.write_generation(0, proposals, "offline")
    summary = evo.run()
    wall = time.monotonic() - started
    gen = summary["generations"][0]
    train_seconds, candidates = 0.0, 0
    for c in range(len(proposals)):
        d = store.cand_dir(0, c)
        candidates += 1
        for rung in store.listdir(d, "rung-*.json"):
            record = store.read_json(d / rung)
            rate = float(record.get("env_steps_per_second") or 0)
            if record.get("status") == "ok" and rate > 0:
                train_seconds += int(record.get("env_steps") or 0) / rate
    failed = [c["candidate"] for c in gen["candidates"] if c["status"] != "ok"]
    return {"run_dir": str(store.path), "wall_seconds": round(wall, 3), "env_steps": int(gen["steps_spent"]),
            "train_seconds": round(train_seconds, 3), "candidates": candidates, "failed": failed,
            "videos": sum(store.is_file(store.cand_dir(0, c) / "video.mp4") for c in range(len(proposals)))}


def train_command(task_id: str, source: str, steps: int, runs_dir: Path, seed: int = 0) -> dict[str, Any]:
    """``rewardgen train`` of ``source`` as a whole command (a fresh interpreter), timed from outside."""
    import json

    reward = runs_dir / "bench_reward.py"
    reward.write_text(source)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rewardgen", "train", str(reward), "--task", task_id,
                           "--steps", str(steps), "--seed", str(seed), "--runs-dir", str(runs_dir), "--json"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600 + steps / 100)
    wall = time.monotonic() - started
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"rewardgen train failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    summary = json.loads(lines[-1])
    metrics = RunStore(Path(summary["run_dir"])).read_metrics(0, 0) or {}
    env_steps = int(metrics.get("env_steps") or 0)
    return {"wall_seconds": round(wall, 3), "env_steps": env_steps, "env_steps_per_s": env_steps / wall,
            "train_seconds": metrics.get("train_seconds"), "run_dir": summary["run_dir"]}


def bench_evolve(task_id: str = "halfcheetah-run", steps: int = 300_000, samples: int = 4, repeats: int = 3,
                 halving_steps: int | None = None, workers: int = 1, seed: int = 0, eval_episodes: int | None = None,
                 runs_dir: Path | None = None, rows: tuple[str, ...] = ROWS, sb3_steps: int = 16_384,
                 train_row: bool = True, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """The benchmark (module docstring); ``say`` gets one line per measured run. ``train_row``: also
    time the ``rewardgen train`` command against SB3 (``sb3_steps`` env-steps of SB3 per repeat)."""
    task = get_task(task_id)
    halving_steps = halving_steps or task.default_steps
    proposals = get_proposer("offline").propose(ProposalContext(task, task.schema, 0, samples, seed))
    runs_dir = Path(runs_dir or tempfile.mkdtemp(prefix="rewardgen-bench-evolve-"))
    runs_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"task": task_id, "steps": steps, "samples": samples, "repeats": repeats,
                           "halving_steps": halving_steps, "workers": workers, "cores": usable_cores(),
                           "load_before": load_text(), "runs_dir": str(runs_dir),
                           "zygote": os.environ.get("REWARDGEN_ZYGOTE", "1") not in ("0", "no", "off", "false"),
                           "repeat": []}
    for k in range(repeats):
        alone = trainer_alone(task, proposals[0].source, steps, seed)
        say(f"repeat {k + 1}/{repeats}: trainer alone {fmt_steps(alone['env_steps_per_s'])} env-steps/s "
            f"({fmt_steps(alone['env_steps'])} env-steps in {alone['train_seconds']:.1f} s of training, "
            f"{alone['wall_seconds']:.1f} s whole job), load {load_text()}")
        rate = alone["env_steps_per_s"]
        one: dict[str, Any] = {"trainer_alone": alone}
        for row in rows:
            schedule, video, budget = {"full": ("full", False, steps), "full+video": ("full", True, steps),
                                       "halving": ("halving", True, halving_steps)}[row]
            run = evolve_once(task_id, proposals, budget, schedule, video, workers, runs_dir, seed, eval_episodes)
            sps = run["env_steps"] / run["wall_seconds"]
            run |= {"env_steps_per_s": sps, "efficiency": sps / rate,
                    "overhead_per_candidate_s": (run["wall_seconds"] - run["env_steps"] / rate) / run["candidates"],
                    "overhead_measured_s": (run["wall_seconds"] - run["train_seconds"]) / run["candidates"]}
            one[row] = run
            say(f"  {row:>10}: {fmt_steps(run['env_steps'])} env-steps in {run['wall_seconds']:.1f} s = {fmt_steps(sps)}/s, "
                f"efficiency {run['efficiency']:.2f}, overhead {run['overhead_per_candidate_s']:.2f} s/candidate "
                f"(measured {run['overhead_measured_s']:.2f} s), load {load_text()}")
        if train_row:
            cmd = train_command(task_id, proposals[0].source, steps, runs_dir, seed)
            sb3 = sb3_throughput(task, proposals[0].source, sb3_steps, seed=seed)  # bench throughput's row c
            cmd["sb3_env_steps_per_s"] = sb3["env_steps_per_s"]
            cmd["train_vs_sb3"] = cmd["env_steps_per_s"] / sb3["env_steps_per_s"]
            one["train_command"] = cmd
            say(f"  `rewardgen train`: {fmt_steps(cmd['env_steps'])} env-steps in {cmd['wall_seconds']:.1f} s whole "
                f"command = {fmt_steps(cmd['env_steps_per_s'])}/s; SB3 PPO trains at {fmt_steps(sb3['env_steps_per_s'])}/s: "
                f"{cmd['train_vs_sb3']:.1f}x, load {load_text()}")
        out["repeat"].append(one)
    out["load_after"] = load_text()
    med = statistics.median
    out["trainer_alone_env_steps_per_s"] = med(r["trainer_alone"]["env_steps_per_s"] for r in out["repeat"])
    out["trainer_alone_wall_env_steps_per_s"] = med(r["trainer_alone"]["wall_env_steps_per_s"] for r in out["repeat"])
    for row in rows:
        runs = [r[row] for r in out["repeat"]]
        out[row] = {key: med(x[key] for x in runs) for key in
                    ("wall_seconds", "env_steps", "env_steps_per_s", "efficiency", "overhead_per_candidate_s",
                     "overhead_measured_s")}
    if train_row:
        runs = [r["train_command"] for r in out["repeat"]]
        out["train_command"] = {key: med(x[key] for x in runs) for key in
                                ("wall_seconds", "env_steps", "env_steps_per_s", "sb3_env_steps_per_s", "train_vs_sb3")}
    return out


__all__ = ["ROWS", "bench_evolve", "evolve_once", "train_command", "trainer_alone"]
