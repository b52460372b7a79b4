"""What a run tells whoever watches it, as typed events: one small frozen dataclass per kind of news.

A sender builds an event (a misspelled field is a TypeError, and an error mypy reports); a receiver
dispatches on the event's type (``match``), so an event it does not know is one it chose to ignore,
never one it missed because of a spelling. ``kind`` names each type as the records of tests and the
live file spell it; ``fields()`` is its data as a plain dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """The base of every progress event."""

    kind: ClassVar[str] = "event"

    def fields(self) -> dict[str, Any]:
        """The event's data by field name (shallow: the values are the event's own)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# ----- the run
@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    run_dir: str
    task: str
    proposer: str | None
    config: dict[str, Any]
    run_kind: str = "evolve"
    steps: int | None = None


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    summary: dict[str, Any]


@dataclass(frozen=True)
class RunWarning(Event):
    """Something the user should know; the run goes on."""

    kind: ClassVar[str] = "warning"
    message: str


@dataclass(frozen=True)
class Calibrating(Event):
    """The first time estimate is being measured on this machine (``rewardgen.run.forecast``)."""

    kind: ClassVar[str] = "calibrating"
    task: str
    trainer: str


@dataclass(frozen=True)
class EstimateUpdate(Event):
    """The run's time left (``rewardgen.run.progress.Estimate.fields``)."""

    kind: ClassVar[str] = "estimate"
    seconds_left: float
    seconds_total: float
    basis: str
    env_steps_planned: int
    env_steps_done: int


@dataclass(frozen=True)
class AwaitingFeedback(Event):
    kind: ClassVar[str] = "awaiting_feedback"
    generation: int
    run_dir: str


# ----- a generation
@dataclass(frozen=True)
class Proposing(Event):
    kind: ClassVar[str] = "proposing"
    generation: int
    proposer: str


@dataclass(frozen=True)
class LLMStatus(Event):
    """The LLM's requests of a generation: in flight, answered, failed."""

    kind: ClassVar[str] = "llm_status"
    generation: int
    in_flight: int
    answered: int
    failed: int


@dataclass(frozen=True)
class GenerationStarted(Event):
    """``pending``: the candidates still to train; ``plan``: each rung's target and expected candidates."""

    kind: ClassVar[str] = "generation_started"
    generation: int
    candidates: int
    pending: list[int]
    steps: int
    schedule: str = "full"
    plan: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class RungFinished(Event):
    kind: ClassVar[str] = "rung_finished"
    generation: int
    rung: int
    rungs: int
    continuing: list[int]
    next_target: int


@dataclass(frozen=True)
class GenerationFinished(Event):
    kind: ClassVar[str] = "generation_finished"
    generation: int
    summary: dict[str, Any]
    best: dict[str, Any] | None
    report: str | None = None
    resumed: bool = False


# ----- a candidate
@dataclass(frozen=True)
class CandidateStarted(Event):
    """A slice starts: checking (rung 0) or continuing."""

    kind: ClassVar[str] = "candidate_started"
    generation: int
    candidate: int
    rung: int = 0
    rungs: int = 1
    target: int | None = None
    budget: int | None = None


@dataclass(frozen=True)
class CandidateProgress(Event):
    """Env-steps trained so far of the slice's ``total``."""

    kind: ClassVar[str] = "candidate_progress"
    generation: int
    candidate: int
    steps: int
    total: int
    budget: int | None = None
    rung: int = 0
    rungs: int = 1


@dataclass(frozen=True)
class Evaluating(Event):
    kind: ClassVar[str] = "evaluating"
    generation: int
    candidate: int


@dataclass(frozen=True)
class SliceFinished(Event):
    kind: ClassVar[str] = "slice_finished"
    generation: int
    candidate: int
    rung: int
    rungs: int
    fitness: float


@dataclass(frozen=True)
class CandidateFinished(Event):
    """A candidate's ``metrics.json`` was sealed: its status, trusted fitness and fate."""

    kind: ClassVar[str] = "candidate_finished"
    generation: int
    candidate: int
    status: str
    fitness: float | None
    error: str | None
    success: bool
    fate: str | None = None
    env_steps: int | None = None
    budget: int | None = None
    rungs: int | None = None


@dataclass(frozen=True)
class RenderingVideo(Event):
    kind: ClassVar[str] = "rendering_video"
    generation: int
    candidate: int


@dataclass(frozen=True)
class VideoReady(Event):
    kind: ClassVar[str] = "video_ready"
    generation: int
    candidate: int
    video: dict[str, Any]


# ----- confirmation and final evaluation
@dataclass(frozen=True)
class ConfirmStarted(Event):
    kind: ClassVar[str] = "confirm_started"
    contenders: list[dict[str, Any]]
    seeds: int
    steps: int


@dataclass(frozen=True)
class ConfirmRun(Event):
    """One confirmation training finished (or was reused): ``done`` of ``total``."""

    kind: ClassVar[str] = "confirm_run"
    ref: str
    seed_index: int
    status: str | None
    fitness: float | None
    env_steps: int | None
    error: str | None
    reused: bool
    done: int
    total: int


@dataclass(frozen=True)
class ConfirmFinished(Event):
    kind: ClassVar[str] = "confirm_finished"
    confirm: dict[str, Any] | None
    best: dict[str, Any] | None


@dataclass(frozen=True)
class FinalStarted(Event):
    kind: ClassVar[str] = "final_started"
    run_dir: str
    methods: list[str]
    seeds: int
    steps: int


@dataclass(frozen=True)
class FinalRun(Event):
    """One retraining of ``retrain`` finished (or was reused); ``record``: what ``final-run.json`` keeps."""

    kind: ClassVar[str] = "final_run"
    method: str
    seed_index: int
    status: str
    fitness: float | None
    error: str | None
    env_steps: int | None = None
    reused: bool = False
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FinalFinished(Event):
    kind: ClassVar[str] = "final_finished"
    result: dict[str, Any]


@dataclass(frozen=True)
class TaskEvent(Event):
    """An event of one task's run, passed on by a suite of runs (``rewardgen bench suite``)."""

    kind: ClassVar[str] = "task_event"
    task: str
    event: Event
