"""``rewardgen bench schedule``: full training, successive halving and the adaptive schedule on the same candidates.

Per seed, every schedule gets the same K proposals (generation 0 of the offline proposer with that
seed), the same training seeds and the same budget; the comparison is env-steps spent (and their share
of full's) and the best trusted fitness reached (and its gap to full's best). Several seeds give the
per-seed rows and the medians.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from rewardgen.run.evolve import Evolution, start_run
from rewardgen.run.config import EvolveConfig
from rewardgen.run.progress import Progress
from rewardgen.proposers import ProposalContext, get_proposer
from rewardgen.run.schedule import Evaluation
from rewardgen.store import RunStore, read_json, rung_file
from rewardgen.tasks.spec import get_task

#: the schedules compared, in the order they run (full first: the others are measured against it)
COMPARED = ("full", "halving", "adaptive")


def run_schedule(task_id: str, proposals: list, schedule: str, samples: int, steps: int | None, seed: int,
                 runs_dir: Path, trainer: str = "ppo", eval_episodes: int | None = None,
                 progress: Progress | None = None) -> dict:
    """One generation of ``proposals`` under ``schedule``: its run directory, env-steps spent, best and
    every candidate's trusted fitness and env-steps."""
    config = EvolveConfig(task=task_id, samples=samples, generations=1, steps=steps, seed=seed, video=False,
                          schedule=schedule, trainer=trainer, eval_episodes=eval_episodes, llm="offline")
    store = start_run(config, runs_dir)
    evo = Evolution(store, progress)
    evo.write_generation(0, proposals, "offline")
    gen = evo.run()["generations"][0]
    return {"run_dir": str(store.path), "env_steps": gen["steps_spent"], "best": gen["best"],
            "fitness": {c["candidate"]: c["fitness"] for c in gen["candidates"]},
            "trained": {c["candidate"]: c["env_steps"] for c in gen["candidates"]}}


def compare_schedules(task_id: str, samples: int = 8, steps: int | None = None, seed: int = 0,
                      runs_dir: Path | None = None, trainer: str = "ppo", eval_episodes: int | None = None,
                      progress: Progress | None = None, seeds: Sequence[int] | None = None,
                      schedules: Sequence[str] = COMPARED, say: Callable[[str], None] | None = None) -> dict:
    """Run one generation under each schedule for each seed; per seed and schedule the env-steps spent,
    their share of full's, the best trusted fitness and its gap to full's best; medians over seeds.

    With one seed the schedules' results are also at the top level (``out["halving"]``, as before)."""
    task = get_task(task_id)
    seeds = list(seeds) if seeds else [seed]
    schedules = [s for s in COMPARED if s in schedules]
    runs_dir = Path(runs_dir or tempfile.mkdtemp(prefix="rewardgen-bench-schedule-"))
    out: dict = {"task": task_id, "samples": samples, "steps": steps or task.default_steps, "trainer": trainer,
                 "seeds": seeds, "schedules": schedules, "runs": {}}
    for s in seeds:
        proposals = get_proposer("offline").propose(ProposalContext(task, task.schema, 0, samples, s))
        per: dict = {}
        for schedule in schedules:
            r = run_schedule(task_id, proposals, schedule, samples, steps, s, runs_dir, trainer, eval_episodes,
                             progress)
            full = per.get("full")
            if full:
                r["steps_ratio"] = r["env_steps"] / max(full["env_steps"], 1)
                if full["best"] and r["best"]:
                    f, h = full["best"]["fitness"], r["best"]["fitness"]
                    r["same_best"] = full["best"]["candidate"] == r["best"]["candidate"]
                    r["fitness_gap"] = (f - h) / abs(f) if f else None
            if schedule == "adaptive" and full and full["best"]:
                r["race"] = race_ranks(Path(r["run_dir"]), full["fitness"], full["best"]["candidate"])
            per[schedule] = r
            if say:
                say(row_text(s, schedule, r))
                if r.get("race"):
                    say(race_text(s, r["race"], full["best"]["candidate"]))
        out["runs"][s] = per
    out["median"] = {}
    for schedule in schedules:
        rows = [out["runs"][s][schedule] for s in seeds]
        med: dict = {"env_steps": statistics.median(r["env_steps"] for r in rows)}
        bests = [r["best"]["fitness"] for r in rows if r["best"]]
        med["best_fitness"] = statistics.median(bests) if bests else None
        for key in ("steps_ratio", "fitness_gap"):
            vals = [r[key] for r in rows if r.get(key) is not None]
            med[key] = statistics.median(vals) if vals else None
        out["median"][schedule] = med
    if len(seeds) == 1:  # the single-seed shape of earlier versions: out["full"], out["halving"], ...
        one = out["runs"][seeds[0]]
        out.update({k: v for k, v in one.items()})
        if "halving" in one and "steps_ratio" in one["halving"]:
            out["steps_ratio"] = one["halving"]["steps_ratio"]
            if "same_best" in one["halving"]:
                out["same_best"] = one["halving"]["same_best"]
                out["fitness_gap"] = one["halving"]["fitness_gap"]
    return out


def race_ranks(run_dir: Path, full_fitness: dict, best: int) -> list[dict]:
    """What the adaptive run's early evaluations said about full training's best candidate: per race
    rung with two or more candidates, their env-steps, how many raced and the rank of full's best
    among them by trusted fitness (None: already dropped). Explains a miss: a schedule that ranks by
    fitness cannot keep a candidate that the early evaluations rank low (docs/benchmarks.md)."""
    store = RunStore(run_dir)
    out = []
    for r in itertools.count():  # the race ends with one candidate (or none) left: the loop breaks there
        seen = {}
        for c in map(int, full_fitness):
            rec = read_json(store.cand_dir(0, c) / rung_file(r))
            e = Evaluation.from_rung(rec) if rec else None
            if e is not None and e.fitness is not None:
                seen[c] = e
        if len(seen) < 2:
            break
        order = sorted(seen, key=lambda c: (-seen[c].fitness, c))
        out.append({"rung": r, "env_steps": max(e.steps for e in seen.values()), "racing": len(seen),
                    "best_rank": order.index(best) + 1 if best in seen else None})
    return out


def race_text(seed: int, race: list[dict], best: int) -> str:
    """One line: full's best candidate's rank at each of the adaptive race's evaluations."""
    ranked = [x for x in race if x["best_rank"]]
    ranks = ", ".join(f"{x['best_rank']} of {x['racing']} at {x['env_steps'] / 1000:.0f}k" for x in ranked)
    if len(ranked) < len(race):
        ranks += f"; dropped before {race[len(ranked)]['env_steps'] / 1000:.0f}k"
    return f"seed {seed} adaptive race: full's best (candidate {best}) ranked {ranks}"


def row_text(seed: int, schedule: str, r: dict) -> str:
    """One line per seed and schedule: env-steps (share of full's), best candidate and fitness (gap)."""
    best = r["best"] or {}
    share = f" ({r['steps_ratio']:.1%} of full's)" if r.get("steps_ratio") is not None else ""
    gap = r.get("fitness_gap")
    gap_text = "" if gap is None else f", {abs(gap):.1%} {'below' if gap > 0 else 'above'} full's best"
    fit = best.get("fitness")
    return (f"seed {seed} {schedule:>8}: {r['env_steps']:,} env-steps{share}, best candidate {best.get('candidate')} "
            f"fitness {fit if fit is None else round(fit, 3)}{gap_text}")
