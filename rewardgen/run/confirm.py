"""Confirming the run's best reward on new training seeds before naming it.

Evolve picks a reward by the trusted fitness of one training seed. Where training outcomes spread
widely between seeds, the highest single-seed fitness is partly luck (the winner's curse): on
hopper-hop one reward reached 2.25 m/s on one training seed and 0.02-0.05 on three others, and the
suite's hopper and ant winners fell from 2.32 and 1.62 in evolve to 0.25-0.88 and 0.13-0.84 in
``rewardgen final`` (docs/benchmarks.md, "Confirming the best"). With ``confirm_seeds`` N, the
CONFIRM_TOP candidates with the highest trusted fitness are each retrained from scratch at the full budget on the same N new
training seeds, and the run's best becomes the one with the highest mean over those N: a sample
that no selection has looked at, so it is not biased upward like the fitness it was picked on.

The trainings run like ``rewardgen final``'s (``rewardgen.run.final.retrain``: sandboxed workers,
the trusted evaluator, one record per training written beside its policy); a resumed run reuses every
finished one. Only trusted numbers decide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rewardgen.run.events import ConfirmFinished, ConfirmRun, ConfirmStarted, Event, FinalRun
from rewardgen.run.final import Retraining, read_record, retrain, seed_results
from rewardgen.run.progress import Progress
from rewardgen.run.step import TrainingSetup
from rewardgen.store import GenerationSummary, RunStore, Stage, gen_dirname
from rewardgen.tasks.spec import Task

#: how many candidates, best trusted fitness first, are retrained
CONFIRM_TOP = 3


def confirm_train_seed(seed: int, k: int) -> int:
    """The k-th confirmation training seed of a run with ``seed`` (apart from evolve's and final's 500_000 + ...)."""
    return 600_000 + 1000 * int(seed) + k


def contenders(generations: Sequence[GenerationSummary], top: int = CONFIRM_TOP) -> list[dict]:
    """The ``top`` candidates of the whole run with the highest trusted fitness (``run.json``'s generation
    summaries), best first; ties go to the earlier one."""
    ok = [{"generation": g["generation"], "candidate": c["candidate"], "fitness": c["fitness"]}
          for g in generations for c in g["candidates"] if c.get("status") == Stage.OK and c.get("fitness") is not None]
    return sorted(ok, key=lambda x: (-x["fitness"], x["generation"], x["candidate"]))[:top]


def finished_confirm_trainings(store: RunStore) -> int:
    """How many confirmation trainings in ``store`` finished and were evaluated (for the time estimate)."""
    return sum(1 for name in store.listdir("confirm") if read_record(store, store.path / "confirm" / name) is not None)


def planned_confirm_steps(seeds: int, steps: int, samples: int, generations: int) -> int:
    """Env-steps the confirmation trains at most (for the run's time estimate)."""
    return min(CONFIRM_TOP, samples * generations) * seeds * steps if seeds else 0


def confirm_and_name_best(store: RunStore, task: Task, setup: TrainingSetup, episodes: int, eval_seed: int,
                          seed: int, seeds: int, executor: Any, progress: Progress,
                          trained: Callable[[int], None] | None = None) -> None:
    """Retrain the contenders for the run's best on ``seeds`` new seeds (``confirm_best``) and name the
    best by their mean: ``run.json`` keeps the record as ``confirm`` and, when a contender was
    judged, ``best`` with its ``confirmed`` mean. The caller holds the run's lock."""
    result = confirm_best(store, task, setup, setup.budget, setup.trainer, episodes, eval_seed, seed, seeds,
                          executor, progress, trained=trained)
    run = store.read_run()
    run["confirm"] = result
    if result and result["best"]:
        b = result["best"]
        row = next(r for r in result["contenders"]
                   if (r["generation"], r["candidate"]) == (b["generation"], b["candidate"]))
        run["best"] = {"generation": b["generation"], "candidate": b["candidate"], "fitness": row["selection_fitness"],
                       "confirmed": {"seeds": result["seeds"], "mean": row["mean"], "std": row["std"]}}
    store.write_run(run)
    progress.event(ConfirmFinished(confirm=result, best=run["best"]))


def confirm_best(store: RunStore, task: Task, setup: TrainingSetup, steps: int, trainer: str, episodes: int,
                 eval_seed: int, seed: int, seeds: int, executor: Any, progress: Progress | None = None,
                 trained: Callable[[int], None] | None = None) -> dict[str, Any] | None:
    """Retrain the run's contenders on ``seeds`` new training seeds; the record ``run.json`` keeps as
    ``confirm`` (per contender: the fitness of each seed, mean, std), with ``best`` the contender of the
    highest mean (ties: the higher selection fitness). None when fewer than two candidates succeeded:
    there is nothing to choose between. ``trained`` is told the env-steps of each training this call
    trained (not of those reused), for the run's time estimate. The caller holds the run's lock."""
    run = store.read_run()
    picks = contenders(run.get("generations") or [])
    if len(picks) < 2:
        return None
    trainings = [Retraining.of(_label(p), k, f"confirm/{gen_dirname(p['generation'])}-cand-{p['candidate']:02d}-seed{k}",
                               store.read_source(p["generation"], p["candidate"]), steps=steps, trainer=trainer,
                               train_seed=confirm_train_seed(seed, k), episodes=episodes, eval_seed=eval_seed)
                 for k in range(seeds) for p in picks]
    if progress is not None:
        progress.event(ConfirmStarted(contenders=picks, seeds=seeds, steps=steps))
    records = retrain(store, task, setup, trainings, executor, _Relay(progress, len(trainings), trained))
    rows = []
    for p in picks:
        res = seed_results(records, _label(p))
        rows.append(p | {"selection_fitness": p.pop("fitness"), "fitness": res["fitness"],
                         "failed": [{"seed_index": r["seed_index"], "status": r.get("status"), "error": r.get("error")}
                                    for r in res["records"] if r.get("status") != Stage.OK],
                         "mean": res["mean"], "std": res["std"]})
    judged = [r for r in rows if r["mean"] is not None]
    best = max(judged, key=lambda r: (r["mean"], r["selection_fitness"])) if judged else None
    return {"seeds": seeds, "train_seeds": [confirm_train_seed(seed, k) for k in range(seeds)], "steps": steps,
            "eval_seed": eval_seed, "episodes": episodes, "contenders": rows,
            "best": {"generation": best["generation"], "candidate": best["candidate"]} if best else None,
            "changed": best is not None and (best["generation"], best["candidate"]) != (rows[0]["generation"],
                                                                                    rows[0]["candidate"])}


def _label(p: dict) -> str:
    return f"{p['generation']}/{p['candidate']}"


class _Relay:
    """``retrain``'s per-training events as ``ConfirmRun`` events, with how many are done; the
    env-steps of each one trained here go to ``trained``."""

    def __init__(self, progress: Progress | None, total: int, trained: Callable[[int], None] | None = None):
        self.progress, self.total, self.done, self.trained = progress, total, 0, trained

    def event(self, event: Event) -> None:
        if not isinstance(event, FinalRun):
            return
        self.done += 1
        if self.progress is not None:
            self.progress.event(ConfirmRun(ref=event.method, seed_index=event.seed_index, status=event.status,
                                           fitness=event.fitness, env_steps=event.env_steps, error=event.error,
                                           reused=event.reused, done=self.done, total=self.total))
        if self.trained is not None and not event.reused and event.env_steps:
            self.trained(int(event.env_steps))
