"""`rewardgen bench schedule` on a tiny budget, so it keeps working (the numbers are in docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_schedule_runs_both_schedules_on_the_same_candidates(tmp_path):
    """`rewardgen bench schedule` on a tiny budget: the same proposals under both schedules; halving
    trains everyone to a fifth, continues the better ones from their saved state (never from scratch),
    seals the others as eliminated, and spends what its rungs add up to."""
    import json
    from pathlib import Path

    from conftest import cli, last_json

    res = cli("bench", "schedule", "--task", "inverted-pendulum-balance", "--samples", "3", "--steps", "4096",
              "--json", cwd=tmp_path, timeout=600)  # --steps is the schedule's budget (it was once ignored)
    assert res.returncode == 0, res.stderr[-3000:]
    out = last_json(res.stdout)
    full, halving = Path(out["full"]["run_dir"]), Path(out["halving"]["run_dir"])
    for c in range(3):
        assert (full / f"gen-000/cand-{c:02d}/reward.py").read_text() == \
            (halving / f"gen-000/cand-{c:02d}/reward.py").read_text()
    assert out["full"]["env_steps"] == 3 * 4096  # 16 worlds x 16 steps per batch divides 4096
    # rungs at 1/5, 1/2, 1 of the budget (whole batches: 1024, 2048, 4096) keeping 2 of 3, then 1 of 2
    assert out["halving"]["env_steps"] == 3 * 1024 + 2 * 1024 + 1 * 2048
    assert out["steps_ratio"] == out["halving"]["env_steps"] / out["full"]["env_steps"]
    metrics = [json.loads((halving / f"gen-000/cand-{c:02d}/metrics.json").read_text()) for c in range(3)]
    assert sorted(m["fate"] for m in metrics) == ["eliminated", "eliminated", "final"]
    winner = next(m for m in metrics if m["fate"] == "final")
    assert winner["rungs"] == 3 and winner["env_steps"] == winner["steps_spent"] == 4096
    # the best trusted fitness recorded, at whichever rung (a finalist can end below an earlier cut's score)
    top = max(metrics, key=lambda m: m["fitness"])
    assert out["halving"]["best"] == {"candidate": top["candidate"], "fitness": top["fitness"],
                                      "label": f"g0c{top['candidate']}"}
    first_out = next(m for m in metrics if m["rungs"] == 1)
    second_out = next(m for m in metrics if m["rungs"] == 2)
    def rung_fitness(m: dict, r: int) -> float:  # the trusted fitness the cut after rung r ranked by
        return json.loads((halving / f"gen-000/cand-{m['candidate']:02d}/rung-{r}.json").read_text())["fitness"]

    assert rung_fitness(first_out, 0) <= min(rung_fitness(second_out, 0), rung_fitness(winner, 0))
    assert rung_fitness(second_out, 1) <= rung_fitness(winner, 1)
    for r, done_before in ((1, 1024), (2, 2048)):
        rung = json.loads((halving / f"gen-000/cand-{winner['candidate']:02d}/rung-{r}.json").read_text())
        assert rung["extra"]["resumed_from"] == done_before and "restarted" not in rung
    # the adaptive row says where full's best stood in its race: the rank by the first rung's fitness
    race, best = out["adaptive"]["race"], out["full"]["best"]["candidate"]
    adaptive = Path(out["adaptive"]["run_dir"])
    first = {c: json.loads((adaptive / f"gen-000/cand-{c:02d}/rung-0.json").read_text())["fitness"] for c in range(3)}
    assert race[0]["racing"] == 3 and race[0]["rung"] == 0
    assert race[0]["best_rank"] == sorted(first, key=lambda c: (-first[c], c)).index(best) + 1
    assert f"full's best (g0c{best}) ranked {race[0]['best_rank']} of 3" in res.stderr


@pytest.mark.slow
def test_bench_schedule_judges_each_pick_on_new_seeds_and_a_rerun_reuses_everything(tmp_path):
    """`bench schedule --judge-seeds 2`: every candidate's own reward retrained from scratch at the full
    budget on two training seeds apart from evolve's and final's; each record is the trusted evaluator's
    number for the policy beside it; each schedule's pick is judged by its reward's mean. A rerun with
    the same --runs-dir trains nothing and gives the same result."""
    import hashlib
    import json
    import statistics

    from conftest import cli, last_json

    from rewardgen.procs.trusted import run_trusted_evaluation
    from rewardgen.run.final import train_seed as final_train_seed
    from rewardgen.tasks.spec import get_task

    args = ("bench", "schedule", "--task", "inverted-pendulum-balance", "--samples", "3", "--steps", "4096",
            "--judge-seeds", "2", "--runs-dir", str(tmp_path / "runs"), "--json")
    res = cli(*args, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = last_json(res.stdout)
    judged = out["judged"]["0"]
    full = Path(out["full"]["run_dir"])
    assert judged["seeds"] == 2 and len(set(judged["train_seeds"])) == 2
    assert not set(judged["train_seeds"]) & {final_train_seed(0, k) for k in range(5)}
    task = get_task("inverted-pendulum-balance")
    policies = {}
    for c in range(3):
        source = (full / f"gen-000/cand-{c:02d}/reward.py").read_text()
        fits = []
        for k in range(2):
            d = full / f"judge/cand-{c:02d}-seed{k}"
            record = json.loads((d / "final-run.json").read_text())
            assert record["status"] == "ok" and record["env_steps"] == 4096  # from scratch, the whole budget
            assert record["key"]["source_sha256"] == hashlib.sha256(source.encode()).hexdigest()
            assert record["key"]["train_seed"] == judged["train_seeds"][k]
            fits.append(record["fitness"])
            policies[(c, k)] = (d / "policy.npz", record)
        assert judged["candidates"][str(c)]["fitness"] == fits
        assert judged["candidates"][str(c)]["mean"] == pytest.approx(statistics.fmean(fits))
    # a record is the trusted evaluator's number for the policy beside it
    path, record = policies[(1, 1)]
    again = run_trusted_evaluation(task, path, record["key"]["episodes"], record["key"]["eval_seed"])
    assert again["fitness"] == pytest.approx(record["fitness"], abs=1e-9)
    means = {int(c): v["mean"] for c, v in judged["candidates"].items()}
    assert judged["best"] == max(means, key=lambda c: (means[c], -c))
    for name in ("full", "halving", "adaptive"):
        j, pick = out[name]["judged"], out[name]["best"]["candidate"]
        assert j["candidate"] == pick and j["mean"] == means[pick]
        assert j["gap"] == pytest.approx((means[judged["best"]] - means[pick]) / abs(means[judged["best"]]))
    assert f"best reward g0c{judged['best']}" in res.stderr
    mtimes = {key: p.stat().st_mtime_ns for key, (p, _) in policies.items()}
    runs_before = sorted(p.name for p in (tmp_path / "runs").iterdir())

    again = cli(*args, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    second = last_json(again.stdout)
    assert second["judged"] == out["judged"] and second["runs"]["0"].keys() == out["runs"]["0"].keys()
    for name in ("full", "halving", "adaptive"):
        assert second[name]["run_dir"] == out[name]["run_dir"] and second[name]["reused"]
        assert second[name]["best"] == out[name]["best"] and second[name]["env_steps"] == out[name]["env_steps"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == runs_before  # no new run
    assert {key: p.stat().st_mtime_ns for key, (p, _) in policies.items()} == mtimes  # nothing retrained
    said = " ".join(again.stderr.split())  # the console wraps lines at 80 columns
    assert said.count(": reused") == 6 and said.count("(the run made before)") == 3, said


def test_bench_schedule_reuses_only_a_run_of_the_same_config_and_proposals(tmp_path):
    """A run of another seed, budget or set of proposals in --runs-dir is never taken for this one."""
    from rewardgen.bench.schedule import earlier_run
    from rewardgen.proposers import ProposalContext, get_proposer
    from rewardgen.run.config import EvolveConfig
    from rewardgen.run.evolve import Evolution, start_run
    from rewardgen.tasks.spec import get_task

    task = get_task("inverted-pendulum-balance")
    proposals = get_proposer("offline").propose(ProposalContext(task, task.schema, 0, 2, 0))

    def config(**kw):
        return EvolveConfig(**{"task": task.id, "samples": 2, "generations": 1, "steps": 4096, "seed": 0,
                               "video": False, "schedule": "full", "llm": "offline"} | kw)

    store = start_run(config(), tmp_path)
    assert earlier_run(tmp_path, config(), proposals) is None  # no generation written yet: not that run
    Evolution(store).write_generation(0, proposals, "offline")
    assert earlier_run(tmp_path, config(), proposals) == store.path
    assert earlier_run(tmp_path, config(seed=1), proposals) is None
    assert earlier_run(tmp_path, config(steps=8192), proposals) is None
    assert earlier_run(tmp_path, config(schedule="halving"), proposals) is None
    others = get_proposer("offline").propose(ProposalContext(task, task.schema, 0, 2, 1))
    assert earlier_run(tmp_path, config(), others) is None


def test_bench_schedule_refuses_two_budgets(tmp_path):
    from conftest import cli

    res = cli("bench", "schedule", "--task", "inverted-pendulum-balance", "--steps", "4096", "--schedule-steps", "8192",
              cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "give one" in res.stderr, res.stderr
