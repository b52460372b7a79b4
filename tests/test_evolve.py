"""The evolve loop end to end, and the offline proposer's use of reflection."""

from __future__ import annotations

import ast
import json

import pytest

from conftest import cli, last_json
from rewardgen.proposers.base import CandidateRecord, ProposalContext
from rewardgen.proposers.library import term_library
from rewardgen.proposers.offline import OfflineProposer
from rewardgen.tasks.spec import get_task


@pytest.mark.slow
def test_evolve_inverted_pendulum_reaches_the_success_threshold(runs_dir):
    """The foundation's acceptance run: 4 samples x 2 generations x 50k steps, offline proposer."""
    res = cli("evolve", "--task", "inverted-pendulum-balance", "--samples", "4", "--generations", "2",
              "--steps", "50000", "--runs-dir", str(runs_dir), "--json", timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    out = last_json(res.stdout)
    assert set(out) >= {"run_dir", "best", "generations"}
    assert len(out["generations"]) == 2 and all(len(g["candidates"]) == 4 for g in out["generations"])
    threshold = get_task("inverted-pendulum-balance").success_threshold
    assert out["best"]["fitness"] >= threshold
    assert "offline proposer" in res.stderr  # labelled in every output
    run_dir = runs_dir / out["run_dir"].split("/")[-1]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["proposer"].startswith("offline proposer")
    best = out["best"]
    cand = run_dir / f"gen-{best['generation']:03d}" / f"cand-{best['candidate']:02d}"
    for name in ("reward.py", "proposal.json", "metrics.json", "train.log", "policy.npz"):
        assert (cand / name).is_file(), name
    metrics = json.loads((cand / "metrics.json").read_text())
    assert metrics["fitness"] == best["fitness"]
    comps = metrics["training"]["components"]
    assert comps and all(len(points) >= 8 for points in comps.values())  # ~10 points through training
    assert metrics["training"]["episodes"]
    # generation 1 descends from generation 0's best
    gen1 = json.loads((run_dir / "gen-001" / "generation.json").read_text())
    gen0_best = max((c for c in out["generations"][0]["candidates"]), key=lambda c: c["fitness"])
    assert any(c["parent"] == f"0/{gen0_best['candidate']}" for c in gen1["candidates"])


def _record(task, g, c, genome, fitness, stats):
    return CandidateRecord(generation=g, candidate=c, source="", status="ok", fitness=fitness,
                           proposal={"genome": genome}, stats=stats)


def _points(mean, lo=None, hi=None):
    return [{"step": i, "mean": mean, "min": mean if lo is None else lo, "max": mean if hi is None else hi}
            for i in range(10)]


def test_offline_proposer_writes_valid_distinct_rewards_for_every_task():
    for tid in ("inverted-pendulum-balance", "reacher-reach", "halfcheetah-run", "hopper-hop", "ant-run"):
        task = get_task(tid)
        props = OfflineProposer().propose(ProposalContext(task, task.schema, 0, 6, seed=1))
        assert len(props) == 6
        assert len({p.source for p in props}) == 6
        library = term_library(task, task.schema)
        for p in props:
            tree = ast.parse(p.source)
            assert any(isinstance(n, ast.FunctionDef) and n.name == "compute_reward" for n in tree.body)
            assert any(library[g["term"]].goal for g in p.genome)
            assert "offline proposer" in p.source


def test_offline_proposer_applies_reflection_to_the_best_parent():
    task = get_task("halfcheetah-run")
    good = [{"term": "progress", "weight": 1.0}, {"term": "posture", "weight": 1.0}, {"term": "upright_torso", "weight": 0.1}]
    stats = {"components": {"progress": _points(0.1, -1, 1), "posture": _points(-5.0, -6, -4),
                            "upright_torso": _points(0.0)}, "reward_fitness_correlation": 0.5}
    history = [[_record(task, 0, 0, good, 1.5, stats),
                _record(task, 0, 1, [{"term": "progress_com", "weight": 1.0}], 0.2, {})]]
    props = OfflineProposer().propose(ProposalContext(task, task.schema, 1, 4, seed=0, history=history))
    from_best = [p for p in props if p.parent == "0/0"]
    assert from_best
    for p in from_best:
        terms = {g["term"] for g in p.genome}
        assert "upright_torso" not in terms  # constant during training
        assert any("dropped upright_torso" in n for n in p.notes)
        assert any("scaled posture down" in n for n in p.notes)  # dominant shaping term
        assert ("posture" in terms) != any("removed posture" in n for n in p.notes)  # unless a mutation removed it
