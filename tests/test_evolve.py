"""The evolve loop end to end, and the offline proposer's use of reflection."""

from __future__ import annotations

import ast
import json

import pytest
from conftest import cli, last_json, mlp_policy

from rewardgen.proposers.base import CandidateRecord, ProposalContext
from rewardgen.proposers.library import term_library
from rewardgen.proposers.offline import OfflineProposer
from rewardgen.tasks.spec import get_task


@pytest.mark.slow
def test_evolve_inverted_pendulum_reaches_the_success_threshold(runs_dir):
    """The foundation's acceptance run: 4 samples x 2 generations x 25k steps, offline proposer (the
    threshold is reached at 25k with a wide margin: fitness 1.0 in both generations on seeds 0, 1 and 2)."""
    res = cli("evolve", "--task", "inverted-pendulum-balance", "--samples", "4", "--generations", "2",
              "--steps", "25000", "--runs-dir", str(runs_dir), "--json", timeout=900)
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
    assert any(c["parent"] == f"g0c{gen0_best['candidate']}" for c in gen1["candidates"])


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
    good = [{"term": "progress", "weight": 1.0}, {"term": "posture", "weight": 1.0},
            {"term": "upright_torso", "weight": 0.1}]
    stats = {"components": {"progress": _points(0.1, -1, 1), "posture": _points(-5.0, -6, -4),
                            "upright_torso": _points(0.0)}, "reward_fitness_correlation": 0.5}
    history = [[_record(task, 0, 0, good, 1.5, stats),
                _record(task, 0, 1, [{"term": "progress_com", "weight": 1.0}], 0.2, {})]]
    props = OfflineProposer().propose(ProposalContext(task, task.schema, 1, 4, seed=0, history=history))
    from_best = [p for p in props if p.parent == "g0c0"]
    assert from_best
    for p in from_best:
        terms = {g["term"] for g in p.genome}
        assert "upright_torso" not in terms  # constant during training
        assert any("dropped upright_torso" in n for n in p.notes)
        assert any("scaled posture down" in n for n in p.notes)  # dominant shaping term
        assert ("posture" in terms) != any("removed posture" in n for n in p.notes)  # unless a mutation removed it


def _trusted_trajectories(task, export):
    """What evolve stores as ``evaluation.trajectories``: the trusted evaluator's best and worst episode.
    (``mlp_policy(task, scale=0.0)`` always acts 0: the robot stands where it was dropped.)"""
    from rewardgen.evaluate.evaluator import evaluate_policy
    from rewardgen.evaluate.trajectory import best_and_worst

    evaluation = evaluate_policy(task, export, episodes=2, seed=10_000, record=True)
    return best_and_worst(task, export, evaluation, seed=10_000, recorded=evaluation.pop("_recorded"))


def test_offline_reflection_leans_on_the_goal_when_the_parent_stood_still():
    """A reward that pays more for surviving than for moving gets a policy that stands to the time limit;
    its children weigh the goal up and survival down. Not on a fixed-base arm, whose centre of mass
    always stands still."""
    ant = get_task("ant-run")
    trajectories = _trusted_trajectories(ant, mlp_policy(ant, scale=0.0))
    assert trajectories["worst"]["facts"]["stalled_fraction"] > 0.9  # the real facts say it stood still
    genome = [{"term": "progress_com", "weight": 1.0}, {"term": "alive", "weight": 1.0}]
    history = [[_record(ant, 0, 0, genome, 0.01, {"trajectories": trajectories})]]
    props = OfflineProposer().propose(ProposalContext(ant, ant.schema, 1, 4, seed=0, history=history))
    assert all(p.parent == "g0c0" for p in props)
    for p in props:
        assert any("stood still to the time limit short of success: goal terms up" in n for n in p.notes), p.notes
        weights = {g["term"]: g["weight"] for g in p.genome}
        if "alive" in weights:  # goal x2, survival x0.5, then each weight's own mutation
            assert weights["progress_com"] / weights["alive"] > 1.0, weights

    reacher = get_task("reacher-reach")
    trajectories = _trusted_trajectories(reacher, mlp_policy(reacher, scale=0.0))
    assert trajectories["worst"]["facts"]["stalled_fraction"] > 0.9
    history = [[_record(reacher, 0, 0, [{"term": "reach", "weight": 1.0}], -0.2, {"trajectories": trajectories})]]
    props = OfflineProposer().propose(ProposalContext(reacher, reacher.schema, 1, 4, seed=0, history=history))
    assert not any("stood still" in n for p in props for n in p.notes)


def test_offline_reflection_keeps_a_robot_that_flips_over_upright():
    """Policies that spend a quarter of an episode upside-down: the parent's own, or two of the last
    generation's, raise the flipped body's upright term and the control cost to a strong weight (each
    added where missing)."""
    import numpy as np

    from rewardgen.evaluate.trajectory import episode_facts

    ant = get_task("ant-run")
    n = 400  # an ant that runs for 100 steps, then lies on its back
    t = np.arange(1, n + 1)
    up = np.where(t <= 100, 1.0, -0.95)
    flipped_episode = {"length": n, "horizon": 1000, "terminated": False, "fitness_value": 0.1, "dt": 0.05,
                       "seed": 1, "main_body": "torso", "bodies": ["torso"], "height": np.where(t <= 100, 0.6, 0.27),
                       "up_z": up, "tilt_deg": np.degrees(np.arccos(up))[:, None],
                       "com": np.stack([np.minimum(t, 100) * 0.05, np.zeros(n), np.full(n, 0.5)], axis=1)}
    flipped = {"worst": {"facts": episode_facts(flipped_episode)}}
    assert flipped["worst"]["facts"]["upside_down_fraction"] == 0.75
    upright = {"best": {"facts": episode_facts(dict(flipped_episode, up_z=np.ones(n),
                                                    tilt_deg=np.zeros((n, 1))))}}
    good = [{"term": "progress_com", "weight": 2.0}, {"term": "upright_torso", "weight": 0.2}]
    other = [{"term": "progress", "weight": 1.0}]

    def children(flips: int):
        gen = [_record(ant, 0, 0, good, 1.5, {"trajectories": upright})]
        gen += [_record(ant, 0, c, other, 0.1 / c, {"trajectories": flipped if c <= flips else upright})
                for c in (1, 2, 3)]
        ctx = ProposalContext(ant, ant.schema, 1, 4, seed=0, history=[gen])
        return [p for p in OfflineProposer().propose(ctx) if p.parent == "g0c0"]

    strong = term_library(ant, ant.schema)["ctrl"].hi
    for p in children(flips=2):
        why = "2 policies of the last generation flipped over (g0c1, g0c2)"
        assert f"{why}: upright terms up" in p.notes and f"{why}: control cost up to a strong weight" in p.notes, p.notes
        weights = {g["term"]: g["weight"] for g in p.genome}
        if "ctrl" in weights:  # at the top of its range, then mutated (log-normal, sigma 0.4)
            assert weights["ctrl"] > strong / 3, weights
        else:
            assert any("removed ctrl" in x for x in p.notes)
        assert "upright_torso" in weights or any("removed upright_torso" in x for x in p.notes)
    assert not any("flipped" in x for p in children(flips=1) for x in p.notes)  # one flip is not a habit

    own = [_record(ant, 0, 0, good, 1.5, {"trajectories": flipped})]
    props = OfflineProposer().propose(ProposalContext(ant, ant.schema, 1, 2, seed=0, history=[own]))
    assert all("its policy spent 75% of an episode upside-down: upright terms up" in p.notes for p in props)
