"""Final evaluation (issue 8): the best reward vs. the human (env) and sparse rewards over seeds.

The run directory is made with the library (``start_run``, the candidate's ``reward.py`` and the
``best`` entry an evolve run records) rather than by running ``rewardgen evolve``, whose training
final evaluation repeats anyway: that keeps the test under a minute on 2 cores.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import GOOD_PENDULUM_REWARD, EventRecorder

from rewardgen.contract.policy import PolicyExport
from rewardgen.run.config import EvolveConfig
from rewardgen.run.evolve import start_run
from rewardgen.run.final import FinalEvaluationError, final_evaluation, normalised_scores, read_final
from rewardgen.software import software
from rewardgen.store import RunStore, RunStoreError, atomic_write_text
from rewardgen.tasks.spec import get_task

TASK = "inverted-pendulum-balance"


@pytest.fixture
def run_dir(runs_dir: Path) -> Path:
    store = start_run(EvolveConfig(task=TASK, samples=1, generations=1, steps=2048), runs_dir)
    atomic_write_text(store.cand_dir(0, 0) / "reward.py", GOOD_PENDULUM_REWARD)
    run = store.read_run()
    run["status"] = "finished"
    run["best"] = {"generation": 0, "candidate": 0, "fitness": 0.03}
    store.write_run(run)
    return store.path


def test_final_evaluation_three_methods_and_score(run_dir: Path):
    progress = EventRecorder()
    result = final_evaluation(run_dir, seeds=2, steps=2048, progress=progress, episodes=2)
    assert [row["method"] for row in result["rows"]] == ["evolved", "human", "sparse"]
    for row in result["rows"]:
        assert row["seeds"] == 2 and row["ok"] == 2, row["failures"]
        assert 0.0 <= row["fitness_mean"] <= 1.0 and row["fitness_std"] >= 0.0
    assert len(result["runs"]) == 6 and result["steps"] == 2048 and result["seeds"] == 2
    assert len(set(result["train_seeds"])) == 2
    for r in result["runs"]:
        policy = run_dir / "final" / f"{r['method']}-seed{r['seed_index']}" / "policy.npz"
        assert r["policy"] == str(policy.relative_to(run_dir))
        PolicyExport.from_bytes(policy.read_bytes())
        assert r["env_steps"] == 2048
    rows = {row["method"]: row for row in result["rows"]}
    span = abs(rows["human"]["fitness_mean"] - rows["sparse"]["fitness_mean"])
    if span < 1e-9:  # tiny budgets can leave human == sparse: then, and only then, no score
        assert result["score"] is None and "human and sparse baselines have the same mean" in result["score_note"]
    else:
        expected = (rows["evolved"]["fitness_mean"] - rows["sparse"]["fitness_mean"]) / span
        assert result["score"] == pytest.approx(expected) and result["score_note"] is None
        # the human row scores +1 by construction (-1 when the sparse reward beat the human one)
        sign = 1.0 if rows["human"]["fitness_mean"] > rows["sparse"]["fitness_mean"] else -1.0
        assert rows["human"]["human_normalized"] == pytest.approx(sign)
        assert rows["sparse"]["human_normalized"] == pytest.approx(0.0)
        assert rows["sparse"]["human_normalized"] == pytest.approx(0.0)
    assert read_final(run_dir) == json.loads(json.dumps(result))  # written atomically as final.json
    kinds = [k for k, _ in progress.events]
    assert kinds[0] == "final_started" and kinds[-1] == "final_finished" and kinds.count("final_run") == 6


def test_normalised_score_is_explained_when_undefined():
    task = get_task(TASK)
    rows = lambda e, h, s: {"evolved": {"fitness_mean": e}, "human": {"fitness_mean": h},  # noqa: E731
                            "sparse": {"fitness_mean": s}}
    scores, note = normalised_scores(task, rows(0.5, 0.8, 0.2))
    assert scores == pytest.approx({"evolved": 0.5, "human": 1.0, "sparse": 0.0}) and note is None
    scores, note = normalised_scores(task, rows(0.5, 0.3, 0.3))
    assert scores is None and "same mean fitness" in note
    scores, note = normalised_scores(task, rows(0.5, None, 0.3))
    assert scores is None and "no successful human" in note
    novel = dataclasses.replace(task, baseline="sparse")
    scores, note = normalised_scores(novel, {"evolved": {"fitness_mean": 0.5}, "sparse": {"fitness_mean": 0.1}})
    assert scores is None and "no env reward" in note


def test_refuses_runs_without_best_and_busy_runs(run_dir: Path):
    with pytest.raises(FinalEvaluationError):
        final_evaluation(run_dir, seeds=0)
    store = RunStore.open(run_dir)
    store.lock()  # an evolve/resume is working on the run
    try:
        with pytest.raises(RunStoreError, match="in use"):
            final_evaluation(run_dir, seeds=1, steps=2048)
    finally:
        store.unlock()
    run = store.read_run()
    run["best"] = None
    store.write_run(run)
    with pytest.raises(FinalEvaluationError, match="no best reward"):
        final_evaluation(run_dir, seeds=1)


def test_an_interrupted_final_trains_only_what_is_missing(run_dir: Path):
    """A final that stopped part-way reuses the trainings it finished (same key) and trains the rest;
    another budget is another key, so nothing is reused then."""
    first = final_evaluation(run_dir, seeds=2, steps=2048, episodes=2)
    # as if killed after four of the six trainings: final.json and two trainings' records never written
    (run_dir / "final.json").unlink()
    for name in ("human-seed1", "sparse-seed0"):
        (run_dir / "final" / name / "final-run.json").unlink()
    assert first["software"] == [software()]  # every training names the install it ran under
    # one kept training as if trained before the packages were installed again
    kept = run_dir / "final" / "evolved-seed0" / "final-run.json"
    older = json.loads(kept.read_text())
    older["software"] |= {"numpy": "1.26.4"}
    kept.write_text(json.dumps(older))
    progress = EventRecorder()
    again = final_evaluation(run_dir, seeds=2, steps=2048, episodes=2, progress=progress)
    assert again["software"] == [older["software"], software()]  # reused from another install: said
    runs = [d for kind, d in progress.events if kind == "final_run"]
    reused = sorted(f"{d['method']}-seed{d['seed_index']}" for d in runs if d.get("reused"))
    assert reused == ["evolved-seed0", "evolved-seed1", "human-seed0", "sparse-seed1"]
    assert len(runs) == 6
    assert [r["fitness"] for r in again["runs"]] == [r["fitness"] for r in first["runs"]]  # same seeds, same numbers
    assert json.loads((run_dir / "final.json").read_text())["rows"] == again["rows"]
    progress = EventRecorder()
    final_evaluation(run_dir, seeds=2, steps=4096, episodes=2, progress=progress)
    assert not [d for kind, d in progress.events if kind == "final_run" and d.get("reused")]
