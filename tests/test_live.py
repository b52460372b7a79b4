"""live.json: the events of a real run folded per candidate (``rewardgen.run.progress.LiveState``), as the
web UI shows them. The run is conftest's ``small_real_run`` (3 candidates x 2 generations under halving,
one worker, so candidates queue), whose events the terminal display also saw."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_live_state_follows_each_candidate_of_a_real_run(small_real_run) -> None:
    from rewardgen.run.progress import LiveState

    run_dir, progress = small_real_run
    state = LiveState()
    seen: dict[tuple[int, int], list[str]] = {}
    lefts, counts = [], []
    for event in progress.received:
        state.apply(event)
        snap = json.loads(json.dumps(state.snapshot()))  # what live.json holds: plain JSON
        for c in snap["candidates"]:
            stages = seen.setdefault((snap["generation"], c["candidate"]), [])
            if not stages or stages[-1] != c["stage"]:
                stages.append(c["stage"])
            assert 0 <= c["steps"] and c["target"] > 0
        if snap["generation_seconds_left"] is not None:
            lefts.append(snap["generation_seconds_left"])
        counts.append(snap["generation_env_steps"]["done"])
    run = json.loads((run_dir / "run.json").read_text())
    for gen in run["generations"]:
        for cand in gen["candidates"]:
            stages = seen[(gen["generation"], cand["candidate"])]
            # queued while another trains (one worker), then checked, trained, evaluated, and sealed
            assert stages[0] == "queued" and "training" in stages and "evaluating" in stages, stages
            assert stages[-1] == ("finished" if cand["status"] == "ok" else "failed"), stages
            metrics = json.loads((run_dir / f"gen-{gen['generation']:03d}" / f"cand-{cand['candidate']:02d}"
                                  / "metrics.json").read_text())
            # a candidate goes on to a next rung exactly when it trained more than one
            assert ("queued for the next rung" in stages) == (metrics["rungs"] > 1), (stages, metrics["rungs"])
    assert lefts and all(x >= 0 for x in lefts)
    assert max(counts) > 0
    # the file the run itself wrote ends where the replay ends
    written = json.loads((run_dir / "live.json").read_text())
    final = state.snapshot()
    assert written["phase"] == final["phase"] == "finished"
    assert [(c["candidate"], c["stage"], c["steps"], c["fate"]) for c in written["candidates"]] == \
        [(c["candidate"], c["stage"], c["steps"], c["fate"]) for c in final["candidates"]]


def test_events_are_typed_and_each_kind_is_named_once() -> None:
    """A misspelled field is refused where the event is made (and mypy reports it), never dropped on
    the way; the kinds that tests and live.json go by are unique."""
    import dataclasses

    from rewardgen.run import events
    from rewardgen.run.progress import LiveState

    with pytest.raises(TypeError):
        events.CandidateProgress(generation=0, candidate=0, step=10, total=100)  # type: ignore[call-arg]  # the typo under test
    kinds = [cls.kind for cls in vars(events).values()
             if isinstance(cls, type) and issubclass(cls, events.Event) and cls is not events.Event]
    assert len(kinds) == len(set(kinds)) >= 20
    state = LiveState()
    state.apply(events.GenerationStarted(generation=0, candidates=2, pending=[1], steps=100))
    state.apply(events.CandidateProgress(generation=0, candidate=1, steps=40, total=100))
    snap = state.snapshot()
    assert [c["stage"] for c in snap["candidates"]] == ["finished before", "training"]
    assert snap["generation_env_steps"] == {"done": 40, "planned": 100}
    with pytest.raises(dataclasses.FrozenInstanceError):
        events.RunWarning(message="x").message = "y"  # type: ignore[misc]  # frozen: what was sent stays as sent
