"""``rewardgen bench schedule``: successive halving against full training on the same candidates.

Both schedules get the same K proposals (generation 0 of the offline proposer), the same seeds and
the same budget; the comparison is total env-steps spent and the best trusted fitness reached.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rewardgen.run.evolve import Evolution, EvolveConfig, Progress, start_run
from rewardgen.proposers import ProposalContext, get_proposer
from rewardgen.tasks.spec import get_task


def compare_schedules(task_id: str, samples: int = 8, steps: int | None = None, seed: int = 0,
                      runs_dir: Path | None = None, trainer: str = "ppo", eval_episodes: int | None = None,
                      progress: Progress | None = None) -> dict:
    """Run one generation under each schedule and return steps spent and best fitness of each."""
    task = get_task(task_id)
    proposals = get_proposer("offline").propose(ProposalContext(task, task.schema, 0, samples, seed))
    runs_dir = Path(runs_dir or tempfile.mkdtemp(prefix="rewardgen-bench-schedule-"))
    out: dict = {"task": task_id, "samples": samples, "steps": steps or task.default_steps, "trainer": trainer}
    for schedule in ("full", "halving"):
        config = EvolveConfig(task=task_id, samples=samples, generations=1, steps=steps, seed=seed, video=False,
                              schedule=schedule, trainer=trainer, eval_episodes=eval_episodes, llm="offline")
        store = start_run(config, runs_dir)
        evo = Evolution(store, progress)
        evo.write_generation(0, proposals, "offline")
        summary = evo.run()
        gen = summary["generations"][0]
        out[schedule] = {"run_dir": str(store.path), "env_steps": gen["steps_spent"],
                         "best": gen["best"], "fitness": {c["candidate"]: c["fitness"] for c in gen["candidates"]}}
    full, halving = out["full"], out["halving"]
    out["steps_ratio"] = halving["env_steps"] / max(full["env_steps"], 1)
    if full["best"] and halving["best"]:
        out["same_best"] = full["best"]["candidate"] == halving["best"]["candidate"]
        f, h = full["best"]["fitness"], halving["best"]["fitness"]
        out["fitness_gap"] = (f - h) / abs(f) if f else None
    return out
