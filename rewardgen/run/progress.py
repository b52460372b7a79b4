"""What a run tells whoever watches it: progress events, and the estimate of the time it will take."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from rewardgen.run.events import (
    AwaitingFeedback,
    CandidateFinished,
    CandidateProgress,
    CandidateStarted,
    ConfirmRun,
    ConfirmStarted,
    EstimateUpdate,
    Evaluating,
    Event,
    GenerationFinished,
    GenerationStarted,
    LLMStatus,
    Proposing,
    RenderingVideo,
    RunFinished,
    RungFinished,
    RunStarted,
    SliceFinished,
)


class Progress(Protocol):
    """Receives events as the run goes (the CLI shows them; tests may record them)."""

    def event(self, event: Event) -> None: ...


class SilentProgress:
    def event(self, event: Event) -> None:
        pass


#: env-steps/s per core assumed when nothing could be measured (the calibration failed)
GUESSED_STEPS_PER_CORE = {"ppo": 10_000.0, "sb3": 1_500.0}
#: seconds per candidate besides its env-steps assumed when nothing could be measured
GUESSED_OVERHEAD_S = 1.5


class Estimate:
    """How long the run will take: planned env-steps and a forecast, refined as slices finish.

    Up front the duration is ``forecast_s`` (``rewardgen.run.forecast``: measured on this machine,
    ``basis`` "calibrated", or remembered from an earlier run, "remembered"), scaled to the env-steps
    still planned; without one (the calibration failed: ``basis`` "guess") it is
    ``GUESSED_STEPS_PER_CORE`` times the cores plus ``GUESSED_OVERHEAD_S`` per candidate. Once this
    process has trained something, the rate is what it measured: env-steps trained here over the wall
    time since it started (overheads included), ``basis`` "measured"."""

    def __init__(self, planned: int, done: int, candidates_left: int, trainer: str, cores: int,
                 forecast_s: float | None = None, forecast_basis: str = "calibrated"):
        self.planned, self.done, self.here = int(planned), int(done), 0
        self.done_at_start = int(done)
        self.candidates_left = candidates_left
        self.guess_rate = GUESSED_STEPS_PER_CORE.get(trainer, 1_500.0) * max(1, cores)
        self.forecast_s, self.forecast_basis = forecast_s, forecast_basis
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def add(self, env_steps: int) -> None:
        with self.lock:
            self.done += int(env_steps)
            self.here += int(env_steps)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self) -> EstimateUpdate:
        """The estimate now, as the event that tells it."""
        return EstimateUpdate(**self.fields())

    def fields(self) -> dict[str, Any]:
        with self.lock:
            elapsed = time.monotonic() - self.started
            left_steps = max(0, self.planned - self.done)
            if self.here > 0 and elapsed > 0:
                left, basis = left_steps * elapsed / self.here, "measured"
            elif self.forecast_s is not None:
                left, basis = self.forecast_s * left_steps / max(1, self.planned - self.done_at_start), self.forecast_basis
            else:
                left, basis = left_steps / self.guess_rate + self.candidates_left * GUESSED_OVERHEAD_S, "guess"
            return {"seconds_left": round(left, 1), "seconds_total": round(elapsed + left, 1), "basis": basis,
                    "env_steps_planned": self.planned, "env_steps_done": self.done}




class Fanout:
    """Sends every event to each sink in turn (the first one's other attributes, e.g. a display's
    ``console``, stay reachable through this object)."""

    def __init__(self, *sinks: Progress):
        self.sinks = sinks

    def event(self, event: Event) -> None:
        for sink in self.sinks:
            sink.event(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sinks[0], name)


#: what a candidate is doing, by the event that last said so
_STAGES: dict[type[Event], str] = {CandidateStarted: "checking", CandidateProgress: "training",
                                   Evaluating: "evaluating", SliceFinished: "waiting",
                                   RenderingVideo: "rendering its video"}


class LiveState:
    """The run's events folded into what someone watching it needs now: the phase, each candidate of
    the current generation (stage, env-steps against the budget it has now, fitness, fate), the
    generation's env-steps and time left (the terminal display's rule: wall time since the generation
    started over the env-steps trained, once the first slice is done) and the run's estimate.

    ``snapshot()`` is a JSON object with wall-clock times (``updated``, ``estimate.at``) so that a
    reader elsewhere can count the time left down."""

    def __init__(self) -> None:
        self.phase, self.kind = "starting", "evolve"
        self.generation: int | None = None
        self.candidates: dict[int, dict[str, Any]] = {}
        self.plan_total, self.first_target = 0, 0
        self.started: float | None = None
        self.estimate: dict[str, Any] | None = None
        self.confirm: dict[str, Any] | None = None

    def apply(self, ev: Event) -> None:
        match ev:
            case RunStarted():
                self.kind = ev.run_kind or "evolve"
            case EstimateUpdate():
                self.estimate = {"seconds_left": ev.seconds_left, "basis": ev.basis, "at": time.time(),
                                 "env_steps_planned": ev.env_steps_planned, "env_steps_done": ev.env_steps_done}
            case Proposing() | LLMStatus():
                self.phase, self.generation, self.candidates = "proposing", ev.generation, {}
            case GenerationStarted():
                self._generation_started(ev)
            case CandidateStarted() | CandidateProgress() | Evaluating() | SliceFinished() | RenderingVideo() \
                    | CandidateFinished() if ev.generation == self.generation and ev.candidate in self.candidates:
                self._candidate(ev, self.candidates[ev.candidate])
            case RungFinished() if ev.generation == self.generation:
                for c in ev.continuing or []:
                    if c in self.candidates:
                        self.candidates[c]["stage"] = "queued for the next rung"
            case GenerationFinished() if ev.generation == self.generation:
                self.phase = "generation finished"
            case ConfirmStarted():
                self.phase, self.confirm = "confirming", {"done": 0, "total": None}
            case ConfirmRun() if self.confirm is not None:
                self.confirm = {"done": ev.done, "total": ev.total}
            case AwaitingFeedback():
                self.phase = "awaiting feedback"
            case RunFinished():
                self.phase = "finished"

    def _generation_started(self, ev: GenerationStarted) -> None:
        self.phase, self.generation = "training", ev.generation
        plan = ev.plan or [{"target": ev.steps or 1, "candidates": len(ev.pending or [])}]
        prev, total = 0, 0
        for p in plan:
            total += int(p["candidates"]) * (int(p["target"]) - prev)
            prev = int(p["target"])
        self.plan_total, self.first_target, self.started = total, int(plan[0]["target"]), time.monotonic()
        pending = set(ev.pending or [])
        self.candidates = {c: {"candidate": c, "stage": "queued" if c in pending else "finished before",
                               "steps": 0, "target": self.first_target, "rung": 0, "rungs": 1,
                               "fitness": None, "status": None, "fate": None, "error": None}
                           for c in range(ev.candidates)}

    @staticmethod
    def _candidate(ev: Event, cand: dict[str, Any]) -> None:
        if cand.get("stage") == "finished" and isinstance(ev, RenderingVideo):
            return
        if type(ev) in _STAGES:
            cand["stage"] = _STAGES[type(ev)]
        match ev:
            case CandidateStarted():
                cand.update(rung=ev.rung, rungs=ev.rungs, target=ev.target or cand["target"])
                if ev.rung:
                    cand["stage"] = "continuing"
            case CandidateProgress():
                cand.update(steps=ev.steps, target=ev.total or cand["target"], rung=ev.rung, rungs=ev.rungs)
            case SliceFinished():
                cand["fitness"] = ev.fitness
                if ev.rung >= ev.rungs - 1:
                    cand["stage"] = "evaluated"
            case CandidateFinished():
                cand.update(stage="finished" if ev.status == "ok" else "failed", status=ev.status,
                            fitness=ev.fitness, fate=ev.fate, error=ev.error,
                            steps=int(ev.env_steps or cand["steps"]))

    def snapshot(self) -> dict[str, Any]:
        done = min(sum(int(c["steps"]) for c in self.candidates.values() if c["stage"] != "finished before"),
                   self.plan_total) if self.candidates else 0
        left = None
        if self.started is not None and self.phase == "training" and done >= max(self.first_target, 1):
            left = round((time.monotonic() - self.started) * (self.plan_total - done) / done, 1)
        return {"version": 1, "updated": time.time(), "phase": self.phase, "run_kind": self.kind,
                "generation": self.generation, "candidates": [self.candidates[c] for c in sorted(self.candidates)],
                "generation_env_steps": {"done": done, "planned": self.plan_total},
                "generation_seconds_left": left, "estimate": self.estimate, "confirm": self.confirm}


class LiveFile:
    """A progress sink that keeps ``LiveState`` in the run's ``live.json`` (atomic writes, at most one a
    second while candidates train; at once when a stage changes), for the web UI to show what the
    terminal shows. Writing is a convenience: a failure stops the writes, never the run."""

    #: events that only move a count: written at most once per ``interval``
    FREQUENT: tuple[type[Event], ...] = (CandidateProgress, LLMStatus, EstimateUpdate)

    def __init__(self, write: Callable[[Any], None], interval: float = 1.0):
        """``write(obj)`` writes ``obj`` as the run's ``live.json`` (atomically, through the run's files)."""
        self.write, self.interval = write, interval
        self.state = LiveState()
        self.lock = threading.Lock()
        self.last = 0.0
        self.broken = False

    def event(self, event: Event) -> None:
        with self.lock:
            self.state.apply(event)
            now = time.monotonic()
            if self.broken or (isinstance(event, self.FREQUENT) and now - self.last < self.interval):
                return
            self.last = now
            try:
                self.write(self.state.snapshot())
            except (OSError, TypeError, ValueError):
                self.broken = True
