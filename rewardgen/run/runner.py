"""Running a generation's schedule (``rewardgen.run.schedule`` decides, this trains): rung after rung,
the candidates the schedule names train their next slice in a pool of workers, and each candidate's
fate is sealed when the schedule ends it.

Every decision is recomputed from the ``rung-R.json`` records, so a resumed run takes the same ones
and trains only the slices whose record is missing.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rewardgen import interrupt
from rewardgen.run.config import EvolveConfig
from rewardgen.run.events import RungFinished
from rewardgen.run.executors import default_candidate_workers
from rewardgen.run.progress import Progress
from rewardgen.run.schedule import Evaluation, adaptive_decision, rung_fractions, survivors
from rewardgen.run.slices import CandidateSlices
from rewardgen.store import Fate, Stage
from rewardgen.tasks.spec import Task


class ScheduleRunner:
    """Trains one generation of ``n`` candidates under the run's schedule (``full``, ``halving`` or
    ``adaptive``) through ``slices``; ``executor`` says how many threads each training job gets."""

    def __init__(self, config: EvolveConfig, task: Task, steps: int, slices: CandidateSlices, executor: Any,
                 progress: Progress):
        self.config, self.task, self.steps, self.slices = config, task, steps, slices
        self.executor, self.progress = executor, progress

    def run(self, g: int, n: int) -> None:
        if self.config.schedule == "adaptive" and n > 1:
            self._adaptive(g, n)
        else:
            self._rungs(g, n, rung_fractions(n, self.config.schedule))

    def _rungs(self, g: int, n: int, fractions: list[float]) -> None:
        """Train every candidate to ``fractions[0]`` of the budget, keep the share ``HALVING_RUNGS`` says
        (the best 3/8, then a third of those, by trusted fitness), continue them to the next fraction, ...
        A candidate's fate is sealed in ``metrics.json`` when it fails, is eliminated, or finishes the
        last rung."""
        participants = list(range(n))
        for r, fraction in enumerate(fractions):
            target = max(1, round(self.steps * fraction))
            self._train_slices(g, n, r, {c: target for c in participants}, {c: len(fractions) for c in participants})
            records = {c: self.slices.rung(g, c, r) or {} for c in participants}
            ok = sorted((c for c in participants if records[c]["status"] == Stage.OK),
                        key=lambda c: (-Evaluation.from_rung(records[c]).value, c))
            for c in participants:
                if records[c]["status"] != Stage.OK:
                    self.slices.seal(g, c, r, Fate.FAILED)
            if r == len(fractions) - 1:
                for c in ok:
                    self.slices.seal(g, c, r, Fate.FINAL)
                return
            keep = ok[: survivors(len(ok), r)] if ok else []
            for c in ok[len(keep):]:
                self.slices.seal(g, c, r, Fate.ELIMINATED)
            self.progress.event(RungFinished(generation=g, rung=r, rungs=len(fractions), continuing=keep,
                                             next_target=max(1, round(self.steps * fractions[r + 1]))))
            participants = keep
            if not participants:
                return

    def _adaptive(self, g: int, n: int) -> None:
        """Rung after rung, ``adaptive_decision`` picks who trains the next increment from the trusted
        fitness of the rungs before it."""
        longest = len(rung_fractions(n, "adaptive")) + 2  # every rung adds an increment: a safe bound
        for r in range(longest + 1):
            history = [[Evaluation.from_rung(rung) for q in range(r) if (rung := self.slices.rung(g, c, q))]
                       for c in range(n)]
            decision = adaptive_decision(history, self.steps, scale=self.task.success_threshold)
            for c in decision.failed:
                self.slices.seal(g, c, r - 1, Fate.FAILED)
            for c in decision.dropped:
                self.slices.seal(g, c, r - 1, Fate.ELIMINATED)
            for c in decision.finished:
                self.slices.seal(g, c, r - 1, Fate.FINAL)
            if not decision.train:
                return
            if r == longest:
                raise RuntimeError(f"adaptive schedule of generation {g} did not finish in {longest} rungs")
            if r:
                self.progress.event(RungFinished(generation=g, rung=r - 1, rungs=longest,
                                                 continuing=sorted(decision.train),
                                                 next_target=max(decision.train.values())))
            # the slice that reaches the full budget is its candidate's last: no state kept, video queued
            targets = {c: decision.train[c] for c in sorted(decision.train)}
            self._train_slices(g, n, r, targets, {c: r + 1 if t >= self.steps else longest for c, t in targets.items()})

    def _train_slices(self, g: int, n: int, r: int, targets: dict[int, int], rungs: dict[int, int]) -> None:
        """Train rung ``r``'s slices still missing (candidate -> target env-steps, its rung count), in
        the order of ``targets``. ``workers`` slices train at once; a slice that finished training gives its slot
        to the next one while its trusted evaluation runs (one more thread per slot for that)."""
        pending = [c for c in targets if self.slices.rung(g, c, r) is None]
        if not pending:
            return
        workers = n if self.config.executor == "ray" else (self.config.workers or default_candidate_workers(n))
        slots = threading.BoundedSemaphore(min(workers, len(pending)))
        with ThreadPoolExecutor(max_workers=min(2 * workers, len(pending)), thread_name_prefix="candidate") as pool:
            threads = self.executor.cpu_threads(min(workers, len(pending)))
            futures = [pool.submit(self.slices.train, g, c, r, targets[c], rungs[c], threads, slots) for c in pending]
            for fut in futures:
                interrupt.wait(fut)
