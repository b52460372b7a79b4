"""Human feedback on a run: free text and preferences between candidates, in ``runs/<id>/feedback.json``.

Two kinds of item::

    {"id": 3, "kind": "text", "text": "the cheetah flips over; keep the torso level",
     "candidate": "0/1" | null, "generation": 0, "applies_to": 1, "created": "...", "time": 1763900000.0}
    {"id": 4, "kind": "preference", "generation": 0, "best": 1, "worst": 0, "ranking": [1, 2, 0] | null,
     "applies_to": 1, "created": "...", "time": ...}

``generation`` is the generation the item is *about*: the one named (a preference, or a text about
candidate "G/C"), else the last finished generation when it was given (None before any finished).

``applies_to`` is the generation that *uses* it: the first generation whose proposals had not been
written when the item was given (= the number of generations with a ``generation.json``). Typical
flow: generation g-1 finishes, the run waits (status ``awaiting_feedback``) or sits finished, the
human gives feedback, and generation g is proposed with ``for_generation(run_dir, g)``, i.e. every
item given after generation g-1's proposals were written and before generation g's were. Read it
immediately before calling the proposer: an item given while the proposer for g is running counts
for g too and would be missed.

Every change takes an exclusive ``fcntl`` lock on ``runs/<id>/feedback.lock``, re-reads the file and
writes it atomically (temp file + rename), so concurrent submissions from the web UI, the CLI and the
terminal prompt never lose one. Invalid input raises ``FeedbackError`` (a ``ValueError``) whose
message is for the user, and changes nothing.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rewardgen.errors import UserError
from rewardgen.runfiles import RunFiles
from rewardgen.store import (
    GENERATION_FILE,
    METRICS_FILE,
    RUN_FILE,
    CorruptFileError,
    RunStore,
    RunStoreError,
    as_label,
    candidate_label,
    parse_candidate_label,
)

FEEDBACK_FILE = "feedback.json"
LOCK_FILE = "feedback.lock"
MAX_TEXT = 4000
AWAITING = "awaiting_feedback"


class FeedbackError(UserError):
    """Feedback that cannot be stored (unknown run or candidate, empty or oversized text, ...)."""


# ----- run inspection
def _open(run_dir: Path) -> RunStore:
    try:
        return RunStore.open(Path(run_dir))
    except RunStoreError as exc:
        raise FeedbackError(f"unknown run: {exc}") from None


def finished_generations(run_dir: Path) -> list[int]:
    """Generations whose every candidate finished (those with a summary in run.json), ascending."""
    run = _open(run_dir).read_run()
    return sorted(int(g["generation"]) for g in run.get("generations", []) if isinstance(g, dict) and "generation" in g)


def proposed_generations(store: RunStore) -> int:
    """How many generations (0, 1, ... contiguous) have their proposals written."""
    n = 0
    while store.is_file(store.gen_dir(n) / GENERATION_FILE):
        n += 1
    return n


def parse_ref(ref: str) -> tuple[int, int]:
    """'g0c1' (or '0/1') -> (0, 1); FeedbackError for anything else."""
    parsed = parse_candidate_label(str(ref))
    if parsed is None:
        raise FeedbackError(f"bad candidate reference {ref!r}: expected a candidate label such as g0c1 "
                            "(generation 0, candidate 1; 0/1 works too)")
    return parsed


def _candidate_count(store: RunStore, generation: int) -> int:
    try:
        gen = store.read_generation(generation)
    except RunStoreError as exc:
        raise FeedbackError(str(exc)) from None
    if gen is None:
        raise FeedbackError(f"generation {generation} does not exist in run {store.path.name}")
    return len(gen.get("candidates", []))


def _check_candidate(store: RunStore, generation: int, candidate: Any, what: str = "candidate") -> int:
    if isinstance(candidate, bool) or not isinstance(candidate, int):
        try:
            candidate = int(str(candidate).strip())
        except ValueError:
            raise FeedbackError(f"{what} must be a candidate number, got {candidate!r}") from None
    n = _candidate_count(store, generation)
    if not 0 <= candidate < n:
        raise FeedbackError(f"{what} {candidate_label(generation, candidate)} does not exist "
                            f"(generation {generation} has candidates 0..{n - 1})")
    if not store.is_file(store.cand_dir(generation, candidate) / METRICS_FILE):
        raise FeedbackError(f"{what} {candidate_label(generation, candidate)} has not finished yet")
    return candidate


def _check_generation(store: RunStore, generation: Any) -> int:
    if isinstance(generation, bool) or not isinstance(generation, int):
        try:
            generation = int(str(generation).strip())
        except ValueError:
            raise FeedbackError(f"generation must be a number, got {generation!r}") from None
    if generation < 0:
        raise FeedbackError(f"generation must be >= 0, got {generation}")
    _candidate_count(store, generation)
    if generation not in finished_generations(store.path):
        raise FeedbackError(f"generation {generation} has not finished yet")
    return generation


# ----- storage
@contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    try:  # a regular file of the run's own, never through a link (RunFiles.open_lock)
        fd = RunFiles(Path(run_dir)).open_lock(LOCK_FILE)
    except CorruptFileError as exc:
        raise FeedbackError(str(exc)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _read(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / FEEDBACK_FILE
    try:
        raw = RunFiles(Path(run_dir)).read_json(FEEDBACK_FILE)
    except CorruptFileError as exc:
        raise FeedbackError(f"corrupt feedback file {path}: {exc.reason}") from None
    if raw is None:
        return []
    items = raw.get("items") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise FeedbackError(f"corrupt feedback file {path}: no 'items' list")
    return [x for x in items if isinstance(x, dict)]


def _append(store: RunStore, item: dict) -> dict:
    with _locked(store.path):
        items = _read(store.path)
        item = {"id": max((int(x.get("id", 0)) for x in items), default=0) + 1, **item,
                "applies_to": proposed_generations(store),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "time": time.time()}
        store.write_json(FEEDBACK_FILE, {"version": 1, "items": [*items, item]})
    return item


# ----- public API
def add_text(run_dir: Path, text: str, candidate: str | None = None) -> dict:
    """Store free-text feedback, optionally about candidate ``"G/C"``; returns the stored item."""
    store = _open(run_dir)
    if not isinstance(text, str) or not text.strip():
        raise FeedbackError("feedback text is empty")
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise FeedbackError(f"feedback text is {len(text)} characters; the limit is {MAX_TEXT}")
    if "\x00" in text:
        raise FeedbackError("feedback text contains a NUL character")
    if candidate is not None and str(candidate).strip():
        g, c = parse_ref(candidate)
        _check_candidate(store, g, c)
        ref: str | None = candidate_label(g, c)
        about: int | None = g
    else:
        done = finished_generations(store.path)
        ref, about = None, (done[-1] if done else None)
    return _append(store, {"kind": "text", "text": text, "candidate": ref, "generation": about})


def add_preference(run_dir: Path, generation: int, best: int, worst: int | None = None,
                   ranking: list[int] | None = None) -> dict:
    """Store which candidate of a finished generation is best (and optionally worst, or a full ranking)."""
    store = _open(run_dir)
    generation = _check_generation(store, generation)
    best = _check_candidate(store, generation, best, "best")
    if worst is not None:
        worst = _check_candidate(store, generation, worst, "worst")
        if worst == best:
            raise FeedbackError(f"best and worst are the same candidate ({generation}/{best})")
    if ranking is not None:
        ranking = [_check_candidate(store, generation, c, "ranked candidate") for c in ranking]
        if len(set(ranking)) != len(ranking):
            raise FeedbackError(f"ranking {ranking} names a candidate twice")
        if len(ranking) < 2:
            raise FeedbackError("a ranking needs at least two candidates")
        if ranking[0] != best:
            raise FeedbackError(f"ranking {ranking} does not start with the best candidate {best}")
        if worst is not None and ranking[-1] != worst:
            raise FeedbackError(f"ranking {ranking} does not end with the worst candidate {worst}")
    return _append(store, {"kind": "preference", "generation": generation, "best": best, "worst": worst,
                           "ranking": ranking})


def load(run_dir: Path) -> list[dict]:
    """Every feedback item of the run, oldest first; a candidate it is about named by its label
    (``g0c1``; runs made before labels stored ``0/1``)."""
    store = _open(run_dir)
    items = [x | {"candidate": as_label(x["candidate"])} if x.get("candidate") else x for x in _read(store.path)]
    return sorted(items, key=lambda x: (x.get("time", 0), x.get("id", 0)))


def for_generation(run_dir: Path, generation: int) -> list[dict]:
    """The items generation ``generation`` should use: given after generation-1's proposals were
    written and before ``generation``'s were (``applies_to == generation``), oldest first."""
    return [x for x in load(run_dir) if x.get("applies_to") == generation]


def awaiting(run_dir: Path) -> bool:
    """Whether the run waits for feedback (run.json status ``awaiting_feedback``, set by interactive mode)."""
    return _open(run_dir).read_run().get("status") == AWAITING


def _label(g: Any, c: Any) -> str:
    """A stored preference's candidate as its label (``g1c3``); as stored if not numbers."""
    return candidate_label(g, c) if isinstance(g, int) and isinstance(c, int) else f"{g}/{c}"


def describe(items: list[dict]) -> list[str]:
    """One plain line per item, for prompts and terminal output."""
    lines = []
    for x in items:
        if x.get("kind") == "text":
            about = f" about candidate {as_label(x['candidate'])}" if x.get("candidate") else ""
            lines.append(f"human feedback{about}: {x.get('text', '')}")
        elif x.get("kind") == "preference":
            g = x.get("generation")
            line = f"human preference in generation {g}: best {_label(g, x.get('best'))}"
            if x.get("worst") is not None:
                line += f", worst {_label(g, x['worst'])}"
            if x.get("ranking"):
                line += ", ranking " + " > ".join(_label(g, c) for c in x["ranking"])
            lines.append(line)
    return lines


__all__ = [
    "AWAITING",
    "FEEDBACK_FILE",
    "MAX_TEXT",
    "RUN_FILE",
    "FeedbackError",
    "add_preference",
    "add_text",
    "awaiting",
    "describe",
    "finished_generations",
    "for_generation",
    "load",
    "parse_ref",
]
