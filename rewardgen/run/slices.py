"""A candidate under evolve's schedule: each slice of its training is one ``Step`` recorded in
``rung-R.json``, and its fate is sealed from those records in ``metrics.json``.

A slice continues the policy of the slice before it (``state-R.npz``, kept only while the candidate
lives); the first slice carries the smoke check, unless the proposer checked the same source already.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewardgen.contract.job import SmokeCheck
from rewardgen.evaluate.hacking import hacking_alarm
from rewardgen.procs.check import CHECK_LIMITS, CheckVerdict, jail_flags
from rewardgen.run.config import EvolveConfig
from rewardgen.run.events import (
    CandidateFinished,
    CandidateProgress,
    CandidateStarted,
    Evaluating,
    RunWarning,
    SliceFinished,
)
from rewardgen.run.progress import Progress
from rewardgen.run.schedule import merge_training_stats
from rewardgen.run.step import Step, StepOutcome, check_record
from rewardgen.run.videos import VideoQueue
from rewardgen.store import (
    METRICS_FILE,
    TRAIN_LOG,
    CandidateMetrics,
    Fate,
    RungRecord,
    RunStore,
    Stage,
    cand_dirname,
    candidate_label,
    gen_dirname,
    rung_file,
    state_file,
)


def source_key(source: str) -> str:
    """What a smoke check of ``source`` is remembered under."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


class Slot:
    """Holds one of ``sem``'s slots from ``with`` until ``release`` or the block's end (once)."""

    def __init__(self, sem: threading.Semaphore | None):
        self.sem, self.held = sem, False

    def __enter__(self) -> Slot:
        if self.sem is not None:
            self.sem.acquire()
            self.held = True
        return self

    def release(self) -> None:
        if self.held and self.sem is not None:
            self.held = False
            self.sem.release()

    def __exit__(self, *exc: Any) -> None:
        self.release()


class CandidateSlices:
    """Trains, records and seals the slices of a run's candidates.

    ``checked``: the proposer's smoke checks by ``source_key`` (verdict, seconds), so that a source is
    not checked twice; ``trained``: told the env-steps each slice trained (the run's time estimate)."""

    def __init__(self, store: RunStore, config: EvolveConfig, steps: int, step: Step, progress: Progress,
                 videos: VideoQueue, checked: dict[str, tuple[CheckVerdict, float]],
                 trained: Callable[[int], None]):
        self.store, self.config, self.steps, self.step = store, config, steps, step
        self.progress, self.videos, self.checked, self.trained = progress, videos, checked, trained

    def rung(self, g: int, c: int, r: int) -> RungRecord | None:
        return self.store.read_json(self.store.cand_dir(g, c) / rung_file(r))

    def train(self, g: int, c: int, r: int, target: int, rungs: int, cpu_threads: int = 1,
              slots: threading.Semaphore | None = None) -> None:
        """Check (first rung only, folded into the training), train up to ``target`` env-steps,
        evaluate; record ``rung-r.json``. ``cpu_threads``: the training job's share of the cores
        while this rung's slices run together; ``slots``: held while checking and training only."""
        with Slot(slots) as slot:
            self._train(g, c, r, target, rungs, cpu_threads, slot)

    def _train(self, g: int, c: int, r: int, target: int, rungs: int, cpu_threads: int, slot: Slot) -> None:
        d = self.store.cand_dir(g, c)
        source = self.store.read_source(g, c)
        seed = self.config.seed * 1000 + g * 100 + c
        record: RungRecord = {"rung": r, "target_steps": target}

        def fail(status: str, error: str | None, **more: Any) -> None:
            self.store.write_json(d / rung_file(r), record | {"status": status, "error": error, "fitness": None} | more)

        self.progress.event(CandidateStarted(generation=g, candidate=c, rung=r, rungs=rungs, target=target,
                                             budget=self.steps))
        if r == 0:
            proposal_error = self._proposal_error(g, c)
            if proposal_error:
                return fail(Stage.PROPOSAL, proposal_error)
            known = self.checked.get(source_key(source))  # the proposer checked this source already
            if known is not None:
                verdict, seconds = known
                record["check"] = check_record(verdict, seconds, "proposer")
                if not verdict.ok:
                    self.store.write_text(d / TRAIN_LOG, verdict.log)
                    return fail(verdict.stage, verdict.error, traceback="\n".join(verdict.details) or verdict.error)
        previous = self.rung(g, c, r - 1) if r > 0 else None
        done_steps = int(previous["env_steps_total"]) if previous else 0
        steps, resume = max(1, target - done_steps), None
        saved_state = d / state_file(r - 1)
        if previous and self.store.is_file(saved_state):
            resume = base64.b64encode(self.store.read_bytes(saved_state)).decode()
        elif previous:  # the trainer gave no resumable state: train this rung's budget from scratch
            steps, done_steps = target, 0
            record["restarted"] = "the trainer returned no resumable state; this rung trained from scratch"
        check = None
        if r == 0 and "check" not in record:  # the smoke check, folded into the start of the training
            check = SmokeCheck(steps=self.config.check_steps, seed=seed, num_envs=4, seconds=CHECK_LIMITS.wall_seconds)
        job = self.step.setup.job(source, seed + 7919 * r, steps, cpu_threads, resume, check)

        def on_event(ev: dict) -> None:
            self.progress.event(CandidateProgress(generation=g, candidate=c, steps=done_steps + ev.get("steps", 0),
                                                  total=target, budget=self.steps, rung=r, rungs=rungs))

        on_event({"steps": 0})  # checked (or continuing): training now
        res = self.step.submit(job, on_event).result()

        def trained(outcome: StepOutcome) -> None:
            """Training is over: keep its state, count its env-steps, free the slot for the next slice."""
            self._keep_check(record, outcome)
            result = outcome.output
            if res.resume_state and r < rungs - 1:
                self.store.write_bytes(d / state_file(r), res.resume_state)
            extra = result.get("extra") or {}
            spent = int(extra.get("slice_env_steps") or 0) if job.resume is not None else int(result.get("env_steps") or 0)
            self.trained(spent)
            record.update({"training": result.get("stats", {}), "extra": result.get("extra") or {},
                           "env_steps": spent, "env_steps_total": done_steps + spent,
                           "train_seconds": round(res.seconds, 2), "trainer": result.get("trainer"),
                           "env_steps_per_second": round(float(extra.get("env_steps_per_second") or 0)
                                                         or spent / max(result.get("seconds") or 1e-9, 1e-9), 1)})
            slot.release()  # the next slice may train while this one is evaluated
            if r == rungs - 1 and self.config.video:  # its last policy: the video renders beside the evaluation
                self.videos.queue(g, c)
            self.progress.event(Evaluating(generation=g, candidate=c))

        outcome = self.step.finish(d, job, res, f"--- rung {r}: training to {target} env-steps ---\n", append=r > 0,
                                   trained=trained)
        self._keep_check(record, outcome)
        if outcome.check is not None and not outcome.check.ok:
            return fail(outcome.status, outcome.error,
                        traceback="\n".join(outcome.check.details) or outcome.check.error)
        if not outcome.trained:
            return fail(outcome.status, outcome.error, traceback=res.traceback, train_seconds=round(res.seconds, 2))
        if outcome.evaluation is None:
            return fail(Stage.EVALUATION, outcome.error, **{k: record[k] for k in ("training", "env_steps_total")})
        record["evaluation_seconds"] = outcome.evaluation_seconds
        self.store.write_json(d / rung_file(r), record | {"status": Stage.OK, "error": None,
                                                          "fitness": outcome.fitness, "evaluation": outcome.evaluation})
        self.progress.event(SliceFinished(generation=g, candidate=c, rung=r, rungs=rungs,
                                          fitness=outcome.evaluation["fitness"]))

    @staticmethod
    def _keep_check(record: RungRecord, outcome: StepOutcome) -> None:
        """The worker's verdict on the smoke check, and what the reward tried in its jail this slice."""
        res = outcome.result
        if outcome.check is not None:
            record["check"] = check_record(outcome.check, (res.check or {}).get("seconds", res.seconds),
                                           "training worker")
        if outcome.check is not None and not outcome.check.ok:
            return
        if jail_flags(res.jail):  # (verdict flags)
            record["flags"] = jail_flags(res.jail)

    def _proposal_error(self, g: int, c: int) -> str | None:
        """Why the proposer could not produce this candidate (e.g. an LLM answer without code)."""
        gen = self.store.read_generation(g) or {}
        cands = gen.get("candidates", [])
        return cands[c].get("error") if c < len(cands) else None

    # ----- sealing: the candidate's fate, once
    def seal(self, g: int, c: int, last: int, fate: Fate) -> None:
        """Write the candidate's ``metrics.json`` from its rung records (once)."""
        if self.store.read_metrics(g, c) is not None:
            return
        rungs = [self.rung(g, c, r) or {} for r in range(last + 1)]
        final = rungs[-1]
        metrics: CandidateMetrics = {"generation": g, "candidate": c, "status": final["status"],
                                     "error": final.get("error"), "fitness": final.get("fitness"),
                                     "schedule": self.config.schedule, "fate": fate, "rungs": len(rungs),
                                     "check": rungs[0].get("check")}
        for key in ("traceback", "evaluation", "extra", "trainer", "env_steps_per_second", "train_seconds"):
            if key in final:
                metrics[key] = final[key]
        trained = [x for x in rungs if x.get("training")]
        if trained:
            metrics["training"] = merge_training_stats(trained)
            metrics["hacking"] = hacking_alarm(metrics["training"])
        flags = list(dict.fromkeys(f for x in rungs for f in [*((x.get("check") or {}).get("flags") or []),
                                                               *(x.get("flags") or [])]))
        if flags:
            metrics["flags"] = flags
            for flag in flags:
                self.progress.event(RunWarning(message=f"{candidate_label(g, c)}: the reward {flag}"))
        metrics["env_steps"] = max((x.get("env_steps_total", 0) for x in rungs), default=0)
        metrics["steps_spent"] = sum(x.get("env_steps", 0) for x in rungs)
        if final["status"] == Stage.OK:
            metrics["success"] = bool(final["evaluation"]["success"])
        self._write_metrics(self.store.cand_dir(g, c), metrics)
        if final["status"] == Stage.OK and self.config.video:
            self.videos.queue(g, c)

    def _write_metrics(self, d: Path, metrics: CandidateMetrics) -> None:
        for stale in self.store.listdir(d, "state-*.npz"):  # resumable states: only while a candidate lives
            self.store.unlink(d / stale)
        self.store.write_json(d / METRICS_FILE, metrics)
        if metrics.get("training"):
            try:
                from rewardgen.inspect.tensorboard import write_scalars

                folder = f"{gen_dirname(metrics['generation'])}-{cand_dirname(metrics['candidate'])}"
                with self.store.folder_path(self.store.path / "tensorboard" / folder) as logdir:
                    write_scalars(Path(logdir), dict(metrics))
            except Exception as exc:
                self.progress.event(RunWarning(message=f"TensorBoard scalars not written: {exc}"))
        self.progress.event(CandidateFinished(
            generation=metrics["generation"], candidate=metrics["candidate"], status=metrics["status"],
            fitness=metrics.get("fitness"), error=metrics.get("error"), success=bool(metrics.get("success")),
            fate=metrics.get("fate"), env_steps=metrics.get("env_steps"), budget=self.steps, rungs=metrics.get("rungs")))


__all__ = ["CandidateSlices", "Slot", "source_key"]
