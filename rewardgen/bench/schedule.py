"""``rewardgen bench schedule``: full training, successive halving and the adaptive schedule on the same candidates.

Per seed, every schedule gets the same K proposals (generation 0 of the offline proposer with that
seed), the same training seeds and the same budget; the comparison is env-steps spent (and their share
of full's) and the best trusted fitness reached (and its gap to full's best). Several seeds give the
per-seed rows and the medians.

Full training's best is itself one training seed's outcome. With ``judge_seeds`` every candidate's
reward is also retrained from scratch on that many new training seeds (as ``rewardgen final`` does)
and each schedule's pick is judged by its reward's mean over them: what the pick is worth once a user
retrains it, and how wide one reward's seed-to-seed spread is beside the gaps being compared.

Resumable: with the same ``runs_dir`` a rerun reuses (or resumes) each schedule's run made with the same
config and proposals, and every judge training finished under the same key.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from rewardgen.envsteps import fmt as fmt_steps
from rewardgen.proposers import ProposalContext, get_proposer
from rewardgen.run.config import EvolveConfig, resolve_proposer
from rewardgen.run.evolve import Evolution, resume, start_run
from rewardgen.run.final import Retraining, eval_seed, retrain_in_run, run_training, seed_results
from rewardgen.run.progress import Progress
from rewardgen.run.schedule import Evaluation
from rewardgen.store import RUN_FILE, CorruptFileError, RunStore, candidate_label, rung_file
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
    earlier = earlier_run(runs_dir, config, proposals)
    if earlier is not None:
        summary = resume(earlier, progress)  # finished: its summary; interrupted: it continues
        store = RunStore.open(earlier)
    else:
        store = start_run(config, runs_dir)
        evo = Evolution(store, progress)
        evo.write_generation(0, proposals, "offline")
        summary = evo.run()
    gen = summary["generations"][0]
    return {"run_dir": str(store.path), "reused": earlier is not None, "env_steps": gen["steps_spent"], "best": gen["best"],
            "fitness": {c["candidate"]: c["fitness"] for c in gen["candidates"]},
            "trained": {c["candidate"]: c["env_steps"] for c in gen["candidates"]}}


def earlier_run(runs_dir: Path, config: EvolveConfig, proposals: list) -> Path | None:
    """A run in ``runs_dir`` an earlier bench made with this config and these proposals (finished or
    interrupted), or None. Anything else there (other configs, unreadable runs) is left alone."""
    config = replace(config, proposer=resolve_proposer(config))
    wanted = asdict(config) | {"steps": config.budget(get_task(config.task))}
    for run_dir in sorted(Path(runs_dir).glob("*/")):
        try:
            store = RunStore(run_dir)
            run = store.read_json(RUN_FILE)
            # read through EvolveConfig: a run made before a config field existed has its default
            if not run or asdict(EvolveConfig.from_dict(run["config"])) != wanted or store.read_generation(0) is None:
                continue
            if all(store.read_source(0, c) == p.source for c, p in enumerate(proposals)):
                return run_dir
        except (CorruptFileError, OSError, KeyError, IndexError, TypeError):
            continue
    return None


def judge_train_seed(seed: int, k: int) -> int:
    """The k-th judge training seed of bench seed ``seed`` (apart from evolve's and final's 500_000 + ...)."""
    return 700_000 + 1000 * int(seed) + k


def judge_rewards(run_dir: Path, seeds: int, executor=None, say: Callable[[str], None] | None = None) -> dict:
    """Retrain every candidate of ``run_dir``'s generation 0 from scratch at the run's budget on ``seeds``
    new training seeds and evaluate each policy with the trusted evaluator on held-out episodes (final's
    evaluation seeds). Per candidate: the fitness of each seed, their mean and (population) std; and the
    best reward by mean. The trainings live in ``run_dir/judge/`` and a rerun reuses finished ones."""
    store = RunStore.open(Path(run_dir))
    training = run_training(store)
    seed = training.config.seed
    count = len((store.read_generation(0) or {}).get("candidates") or [])
    trainings = [Retraining.of(f"cand-{c:02d}", k, f"judge/cand-{c:02d}-seed{k}", store.read_source(0, c),
                               steps=training.steps, trainer=training.trainer, train_seed=judge_train_seed(seed, k),
                               episodes=training.episodes, eval_seed=eval_seed(seed))
                 for k in range(seeds) for c in range(count)]
    records, _ = retrain_in_run(store, training, trainings, executor,
                                _JudgeProgress(len(trainings), seed, say))
    per: dict[int, dict] = {}
    for c in range(count):
        res = seed_results(records, f"cand-{c:02d}")
        per[c] = {"fitness": res["fitness"], "failed": len(res["fitness"]) - res["ok"], "mean": res["mean"],
                  "std": res["std"]}
    ranked = sorted((c for c in per if per[c]["mean"] is not None), key=lambda c: (-per[c]["mean"], c))
    spreads = [per[c]["std"] / abs(per[c]["mean"]) for c in ranked if per[c]["mean"]]
    return {"seeds": seeds, "train_seeds": [judge_train_seed(seed, k) for k in range(seeds)],
            "eval_seed": eval_seed(seed), "episodes": training.episodes, "steps": training.steps, "candidates": per,
            "best": ranked[0] if ranked else None, "order": ranked,
            "spread": statistics.median(spreads) if spreads else None}


class _JudgeProgress:
    """A line per finished judge training, with how many are left and a time estimate from the pace so far."""

    def __init__(self, total: int, seed: int, say: Callable[[str], None] | None):
        self.total, self.seed, self.say = total, seed, say
        self.done = self.reused = 0
        self.started = time.monotonic()

    def event(self, kind: str, **data) -> None:
        if kind != "final_run":
            return
        self.done += 1
        self.reused += bool(data.get("reused"))
        if self.say is None:
            return
        trained = self.done - self.reused
        left = self.total - self.done
        eta = ""
        if trained and left:
            seconds = int((time.monotonic() - self.started) / trained * left)
            eta = f", about {seconds // 60}:{seconds % 60:02d} left"
        fit = data.get("fitness")
        what = "reused" if data.get("reused") else (f"fitness {fit:.3f}" if fit is not None else data.get("status"))
        self.say(f"seed {self.seed} judge {self.done}/{self.total}: {candidate_label(0, int(data['method'].removeprefix('cand-')))} "
                 f"training seed {data['seed_index']}: {what}{eta}")


def judge_schedules(per: dict, judged: dict) -> None:
    """Add to each schedule's row what its pick's reward is worth when retrained: ``judged`` = its
    candidate, the judged mean, the gap to the judged best reward's mean and the pick's rank."""
    best = judged["best"]
    if best is None:
        return
    top = judged["candidates"][best]["mean"]
    for r in per.values():
        pick = (r.get("best") or {}).get("candidate")
        mean = judged["candidates"].get(pick, {}).get("mean") if pick is not None else None
        r["judged"] = {"candidate": pick, "mean": mean,
                       "gap": (top - mean) / abs(top) if mean is not None and top else None,
                       "rank": judged["order"].index(pick) + 1 if pick in judged["order"] else None}


def judge_text(seed: int, judged: dict, per: dict) -> str:
    """One line: the judged best reward, each schedule's pick against it, and one reward's spread."""
    best = judged["best"]
    if best is None:
        return f"seed {seed} judged: no candidate trained on the judge seeds"
    b = judged["candidates"][best]
    parts = []
    for name, r in per.items():
        j = r.get("judged") or {}
        if j.get("mean") is None:
            parts.append(f"{name}'s pick: not judged")
            continue
        parts.append(f"{name}'s pick ({candidate_label(0, j['candidate'])}) {j['mean']:.3f}, rank {j['rank']}"
                     + (f", {j['gap']:.1%} below" if j["gap"] else ""))
    spread = judged["spread"]
    return (f"seed {seed} judged on {judged['seeds']} new training seeds per candidate: "
            f"best reward {candidate_label(0, best)} {b['mean']:.3f} ± {b['std']:.3f}; " + "; ".join(parts)
            + ("" if spread is None else f"; one reward's seed-to-seed spread: median {spread:.0%} of its mean"))


def compare_schedules(task_id: str, samples: int = 8, steps: int | None = None, seed: int = 0,
                      runs_dir: Path | None = None, trainer: str = "ppo", eval_episodes: int | None = None,
                      progress: Progress | None = None, seeds: Sequence[int] | None = None,
                      schedules: Sequence[str] = COMPARED, say: Callable[[str], None] | None = None,
                      judge_seeds: int = 0) -> dict:
    """Run one generation under each schedule for each seed; per seed and schedule the env-steps spent,
    their share of full's, the best trusted fitness and its gap to full's best; medians over seeds.
    ``judge_seeds``: also judge each schedule's pick by its reward retrained on that many new seeds
    (``judge_rewards``; per seed under ``out["judged"]``, and each row's ``judged``).

    With one seed the schedules' results are also at the top level (``out["halving"]``, as before)."""
    task = get_task(task_id)
    seeds = list(seeds) if seeds else [seed]
    schedules = [s for s in COMPARED if s in schedules]
    runs_dir = Path(runs_dir or tempfile.mkdtemp(prefix="rewardgen-bench-schedule-"))
    out: dict = {"task": task_id, "samples": samples, "steps": steps or task.default_steps, "trainer": trainer,
                 "seeds": seeds, "schedules": schedules, "runs": {}, "judge_seeds": judge_seeds, "judged": {}}
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
                if r.get("race") and full:  # a race is ranked against the full schedule's best
                    say(race_text(s, r["race"], full["best"]["candidate"]))
        if judge_seeds:
            judged = judge_rewards(Path(per[schedules[0]]["run_dir"]), judge_seeds, say=say)
            judge_schedules(per, judged)
            out["judged"][s] = judged
            if say:
                say(judge_text(s, judged, per))
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
        gaps = [r["judged"]["gap"] for r in rows if (r.get("judged") or {}).get("gap") is not None]
        if judge_seeds:
            med["judged_gap"] = statistics.median(gaps) if gaps else None
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
        seen: dict[int, float] = {}  # candidate -> its fitness at this rung
        steps = 0
        for c in map(int, full_fitness):
            rec = store.read_json(store.cand_dir(0, c) / rung_file(r))
            e = Evaluation.from_rung(rec) if rec else None
            if e is not None and e.fitness is not None:
                seen[c] = e.fitness
                steps = max(steps, e.steps)
        if len(seen) < 2:
            break
        order = sorted(seen, key=lambda c: (-seen[c], c))
        out.append({"rung": r, "env_steps": steps, "racing": len(seen),
                    "best_rank": order.index(best) + 1 if best in seen else None})
    return out


def race_text(seed: int, race: list[dict], best: int) -> str:
    """One line: full's best candidate's rank at each of the adaptive race's evaluations."""
    ranked = [x for x in race if x["best_rank"]]
    ranks = ", ".join(f"{x['best_rank']} of {x['racing']} at {fmt_steps(x['env_steps'])}" for x in ranked)
    if len(ranked) < len(race):
        ranks += f"; dropped before {fmt_steps(race[len(ranked)]['env_steps'])}"
    return f"seed {seed} adaptive race: full's best ({candidate_label(0, best)}) ranked {ranks}"


def row_text(seed: int, schedule: str, r: dict) -> str:
    """One line per seed and schedule: env-steps (share of full's), best candidate and fitness (gap)."""
    best = r["best"] or {}
    share = f" ({r['steps_ratio']:.1%} of full's)" if r.get("steps_ratio") is not None else ""
    gap = r.get("fitness_gap")
    gap_text = "" if gap is None else f", {abs(gap):.1%} {'below' if gap > 0 else 'above'} full's best"
    fit = best.get("fitness")
    pick = "none" if best.get("candidate") is None else candidate_label(0, best["candidate"])
    return (f"seed {seed} {schedule:>8}: {fmt_steps(r['env_steps'])} env-steps{share}, best {pick} "
            f"fitness {fit if fit is None else round(fit, 3)}{gap_text}"
            + (" (the run made before)" if r.get("reused") else ""))
