"""`evolve --confirm-seeds N`: the run's best named by its reward's mean over new training seeds."""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path

import pytest
from conftest import RecordingProgress, cli, kill_9_when, last_json

from rewardgen.procs.trusted import run_trusted_evaluation
from rewardgen.run.config import EvolveConfig
from rewardgen.run.confirm import CONFIRM_TOP, confirm_train_seed, contenders
from rewardgen.run.evolve import Evolution, start_run
from rewardgen.run.final import train_seed as final_train_seed
from rewardgen.tasks.spec import get_task

TASK = "inverted-pendulum-balance"
STEPS = 2048


def _evolve_args(runs: Path, *extra: str) -> list[str]:
    return ["evolve", "--task", TASK, "--samples", "3", "--generations", "2", "--steps", str(STEPS),
            "--workers", "1", "--no-video", "--llm", "offline", "--confirm-seeds", "2", "--runs-dir", str(runs), *extra]


def _records(run_dir: Path) -> dict[Path, dict]:
    return {p: json.loads(p.read_text()) for p in sorted(run_dir.glob("confirm/*/final-run.json"))}


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> tuple[Path, dict]:
    """One real uninterrupted `evolve --confirm-seeds 2` run, built once: the first test checks it, the
    kill -9 test compares its resumed run with it. Returns the run directory and its run.json as written
    by the evolve (read before any test runs `final` in it)."""
    where = tmp_path_factory.mktemp("confirm-whole")
    res = cli(*_evolve_args(where / "runs"), "--json", cwd=where, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = Path(last_json(res.stdout)["run_dir"])
    return run_dir, json.loads((run_dir / "run.json").read_text())


@pytest.mark.slow
def test_confirmed_best_is_the_highest_mean_of_the_top_candidates_on_new_seeds(whole_run, tmp_path):
    """The three candidates with the highest trusted fitness, each retrained from scratch with its own
    reward on two seeds apart from evolve's and final's; every record is the trusted evaluator's number
    for the policy beside it; the best is the highest mean, and report, CLI and `final` all name it."""
    run_dir, run = whole_run
    conf = run["confirm"]
    every = [(g["generation"], c["candidate"], c["fitness"]) for g in run["generations"] for c in g["candidates"]
             if c["status"] == "ok"]
    top = sorted(every, key=lambda x: (-x[2], x[0], x[1]))[:CONFIRM_TOP]
    assert [(r["generation"], r["candidate"], r["selection_fitness"]) for r in conf["contenders"]] == top
    assert conf["train_seeds"] == [confirm_train_seed(0, k) for k in range(2)]
    assert not set(conf["train_seeds"]) & {final_train_seed(0, k) for k in range(5)}
    records = _records(run_dir)
    assert len(records) == 2 * CONFIRM_TOP
    task = get_task(TASK)
    for row in conf["contenders"]:
        source = (run_dir / f"gen-{row['generation']:03d}/cand-{row['candidate']:02d}/reward.py").read_text()
        mine = []
        for k in range(2):
            d = run_dir / f"confirm/gen-{row['generation']:03d}-cand-{row['candidate']:02d}-seed{k}"
            rec = records[d / "final-run.json"]
            assert rec["status"] == "ok" and rec["env_steps"] == STEPS  # from scratch, the whole budget
            assert rec["key"]["source_sha256"] == hashlib.sha256(source.encode()).hexdigest()
            assert rec["key"]["train_seed"] == conf["train_seeds"][k]
            mine.append(rec["fitness"])
        assert row["fitness"] == mine and row["mean"] == pytest.approx(statistics.fmean(mine))
    first = conf["contenders"][0]
    d = run_dir / f"confirm/gen-{first['generation']:03d}-cand-{first['candidate']:02d}-seed1"
    again = run_trusted_evaluation(task, d / "policy.npz", records[d / "final-run.json"]["key"]["episodes"],
                                   records[d / "final-run.json"]["key"]["eval_seed"])
    assert again["fitness"] == pytest.approx(records[d / "final-run.json"]["fitness"], abs=1e-9)
    chosen = max(conf["contenders"], key=lambda r: (r["mean"], r["selection_fitness"]))
    assert conf["best"] == {"generation": chosen["generation"], "candidate": chosen["candidate"]}
    assert conf["changed"] == (chosen is not first)
    best = run["best"]
    assert (best["generation"], best["candidate"]) == (chosen["generation"], chosen["candidate"])
    assert best["confirmed"] == {"seeds": 2, "mean": chosen["mean"], "std": chosen["std"]}
    # the report's confirmation table stars the chosen one; `final` retrains the chosen one
    html = (run_dir / "report.html").read_text()
    table = html[html.index('<table id="confirm">'):]
    table = table[:table.index("</table>")]
    starred = table.split("&#9733;")[1]
    assert f'href="#cand-{chosen["generation"]}-{chosen["candidate"]}"' in starred.split("</td>")[0]
    assert table.count("<tr>") == 1 + CONFIRM_TOP
    # the web UI's run page says so too (the real run, served by the real app)
    from fastapi.testclient import TestClient

    from rewardgen.web import create_app

    page = TestClient(create_app(run_dir.parent), base_url="http://127.0.0.1").get(f"/runs/{run_dir.name}").text
    said = " ".join(page.split())
    assert (f"confirmed on 2 new training seed(s): mean <b>{chosen['mean']:.4g}</b>" in said
            and "the highest of the 3 retrained" in said), said[:3000]
    fin = cli("final", str(run_dir), "--seeds", "1", "--json", cwd=tmp_path, timeout=900)
    assert fin.returncode == 0, fin.stderr[-3000:]
    assert last_json(fin.stdout)["best"] | {"selection_fitness": None} == \
        {"generation": chosen["generation"], "candidate": chosen["candidate"], "selection_fitness": None}


@pytest.mark.slow
def test_kill_9_during_confirmation_then_resume_trains_only_what_was_left(whole_run, tmp_path):
    """kill -9 while the contenders retrain; `resume` keeps every finished training as it was and
    trains the rest, which come out as an uninterrupted run's (training is deterministic per seed)."""
    run_dir = kill_9_when(_evolve_args(tmp_path / "runs", "--json"), "*/confirm/*/final-run.json",
                          tmp_path / "runs").parents[2]
    before = {p: p.read_bytes() for p in run_dir.glob("confirm/*/final-run.json")}
    policies = {p.parent: p.parent.joinpath("policy.npz").read_bytes() for p in before}
    assert 0 < len(before) < 2 * CONFIRM_TOP
    assert "confirm" not in json.loads((run_dir / "run.json").read_text())

    res = cli("resume", str(run_dir), "--json", cwd=tmp_path, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    # only confirmation trainings were left: the run's time left is measured from them, not kept at the guess
    assert "estimated time left (measured)" in res.stderr, res.stderr[-3000:]
    for path, content in before.items():
        assert path.read_bytes() == content and policies[path.parent] == path.parent.joinpath("policy.npz").read_bytes()
    records = _records(run_dir)
    assert len(records) == 2 * CONFIRM_TOP and all(r["status"] == "ok" for r in records.values())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["confirm"]["best"] is not None

    # the same run uninterrupted (the module's real run of the same arguments): the same numbers for every training
    _, other = whole_run
    assert other["confirm"]["contenders"] == run["confirm"]["contenders"]
    assert other["best"] == run["best"]


@pytest.mark.slow
def test_time_estimate_counts_the_confirmation_and_is_measured_while_it_runs(tmp_path):
    """The run's planned env-steps include the confirmation, and each confirmation training that
    finishes refreshes the time left from the measured rate, ending with everything planned done."""
    config = EvolveConfig(task=TASK, samples=2, generations=1, steps=STEPS, workers=1, video=False,
                          eval_episodes=1, confirm_seeds=1, schedule="full")
    progress = RecordingProgress()
    Evolution(start_run(config, tmp_path / "runs"), progress).run()
    kinds = [k for k, _ in progress.events]
    estimates = [d for k, d in progress.events if k == "estimate"]
    assert estimates[0]["env_steps_planned"] == 2 * STEPS + 2 * STEPS  # two candidates, two contenders x one seed
    last_confirm = max(i for i, k in enumerate(kinds) if k == "confirm_run")
    after = [d for k, d in progress.events[last_confirm:] if k == "estimate"]
    assert after and after[-1]["basis"] == "measured"
    assert after[-1]["env_steps_done"] >= after[-1]["env_steps_planned"] and after[-1]["seconds_left"] == 0


def test_contenders_are_the_highest_trusted_fitness_of_the_run():
    gens = [{"generation": 0, "candidates": [{"candidate": 0, "status": "ok", "fitness": 1.0},
                                             {"candidate": 1, "status": "runtime", "fitness": None},
                                             {"candidate": 2, "status": "ok", "fitness": 3.0}]},
            {"generation": 1, "candidates": [{"candidate": 0, "status": "ok", "fitness": 2.0},
                                             {"candidate": 1, "status": "ok", "fitness": 3.0}]}]
    assert [(c["generation"], c["candidate"]) for c in contenders(gens)] == [(0, 2), (1, 1), (1, 0)]
    assert contenders(gens, top=1) == [{"generation": 0, "candidate": 2, "fitness": 3.0}]


def test_negative_confirm_seeds_is_refused(tmp_path):
    res = cli("evolve", "--task", TASK, "--confirm-seeds", "-1", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "runs").exists()
