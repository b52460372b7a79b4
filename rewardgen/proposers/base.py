"""The proposer interface: given a task and what earlier generations learned, write K rewards."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardgen.contract.schema import Schema
from rewardgen.proposers.taskfacts import TrainingPlan
from rewardgen.store import candidate_label
from rewardgen.tasks.spec import Task


@dataclass
class CandidateRecord:
    """One finished candidate as proposers see it: code, verdict, trusted fitness, statistics."""

    generation: int
    candidate: int
    source: str
    status: str  # "ok" or the failing stage
    fitness: float | None
    error: str | None = None
    proposal: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    #: each trusted evaluation of its schedule's slices, in order: ``{"env_steps", "fitness",
    #: "episodes"}`` (env-steps trained so far, trusted fitness or None, each episode's fitness)
    rungs: list[dict[str, Any]] = field(default_factory=list)
    #: how its training ended: "final" (trained the whole budget), "eliminated", "failed"
    fate: str | None = None
    #: its trusted fitness when retrained from scratch on other seeds (the run's confirmation), if any
    retrained: list[float] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return candidate_label(self.generation, self.candidate)

    @property
    def label(self) -> str:
        """How people and LLMs read its name (``store.candidate_label``): g1c3."""
        return candidate_label(self.generation, self.candidate)

    @property
    def env_steps(self) -> int | None:
        """Env-steps its policy had trained when last evaluated (None when it never trained)."""
        done = [r["env_steps"] for r in self.rungs if r.get("fitness") is not None]
        return int(done[-1]) if done else None


@dataclass
class ProposalContext:
    """Everything a proposer may use. ``history[g]`` holds generation g's candidates."""

    task: Task
    schema: Schema
    generation: int
    samples: int
    seed: int
    history: list[list[CandidateRecord]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    #: the run directory (the LLM proposer keeps its response cache there)
    run_dir: Path | None = None
    #: where requests and responses of this generation are recorded
    record_dir: Path | None = None
    #: the candidate check (static + sandboxed smoke run): source -> CheckVerdict
    check: Callable[[str], Any] | None = None
    #: progress events for the user: ``event("warning", message=...)``, ``event("llm_status", ...)``
    event: Callable[..., None] | None = None
    #: how the run trains and compares candidates (budget, trainer, schedule, evaluation), for the prompt
    plan: TrainingPlan | None = None

    def ranked(self) -> list[CandidateRecord]:
        """All successful candidates so far, best trusted fitness first."""
        ok = [(c.fitness, c) for gen in self.history for c in gen if c.status == "ok" and c.fitness is not None]
        return [c for _, c in sorted(ok, key=lambda pair: pair[0], reverse=True)]


@dataclass
class Proposal:
    """A reward source plus where it came from (recorded in ``proposal.json``)."""

    source: str
    origin: str
    parent: str | None = None
    notes: list[str] = field(default_factory=list)
    genome: list[dict[str, Any]] | None = None
    error: str | None = None  # set when the proposer failed to produce usable code for this slot
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, proposer: str) -> dict[str, Any]:
        """What ``proposal.json`` and ``generation.json`` keep about this proposal."""
        return {"proposer": proposer, "origin": self.origin, "parent": self.parent, "notes": self.notes,
                "genome": self.genome, "error": self.error, **self.extra}


class Proposer(ABC):
    #: short id used in run.json and on the command line
    name: str = "proposer"
    #: what every output calls it
    label: str = "proposer"

    @abstractmethod
    def propose(self, ctx: ProposalContext) -> list[Proposal]:
        """Return exactly ``ctx.samples`` proposals for generation ``ctx.generation``."""
