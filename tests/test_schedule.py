"""The adaptive schedule (issue 21): the pure allocation rule on synthetic evaluations, and real runs.

Real runs train inverted-pendulum candidates with rewardgen PPO in the sandbox on small budgets: the
schedule spends less than full training, gives no budget for a reward's own (huge) numbers, continues
every candidate from its saved state, and after ``kill -9`` resumes without retraining a finished slice.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from conftest import GOOD_PENDULUM_REWARD, cli, kill_9_when, last_json

from rewardgen.proposers.base import Proposal
from rewardgen.run.config import EvolveConfig
from rewardgen.run.evolve import Evolution, start_run
from rewardgen.run.schedule import (
    ADAPTIVE_GAP,
    Evaluation,
    adaptive_decision,
    adaptive_total_steps,
    rung_fractions,
    schedule_plan,
)
from rewardgen.tasks.spec import get_task

B = 1_000_000
INC = B // 40


def _race(curves: list[list[float]], steps: int = B, scale: float = 1.0, stderr: float = 0.0):
    """Run the rule to the end on synthetic learning curves: ``curves[c][j]`` is candidate c's trusted
    fitness after its (j+1)-th slice (the last value repeats if it trains longer). Returns the
    decisions and the evaluations each candidate got."""
    history: list[list[Evaluation]] = [[] for _ in curves]
    decisions = []
    for _ in range(100):
        d = adaptive_decision(history, steps, scale=scale)
        decisions.append(d)
        if not d.train:
            return decisions, history
        for c, target in d.train.items():
            before = history[c][-1].steps if history[c] else 0
            j = len(history[c])
            fit = curves[c][min(j, len(curves[c]) - 1)]
            history[c].append(Evaluation(target, target - before, fit, stderr))
    raise AssertionError("the rule never finished")


def test_first_rung_trains_everyone_one_increment():
    d = adaptive_decision([[] for _ in range(8)], B)
    assert d.train == {c: INC for c in range(8)}
    assert adaptive_decision([[]], B).train == {0: B}  # a lone candidate just trains the budget


@pytest.mark.parametrize("k, share", [(8, 0.20), (16, 0.12)])
def test_budget_is_kept_and_the_best_trains_the_full_budget(k, share):
    """Curves that never separate beyond the noise: only the budget drops candidates; the generation
    spends at most its budget (<= 20 % of full training at K=8, <= 12 % at K=16) and the candidate
    leading at the last comparison trains the whole budget."""
    curves = [[0.1 * (j + 1) + 0.01 * c for j in range(40)] for c in range(k)]  # c = k-1 always leads a little
    decisions, history = _race(curves, scale=100.0)
    spent = sum(e.spent for h in history for e in h)
    assert spent <= adaptive_total_steps(k, B) <= share * k * B
    finished = [c for d in decisions for c in d.finished]
    assert finished == [k - 1] and history[k - 1][-1].steps == B
    assert all(h[-1].steps < B for c, h in enumerate(history) if c != k - 1)
    assert all(len(h) >= 2 for h in history[k // 2:])  # the better half raced past the first increment
    # the plan the display shows is the same race with everyone equal
    plan = schedule_plan(k, B, rung_fractions(k, "adaptive"), "adaptive")
    assert plan[0] == {"rung": 0, "target": INC, "candidates": k} and plan[-1]["candidates"] == 1
    assert plan[-1]["target"] == B


def _two(first: tuple[float, float], second: tuple[float, float]) -> list[Evaluation]:
    return [Evaluation(INC, INC, *first), Evaluation(2 * INC, INC, *second)]


def test_clearly_behind_is_dropped_within_noise_is_not():
    """A candidate leaves early only when, at its last two evaluations, it is behind by more than two
    standard errors on both sides and by at least ADAPTIVE_GAP of the success threshold, and it gained
    less than the leader over the last increment."""
    history = [_two((0.6, 0.05), (1.0, 0.05)),   # the leader
               _two((0.1, 0.05), (0.5, 0.05)),   # behind twice, gaining as fast: kept (catching up)
               _two((0.1, 0.05), (0.4, 0.05)),   # behind twice, gaining less: dropped
               _two((0.5, 0.05), (0.4, 0.05)),   # behind now only: kept
               _two((0.1, 0.05), (0.7, 0.2)),    # behind before, within its noise now: kept
               _two((0.1, 0.05), (0.9, 0.05))]   # within the gap: kept
    d = adaptive_decision(history, B, scale=1.0)
    assert set(d.dropped) == {2}
    assert sorted(d.train) == [0, 1, 3, 4, 5]
    # the same gaps under a task whose success threshold is 4: 0.6 is not a meaningful gap there
    d = adaptive_decision(history, B, scale=4.0)
    assert d.dropped == {} and sorted(d.train) == [0, 1, 2, 3, 4, 5]
    assert 0.6 < ADAPTIVE_GAP * 4.0


def test_one_early_jump_drops_nobody():
    """halfcheetah-run, seed 0 (docs/benchmarks.md): one candidate "took off" to 1.5 m/s at 50k env-steps
    while the eventual winner still stood at 0.003; a single evaluation must not end the others."""
    history = [_two((0.002, 0.001), (1.493, 0.01))] + [_two((0.003, 0.001), (0.003, 0.001)) for _ in range(7)]
    d = adaptive_decision(history, B, scale=2.0)
    assert set(d.dropped.values()) == {"the step budget cannot carry it further"}  # only the budget cuts here
    assert 0 in d.train and len(d.train) == 5  # K=8 at 50k: the budget carries 5 on


def test_failed_candidates_stop_and_ties_break_by_index():
    history = [[Evaluation(INC, INC, None)], [Evaluation(INC, INC, 2.0)], [Evaluation(INC, INC, 2.0)]]
    d = adaptive_decision(history, 2 * INC + 1, scale=1.0, total=4 * INC)  # room for one only
    assert d.failed == [0]
    assert d.train == {1: 2 * INC + 1} and d.dropped == {2: "the step budget cannot carry it further"}


def test_decisions_are_deterministic_and_only_read_the_evaluations():
    """The same evaluations give the same decision every time; the dropped one is the one behind."""
    curves = [[0.0, 0.1, 0.2], [0.0, 3.0, 5.0], [0.0, 0.2, 0.1]]
    one, h1 = _race(curves, scale=1.0, stderr=0.01)
    two, h2 = _race(curves, scale=1.0, stderr=0.01)
    assert [(d.train, d.dropped, d.finished) for d in one] == [(d.train, d.dropped, d.finished) for d in two]
    assert h1 == h2
    assert [c for d in one for c in d.finished] == [1]
    assert set(c for d in one for c in d.dropped) == {0, 2}


def test_a_late_bloomer_survives_an_early_noisy_lead():
    """Early evaluations within noise drop nobody: the candidate that takes off at the third
    increment still wins the race the budget allows."""
    flat = [0.01, 0.02, 0.02, 0.03, 0.03, 0.04]
    curves = [flat, [0.0, 0.01, 1.5, 2.5, 3.0, 3.5], flat, flat]
    decisions, history = _race(curves, scale=2.0, stderr=0.01)
    assert [c for d in decisions for c in d.finished] == [1]
    assert history[1][-1].steps == B


# ----- real runs ---------------------------------------------------------------------------------

#: claims huge rewards for tilting the pole: a poor policy with very large reward numbers
BRAGGING_REWARD = '''
import torch

def compute_reward(s):
    tilt = 1.0 - s.body_up["pole"][:, 2]
    huge = 1.0e6 + 1.0e8 * tilt
    return huge, {"bonus": huge}
'''

ALIVE_ONLY_REWARD = '''
import torch

def compute_reward(s):
    alive = torch.ones_like(s.step)
    return alive, {"alive": alive}
'''

TASK = "inverted-pendulum-balance"
STEPS = 8192


def _rung_records(cand: Path) -> list[dict]:
    out, r = [], 0
    while (cand / f"rung-{r}.json").is_file():
        out.append(json.loads((cand / f"rung-{r}.json").read_text()))
        r += 1
    return out


def _replay(run_dir: Path, k: int, scale: float) -> None:
    """Each rung that was trained is exactly what the rule decides from the trusted fitness recorded
    in the rungs before it (nothing else: no reward numbers reach the rule)."""
    records = [_rung_records(run_dir / f"gen-000/cand-{c:02d}") for c in range(k)]
    for r in range(max(len(x) for x in records) + 1):
        history = [[Evaluation.from_rung(x) for x in rs[:r]] for rs in records]
        decision = adaptive_decision(history, STEPS, scale=scale)
        trained = {c: rs[r]["target_steps"] for c, rs in enumerate(records) if len(rs) > r}
        assert trained == decision.train, f"rung {r}: trained {trained}, the rule says {decision.train}"


@pytest.fixture(scope="module")
def adaptive_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("adaptive")
    config = EvolveConfig(task=TASK, samples=3, generations=1, steps=STEPS, seed=0, video=False,
                          schedule="adaptive", llm="offline", workers=2)
    store = start_run(config, runs)
    evo = Evolution(store)
    evo.write_generation(0, [Proposal(BRAGGING_REWARD, origin="test"), Proposal(GOOD_PENDULUM_REWARD, origin="test"),
                              Proposal(ALIVE_ONLY_REWARD, origin="test")],
                         "test")
    summary = evo.run()
    return store.path, summary


@pytest.mark.slow
def test_adaptive_spends_less_than_full_and_finishes_one(adaptive_run):
    _run_dir, summary = adaptive_run
    gen = summary["generations"][0]
    assert all(c["status"] == "ok" for c in gen["candidates"])
    full = 3 * STEPS  # full training: every candidate the whole budget (whole batches of 256 divide it)
    assert gen["steps_spent"] < full
    assert gen["steps_spent"] <= adaptive_total_steps(3, STEPS) + 3 * 256  # at most a batch over per candidate
    fates = {c["candidate"]: c["fate"] for c in gen["candidates"]}
    assert sorted(fates.values()) == ["eliminated", "eliminated", "final"]
    winner = next(c for c, f in fates.items() if f == "final")
    assert gen["candidates"][winner]["env_steps"] >= STEPS
    assert summary["best"]["fitness"] is not None


@pytest.mark.slow
def test_allocation_follows_trusted_fitness_not_the_rewards_numbers(adaptive_run):
    """The candidate whose reward reports ~1e6 per step but trains a pole-dropping policy gets less
    budget than the winner and is not finished; every rung trained is the rule's decision from the
    trusted evaluations recorded before it."""
    run_dir, summary = adaptive_run
    brag = json.loads((run_dir / "gen-000/cand-00/metrics.json").read_text())
    assert brag["training"]["total_reward"][-1]["mean"] > 1e5  # it did claim huge rewards
    gen = summary["generations"][0]
    winner = next(c for c in gen["candidates"] if c["fate"] == "final")
    assert winner["candidate"] != 0
    assert brag["fate"] == "eliminated" and brag["steps_spent"] < winner["steps_spent"]
    _replay(run_dir, 3, scale=get_task(TASK).success_threshold)


@pytest.mark.slow
def test_every_slice_continues_from_the_saved_state(adaptive_run):
    run_dir, _ = adaptive_run
    for c in range(3):
        records = _rung_records(run_dir / f"gen-000/cand-{c:02d}")
        assert len(records) >= 2
        for before, rung in itertools.pairwise(records):
            assert rung["extra"]["resumed_from"] == before["env_steps_total"] and "restarted" not in rung
            assert rung["env_steps_total"] == before["env_steps_total"] + rung["env_steps"]
        assert not list((run_dir / f"gen-000/cand-{c:02d}").glob("state-*.npz"))  # sealed: states removed


def test_bad_schedule_is_refused(tmp_path):
    res = cli("evolve", "--task", TASK, "--schedule", "bandit", "--runs-dir", str(tmp_path))
    assert res.returncode == 2 and "--schedule" in res.stderr and len(res.stderr.strip().splitlines()) <= 2
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_resume_after_kill_9_mid_generation(tmp_path):
    """kill -9 the orchestrator while candidates race; resume finishes the generation, keeps every
    recorded slice as it was (no finished increment is trained again) and each later slice continues
    from its candidate's saved state."""
    args = ["evolve", "--task", TASK, "--samples", "3", "--generations", "1", "--steps", str(STEPS), "--workers", "1",
            "--schedule", "adaptive", "--no-video", "--llm", "offline", "--runs-dir", str(tmp_path), "--json"]
    run_dir = kill_9_when(args, "*/gen-000/cand-0[0-2]/rung-1.json", tmp_path, timeout=300).parents[2]
    before = {p: p.read_bytes() for p in run_dir.glob("gen-000/cand-*/rung-*.json")}
    assert before and len(list(run_dir.glob("gen-000/cand-*/metrics.json"))) < 3  # killed mid-generation
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    res = cli("resume", str(run_dir), "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    gen = last_json(res.stdout)["generations"][0]
    assert sorted(c["fate"] for c in gen["candidates"] if c["status"] == "ok").count("final") == 1
    for path, content in before.items():
        assert path.read_bytes() == content, f"{path} was trained again"
    after = set(run_dir.glob("gen-000/cand-*/rung-*.json"))
    assert after > set(before), "nothing was left to train after the kill"
    for c in range(3):
        records = _rung_records(run_dir / f"gen-000/cand-{c:02d}")
        for prev, rung in itertools.pairwise(records):
            assert rung["extra"]["resumed_from"] == prev["env_steps_total"] and "restarted" not in rung
    _replay(run_dir, 3, scale=get_task(TASK).success_threshold)
    assert gen["steps_spent"] < 3 * STEPS


@pytest.mark.parametrize("args", [["--schedules", "full,bandit"], ["--seeds", "0"], ["--samples", "-1"]])
def test_bench_schedule_refuses_bad_input(tmp_path, args):
    res = cli("bench", "schedule", "--task", TASK, "--runs-dir", str(tmp_path / "runs"), *args, cwd=tmp_path)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "runs").exists()  # refused before anything was created
