"""What a run tells whoever watches it: progress events, and the estimate of the time it will take."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Protocol



class Progress(Protocol):
    """Receives events as the run goes (the CLI shows them; tests may record them)."""

    def event(self, kind: str, **data: Any) -> None: ...


class SilentProgress:
    def event(self, kind: str, **data: Any) -> None:
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

    def event(self, kind: str, **data: Any) -> None:
        for sink in self.sinks:
            sink.event(kind, **data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sinks[0], name)


#: what a candidate is doing, by the event that last said so
_STAGES = {"candidate_started": "checking", "candidate_progress": "training", "evaluating": "evaluating",
           "slice_finished": "waiting", "rendering_video": "rendering its video"}


class LiveState:
    """The run's events folded into what someone watching it needs now: the phase, each candidate of
    the current generation (stage, env-steps against the budget it has now, fitness, fate), the
    generation's env-steps and time left (the terminal display's rule: wall time since the generation
    started over the env-steps trained, once the first slice is done) and the run's estimate.

    ``snapshot()`` is a JSON object with wall-clock times (``updated``, ``estimate.at``) so that a
    reader elsewhere can count the time left down."""

    def __init__(self) -> None:
        self.phase, self.generation, self.kind = "starting", None, "evolve"
        self.candidates: dict[int, dict[str, Any]] = {}
        self.plan_total, self.first_target, self.started = 0, 0, None
        self.estimate: dict[str, Any] | None = None
        self.confirm: dict[str, Any] | None = None

    def apply(self, kind: str, d: dict[str, Any]) -> None:
        g = d.get("generation")
        if kind == "run_started":
            self.kind = d.get("run_kind") or "evolve"
        elif kind == "estimate":
            self.estimate = {"seconds_left": d.get("seconds_left"), "basis": d.get("basis"), "at": time.time(),
                             "env_steps_planned": d.get("env_steps_planned"), "env_steps_done": d.get("env_steps_done")}
        elif kind in ("proposing", "llm_status"):
            self.phase, self.generation, self.candidates = "proposing", g, {}
        elif kind == "generation_started":
            self.phase, self.generation = "training", g
            plan = d.get("plan") or [{"target": d.get("steps") or 1, "candidates": len(d.get("pending") or [])}]
            prev, total = 0, 0
            for p in plan:
                total += int(p["candidates"]) * (int(p["target"]) - prev)
                prev = int(p["target"])
            self.plan_total, self.first_target, self.started = total, int(plan[0]["target"]), time.monotonic()
            pending = set(d.get("pending") or [])
            self.candidates = {c: {"candidate": c, "stage": "queued" if c in pending else "finished before",
                                   "steps": 0, "target": self.first_target, "rung": 0, "rungs": 1,
                                   "fitness": None, "status": None, "fate": None, "error": None}
                               for c in range(int(d.get("candidates") or 0))}
        elif g == self.generation and d.get("candidate") in self.candidates:
            cand = self.candidates[d["candidate"]]
            if cand.get("stage") == "finished" and kind == "rendering_video":
                return
            if kind in _STAGES:
                cand["stage"] = _STAGES[kind]
            if kind == "candidate_started":
                cand.update(rung=d.get("rung", 0), rungs=d.get("rungs", 1), target=d.get("target") or cand["target"])
                if d.get("rung"):
                    cand["stage"] = "continuing"
            elif kind == "candidate_progress":
                cand.update(steps=int(d.get("steps") or 0), target=d.get("total") or cand["target"],
                            rung=d.get("rung", 0), rungs=d.get("rungs", 1))
            elif kind == "slice_finished":
                cand["fitness"] = d.get("fitness")
                if d.get("rung", 0) >= d.get("rungs", 1) - 1:
                    cand["stage"] = "evaluated"
            elif kind == "candidate_finished":
                cand.update(stage="finished" if d.get("status") == "ok" else "failed", status=d.get("status"),
                            fitness=d.get("fitness"), fate=d.get("fate"), error=d.get("error"),
                            steps=int(d.get("env_steps") or cand["steps"]))
        elif kind == "rung_finished" and g == self.generation:
            for c in d.get("continuing") or []:
                if c in self.candidates:
                    self.candidates[c]["stage"] = "queued for the next rung"
        elif kind == "generation_finished" and g == self.generation:
            self.phase = "generation finished"
        elif kind == "confirm_started":
            self.phase, self.confirm = "confirming", {"done": 0, "total": None}
        elif kind == "confirm_run" and self.confirm is not None:
            self.confirm = {"done": d.get("done"), "total": d.get("total")}
        elif kind == "awaiting_feedback":
            self.phase = "awaiting feedback"
        elif kind == "run_finished":
            self.phase = "finished"

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
    FREQUENT = {"candidate_progress", "llm_status", "estimate"}

    def __init__(self, write: Callable[[Any], None], interval: float = 1.0):
        """``write(obj)`` writes ``obj`` as the run's ``live.json`` (atomically, through the run's files)."""
        self.write, self.interval = write, interval
        self.state = LiveState()
        self.lock = threading.Lock()
        self.last = 0.0
        self.broken = False

    def event(self, kind: str, **data: Any) -> None:
        with self.lock:
            self.state.apply(kind, data)
            now = time.monotonic()
            if self.broken or (kind in self.FREQUENT and now - self.last < self.interval):
                return
            self.last = now
            try:
                self.write(self.state.snapshot())
            except (OSError, TypeError, ValueError):
                self.broken = True
