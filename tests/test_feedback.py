"""The feedback store: items, validation, applies_to, and no lost submissions under concurrency."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from rewardgen.run import feedback
from rewardgen.run.feedback import FeedbackError
from rewardgen.store import RunStore, atomic_write_json


def fake_run(runs_dir: Path, generations: int = 1, samples: int = 3, unfinished: tuple[tuple[int, int], ...] = (),
             proposed_only: int = 0, status: str = "finished", run_id: str = "20260101-000000-fake") -> Path:
    """A run directory as evolve leaves it (no training): ``generations`` finished generations of
    ``samples`` candidates, plus ``proposed_only`` generations whose proposals exist but nothing finished.
    Candidates listed in ``unfinished`` have no metrics.json."""
    store = RunStore.create(runs_dir, run_id, {
        "kind": "evolve", "status": status, "config": {"task": "inverted-pendulum-balance", "samples": samples,
                                                        "generations": generations + proposed_only, "steps": 2048},
        "task": {"id": "inverted-pendulum-balance"}, "generations": [], "best": None})
    run = store.read_run()
    for g in range(generations + proposed_only):
        cands = []
        for c in range(samples):
            d = store.cand_dir(g, c)
            parent = f"{g - 1}/0" if g else None
            (d).mkdir(parents=True, exist_ok=True)
            (d / "reward.py").write_text(f"import torch\n\ndef compute_reward(s):\n    w = {g}.{c}\n"
                                         f"    a = torch.ones_like(s.step) * w\n    return a, {{'alive': a}}\n")
            rec = {"proposer": "offline", "origin": "test", "parent": parent, "notes": [], "genome": None, "error": None}
            atomic_write_json(d / "proposal.json", rec)
            cands.append(rec)
        atomic_write_json(store.gen_dir(g) / "generation.json", {"generation": g, "proposer": "offline",
                                                                 "candidates": cands})
        if g >= generations:
            continue
        summary = []
        for c in range(samples):
            fitness = 0.1 * (g + 1) + 0.01 * c
            if (g, c) not in unfinished:
                curve = [{"step": 100 * (i + 1), "mean": float(i * (c + 1)), "min": 0.0, "max": 1.0} for i in range(5)]
                atomic_write_json(store.cand_dir(g, c) / "metrics.json", {
                    "generation": g, "candidate": c, "status": "ok", "error": None, "fitness": fitness,
                    "success": False, "training": {"components": {"alive": curve}, "total_reward": curve}})
            summary.append({"candidate": c, "status": "ok", "fitness": fitness, "success": False, "error": None})
        if not any(x[0] == g for x in unfinished):
            run["generations"].append({"generation": g, "candidates": summary,
                                       "best": {"candidate": samples - 1, "fitness": summary[-1]["fitness"]}})
    store.write_run(run)
    return store.path


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return fake_run(tmp_path / "runs")


def test_text_and_preference_are_stored_with_kind_time_and_generation(run: Path) -> None:
    a = feedback.add_text(run, "  keep the pole still  ")
    b = feedback.add_text(run, "too much wobbling", candidate="0/2")
    c = feedback.add_preference(run, 0, best=2, worst=0, ranking=[2, 1, 0])
    items = feedback.load(run)
    assert [x["id"] for x in items] == [1, 2, 3]
    assert items[0] == a and a["kind"] == "text" and a["text"] == "keep the pole still" and a["candidate"] is None
    assert a["generation"] == 0 and a["applies_to"] == 1 and a["created"] and a["time"] > 0
    assert b["candidate"] == "g0c2" and b["generation"] == 0  # stored by its label, whichever form was given
    assert c["kind"] == "preference" and (c["best"], c["worst"], c["ranking"]) == (2, 0, [2, 1, 0])
    data = json.loads((run / "feedback.json").read_text())
    assert data["version"] == 1 and len(data["items"]) == 3
    assert feedback.describe(items) == [
        "human feedback: keep the pole still", "human feedback about candidate g0c2: too much wobbling",
        "human preference in generation 0: best g0c2, worst g0c0, ranking g0c2 > g0c1 > g0c0"]


def test_for_generation_is_what_was_given_before_that_generation_was_proposed(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "runs", generations=1)
    early = feedback.add_text(run, "after generation 0")
    assert feedback.for_generation(run, 1) == [early] and feedback.for_generation(run, 0) == []
    # generation 1 gets proposed and runs: feedback given now is for generation 2
    run2 = fake_run(tmp_path / "runs2", generations=1, proposed_only=1)
    feedback.add_text(run2, "given while generation 1 trains")
    assert feedback.for_generation(run2, 1) == [] and len(feedback.for_generation(run2, 2)) == 1


def test_text_before_any_generation_finished_is_for_generation_zero(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "runs", generations=0, status="created")
    item = feedback.add_text(run, "make it balance")
    assert item["generation"] is None and item["applies_to"] == 0


@pytest.mark.parametrize("call, message", [
    (lambda r: feedback.add_text(r, ""), "empty"),
    (lambda r: feedback.add_text(r, "   \n "), "empty"),
    (lambda r: feedback.add_text(r, "x" * 4001), "limit is 4000"),
    (lambda r: feedback.add_text(r, "ok", candidate="0-1"), "bad candidate reference"),
    (lambda r: feedback.add_text(r, "ok", candidate="../../etc/passwd"), "bad candidate reference"),
    (lambda r: feedback.add_text(r, "ok", candidate="0/7"), "does not exist"),
    (lambda r: feedback.add_text(r, "ok", candidate="3/0"), "generation 3 does not exist"),
    (lambda r: feedback.add_preference(r, 0, best=1, worst=1), "same candidate"),
    (lambda r: feedback.add_preference(r, 0, best=5), "does not exist"),
    (lambda r: feedback.add_preference(r, 2, best=0), "does not exist"),
    (lambda r: feedback.add_preference(r, -1, best=0), ">= 0"),
    (lambda r: feedback.add_preference(r, "x", best=0), "must be a number"),
    (lambda r: feedback.add_preference(r, 0, best="a"), "must be a candidate number"),
    (lambda r: feedback.add_preference(r, 0, best=0, ranking=[0, 0]), "twice"),
    (lambda r: feedback.add_preference(r, 0, best=0, ranking=[1, 0]), "does not start with"),
    (lambda r: feedback.add_preference(r, 0, best=0, worst=1, ranking=[0, 1, 2]), "does not end with"),
    (lambda r: feedback.add_preference(r, 0, best=0, ranking=[0]), "at least two"),
])
def test_invalid_feedback_is_refused_and_nothing_is_written(run: Path, call, message: str) -> None:
    with pytest.raises(FeedbackError, match=message):
        call(run)
    assert not (run / "feedback.json").exists()


def test_unknown_run_and_unfinished_candidates_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FeedbackError, match="unknown run"):
        feedback.add_text(tmp_path / "nope", "hello")
    with pytest.raises(FeedbackError, match="unknown run"):
        feedback.load(tmp_path)
    run = fake_run(tmp_path / "runs", generations=1, unfinished=((0, 1),), status="running")
    with pytest.raises(FeedbackError, match="g0c1 has not finished"):
        feedback.add_text(run, "hm", candidate="0/1")
    with pytest.raises(FeedbackError, match="generation 0 has not finished"):
        feedback.add_preference(run, 0, best=0)
    assert isinstance(FeedbackError("x"), ValueError)


def test_awaiting_reads_the_run_status(tmp_path: Path) -> None:
    assert not feedback.awaiting(fake_run(tmp_path / "a"))
    assert feedback.awaiting(fake_run(tmp_path / "b", status="awaiting_feedback"))


def test_corrupt_feedback_file_is_reported_not_overwritten(run: Path) -> None:
    (run / "feedback.json").write_text("{not json")
    with pytest.raises(FeedbackError, match="corrupt feedback file"):
        feedback.add_text(run, "hello")
    assert (run / "feedback.json").read_text() == "{not json"


def test_concurrent_threads_lose_nothing(run: Path) -> None:
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        try:
            for j in range(5):
                if j % 2:
                    feedback.add_preference(run, 0, best=i % 3, worst=(i + 1) % 3)
                else:
                    feedback.add_text(run, f"thread {i} note {j}", candidate=f"0/{j % 3}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    items = feedback.load(run)
    assert len(items) == 40 and sorted(x["id"] for x in items) == list(range(1, 41))


def _submit_from_process(run: str, i: int) -> None:
    for j in range(5):
        feedback.add_text(Path(run), f"process {i} note {j}")


def test_concurrent_processes_lose_nothing(run: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_submit_from_process, args=(str(run), i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    texts = {x["text"] for x in feedback.load(run)}
    assert texts == {f"process {i} note {j}" for i in range(4) for j in range(5)}


# ----- the terminal prompt (rewardgen evolve --interactive)
def _console():
    from rich.console import Console

    return Console(record=True, width=120, force_terminal=False)


def _answers(*answers: str):
    it = iter(answers)

    def input_fn(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None
    return input_fn


def test_terminal_feedback_stores_text_and_one_preference(run: Path) -> None:
    from rewardgen.run.interactive import ask_in_terminal

    (run / "gen-000" / "cand-01" / "video.mp4").write_bytes(b"mp4")
    console = _console()
    assert ask_in_terminal(run, 0, console, _answers("keep it centred", "7", "x", "g0c2", "2", "0")) is True
    out = console.export_text()
    assert "generation 0" in out and "cand-01/video.mp4" in out and "0.12" in out
    assert "choose one of g0c0, g0c1, g0c2" in out and "must differ from the best" in out  # a label or a number
    items = feedback.load(run)
    assert [x["kind"] for x in items] == ["text", "preference"]
    assert items[0]["text"] == "keep it centred" and (items[1]["best"], items[1]["worst"]) == (2, 0)


def test_terminal_feedback_skips_on_empty_answers_and_eof(run: Path) -> None:
    from rewardgen.run.interactive import ask_in_terminal

    assert ask_in_terminal(run, 0, _console(), _answers("", "")) is False
    assert ask_in_terminal(run, 0, _console(), _answers()) is False  # no stdin at all
    assert ask_in_terminal(run, 0, _console(), _answers("", "1")) is True  # best only, then EOF
    assert [(x["kind"], x["best"], x["worst"]) for x in feedback.load(run)] == [("preference", 1, None)]
    assert ask_in_terminal(run.parent / "missing", 0, _console(), _answers("hi")) is False
