"""Feedback in the terminal between generations (``rewardgen evolve --interactive``).

``ask_in_terminal`` shows what generation g did (trusted fitness per candidate, verdict, video path),
then asks for free text and for the best and worst candidate. Every answer may be empty (skip). Bad
answers are explained and asked again; end of input (no terminal, stdin closed) ends the questions
without error. Answers are stored with ``rewardgen.run.feedback`` and are used by generation g+1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewardgen.run import feedback
from rewardgen.run.feedback import FeedbackError
from rewardgen.safetext import one_line, term
from rewardgen.store import VIDEO_FILE, RunStore, RunStoreError, candidate_label, parse_candidate_label
from rewardgen.tables import Col, clip, fitted_table

MAX_TRIES = 3


def generation_rows(run_dir: Path, generation: int) -> list[dict[str, Any]]:
    """One row per candidate of the generation: candidate, status, fitness, error, video path or None."""
    store = RunStore.open(Path(run_dir))
    gen = store.read_generation(generation) or {"candidates": []}
    rows = []
    for c in range(len(gen.get("candidates", []))):
        m = store.read_metrics(generation, c) or {}
        video = store.cand_dir(generation, c) / VIDEO_FILE
        rows.append({"candidate": c, "status": m.get("status", "running"), "fitness": m.get("fitness"),
                     "error": m.get("error"), "video": str(video) if store.is_file(video) else None})
    return rows


def _show(run_dir: Path, generation: int, console: Any) -> list[dict]:
    rows = generation_rows(run_dir, generation)
    cells = []
    for r in rows:
        fit = "-" if r["fitness"] is None else f"{r['fitness']:.4g}"
        video = str(Path(r["video"]).relative_to(run_dir)) if r["video"] else None
        cells.append([candidate_label(generation, r["candidate"]), term(r["status"], markup=False), fit,
                      term(video, markup=False) if video else clip(one_line(r["error"], markup=False), 240)])
    cols = [Col("candidate"), Col("status", 1), Col("fitness", justify="right"), Col("video / error", 2, wrap=True)]
    console.print(fitted_table(cols, cells, console.width, title=f"generation {generation}: trusted fitness",
                               more=""))
    console.print(f"run directory: {term(run_dir)}", soft_wrap=True)
    return rows


def _ask(input_fn: Callable[[str], str], console: Any, prompt: str, store: Callable[[str], Any]) -> bool:
    """Ask until the answer is empty (False) or stored (True); EOFError passes through."""
    for _ in range(MAX_TRIES):
        answer = input_fn(prompt).strip()
        if not answer:
            return False
        try:
            store(answer)
            return True
        except FeedbackError as exc:
            console.print(f"[red]{term(exc)}[/red]")
    console.print("skipped")
    return False


def ask_in_terminal(run_dir: Path, generation: int, console: Any, input_fn: Callable[[str], str] = input) -> bool:
    """Show generation ``generation`` and ask for feedback; True if anything was stored."""
    run_dir = Path(run_dir)
    try:
        rows = _show(run_dir, generation, console)
    except (RunStoreError, OSError) as exc:
        console.print(f"[red]cannot show generation {generation}: {term(exc)}[/red]")
        return False
    finished = [r["candidate"] for r in rows if r["status"] != "running"]
    console.print("Your feedback goes to the proposer of the next generation. Press Enter to skip a question.")
    given = False
    choice: dict[str, int] = {}

    def pick(key: str) -> Callable[[str], None]:
        def check(answer: str) -> None:
            c = _number(answer, generation)
            if c not in finished:
                raise FeedbackError(f"choose one of {_choices(generation, finished)}")
            if key == "worst" and c == choice.get("best"):
                raise FeedbackError("the worst candidate must differ from the best")
            choice[key] = c
        return check

    try:
        given |= _ask(input_fn, console, "Feedback (free text): ", lambda text: feedback.add_text(run_dir, text))
        best_prompt = f"Best candidate of generation {generation} ({_choices(generation, finished)}): "
        if finished and _ask(input_fn, console, best_prompt, pick("best")):
            if len(finished) >= 2:
                _ask(input_fn, console, f"Worst candidate ({_choices(generation, finished)}): ", pick("worst"))
    except EOFError:
        console.print("(no more input)")
    try:
        if "best" in choice:
            feedback.add_preference(run_dir, generation, best=choice["best"], worst=choice.get("worst"))
            given = True
    except FeedbackError as exc:
        console.print(f"[red]{term(exc)}[/red]")
    return given


def _number(answer: str, generation: int) -> int:
    """A candidate of ``generation`` by its label (``g1c3``) or its number (``3``)."""
    parsed = parse_candidate_label(answer)
    if parsed is not None:
        if parsed[0] != generation:
            raise FeedbackError(f"{answer!r} is a candidate of generation {parsed[0]}, not of {generation}")
        return parsed[1]
    try:
        return int(answer)
    except ValueError:
        raise FeedbackError(f"{answer!r} is not a candidate (give its label, e.g. g{generation}c0, or its "
                            "number)") from None


def _choices(generation: int, cands: list[int]) -> str:
    return ", ".join(candidate_label(generation, c) for c in cands)


__all__ = ["ask_in_terminal", "generation_rows"]
