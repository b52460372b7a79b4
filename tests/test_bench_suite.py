"""``rewardgen bench suite``: real evolve + final runs on tiny budgets, the table read back from the
run stores, kill -9 and resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, kill_9_when, last_json

from rewardgen.bench.suite import gap_verdict, markdown_table, summarise, task_row
from rewardgen.software import software, software_text
from rewardgen.stats import gap_in_standard_errors

TINY = ["--steps", "4096", "--samples", "2", "--generations", "1", "--seeds", "2", "--workers", "1"]
TASKS = ["inverted-pendulum-balance", "reacher-reach"]


def _state(out: Path) -> dict:
    try:
        return json.loads((out / "suite.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@pytest.mark.slow
def test_suite_kill_9_resumes_without_redoing_a_task_and_the_table_is_the_runs_own(tmp_path):
    out = tmp_path / "suite"
    # the second task's evolve has finished at least one candidate: kill the suite there
    def second_task_trained():
        entry = _state(out).get("tasks", {}).get(TASKS[1])
        if not entry:
            return None
        found = sorted((out / entry["run_dir"]).glob("gen-*/cand-*/metrics.json"))
        return (entry, found) if found else None

    entry, _ = kill_9_when(["bench", "suite", "--tasks", ",".join(TASKS), "--out", str(out), *TINY],
                           second_task_trained)

    first = out / _state(out)["tasks"][TASKS[0]]["run_dir"]
    second = out / entry["run_dir"]
    first_final = (first / "final.json").read_bytes()  # the first task was complete before the kill
    trained_before = {p: p.read_bytes() for p in second.glob("gen-*/cand-*/metrics.json")}
    assert not (out / "suite-result.json").exists()

    res = cli("bench", "suite", "--tasks", ",".join(TASKS), "--out", str(out), *TINY, "--json")
    assert res.returncode == 0, res.stderr
    result = last_json(res.stdout)

    # nothing of the first task ran again; the second task continued its own run
    assert (first / "final.json").read_bytes() == first_final
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted([first.name, second.name])
    assert "done already" in res.stderr and f"[1/2 {TASKS[0]}] evolve" not in res.stderr
    for path, data in trained_before.items():
        assert path.read_bytes() == data, f"{path} was trained again"
    assert (second / "final.json").is_file()

    # the table is the run stores' final results, unchanged
    md = (out / "suite.md").read_text()
    assert json.loads((out / "suite-result.json").read_text())["rows"] == result["rows"]
    wins = 0
    for task, row in zip(TASKS, result["rows"]):
        final = json.loads((Path(row["run_dir"]) / "final.json").read_text())
        assert row["task"] == task == final["task"] and row["finished"]
        by = {r["method"]: r for r in final["rows"]}
        for method in ("evolved", "human", "sparse"):
            assert row[method]["mean"] == by[method]["fitness_mean"]
            assert row[method]["std"] == by[method]["fitness_std"]
            assert row[method]["success_rate"] == by[method]["success_rate"]
            assert row[method]["ok"] == 2
            assert f"{by[method]['fitness_mean']:.3g} ± {by[method]['fitness_std']:.2g}" in md
        assert row["score"] == final["score"] == by["evolved"]["human_normalized"]
        beats = by["evolved"]["fitness_mean"] >= by["human"]["fitness_mean"]
        assert row["evolved_ge_human"] is beats
        assert row["evolved_ge_both"] is (beats and by["evolved"]["fitness_mean"] >= by["sparse"]["fitness_mean"])
        seeds = {m: [r["fitness"] for r in final["runs"] if r["method"] == m and r["status"] == "ok"]
                 for m in ("evolved", "human")}
        assert row["gap"] == gap_verdict(gap_in_standard_errors(seeds["evolved"], seeds["human"]))
        wins += beats
        # every training names the install it ran under: this one, the same for all
        assert {json.dumps(r["software"], sort_keys=True) for r in final["runs"]} == {json.dumps(software(), sort_keys=True)}
        assert final["software"] == [software()]
    assert result["compared"] == 2 and result["evolved_ge_human"] == wins
    assert f"Trained with {software_text(software())}." in md and "installs" not in md
    assert result["share_evolved_ge_human"] == wins / 2
    assert f"evolved >= human on {wins} of 2 tasks" in md
    both = sum(bool(r["evolved_ge_both"]) for r in result["rows"])
    assert result["evolved_ge_both"] == both and f">= both baselines on {both} of 2" in md

    # a third call finds everything done and trains nothing
    finals = {p: p.read_bytes() for p in (first / "final.json", second / "final.json")}
    again = cli("bench", "suite", "--tasks", ",".join(TASKS), "--out", str(out), *TINY, "--json")
    assert again.returncode == 0, again.stderr
    assert last_json(again.stdout)["rows"] == result["rows"]
    assert {p: p.read_bytes() for p in finals} == finals
    assert again.stderr.count("done already") == 2
    assert "] evolve" not in again.stderr and "] final" not in again.stderr


@pytest.mark.slow
def test_suite_with_confirm_seeds_finals_the_confirmed_best(tmp_path):
    """`bench suite --confirm-seeds 1`: the task's evolve confirms its best on a new seed, and the
    table's evolved row is the final of that confirmed reward."""
    out = tmp_path / "suite"
    res = cli("bench", "suite", "--tasks", TASKS[0], "--out", str(out), *TINY, "--confirm-seeds", "1", "--json")
    assert res.returncode == 0, res.stderr
    row = last_json(res.stdout)["rows"][0]
    run = json.loads((Path(row["run_dir"]) / "run.json").read_text())
    final = json.loads((Path(row["run_dir"]) / "final.json").read_text())
    assert run["config"]["confirm_seeds"] == 1 and len(run["confirm"]["contenders"]) == 2  # K=2, 1 generation
    named = run["confirm"]["best"]
    assert {k: final["best"][k] for k in ("generation", "candidate")} == named
    assert {k: run["best"][k] for k in ("generation", "candidate")} == named
    assert row["evolved"]["mean"] == {r["method"]: r for r in final["rows"]}["evolved"]["fitness_mean"]
    assert "the best confirmed on 1 new seed(s)" in (out / "suite.md").read_text()


def test_suite_bad_input_is_one_line_exit_2_and_touches_nothing(tmp_path):
    out = tmp_path / "suite"
    for args, says in ((["--tasks", "inverted-pendulum-balance,no-such-task"], "unknown task 'no-such-task'"),
                       (["--tasks", "reacher-reach,reacher-reach"], "names a task twice"),
                       (["--tasks", "reacher-reach", "--seeds", "0"], "--seeds"),
                       (["--tasks", "reacher-reach", "--steps", "-5"], "--steps")):
        res = cli("bench", "suite", "--out", str(out), *args)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], (args, res.stderr)
        assert not out.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    res = cli("bench", "suite", "--tasks", "reacher-reach", "--out", str(blocker))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "--out" in res.stderr and "--runs-dir" not in res.stderr
    assert blocker.read_text() == "not a directory"


def test_the_default_suite_is_every_task_with_an_env_reward_cheapest_first(tmp_path):
    """Without --tasks the suite runs every task whose baseline is the env's own reward (Eureka's
    comparison), read from the task files: the twelve today, and a new task file joins by itself."""
    import shutil

    from rewardgen.bench.suite import SuiteConfig, default_tasks, parse_tasks
    from rewardgen.tasks.spec import ENVIRONMENTS_DIR, list_tasks

    tasks = default_tasks()
    with_env = {t.id for t in list_tasks() if t.baseline_kind == "env"}
    assert set(tasks) == with_env and len(tasks) == len(with_env) == 12
    assert {"double-pendulum-balance", "pusher-push", "swimmer-swim", "humanoid-run",
            "humanoid-stand-up"} <= set(tasks)
    assert not {"ant-circle", "halfcheetah-backflip", "hopper-backflip", "hopper-jump-in-place"} & set(tasks)
    budgets = {t.id: t.default_steps for t in list_tasks()}
    assert [budgets[t] for t in tasks] == sorted(budgets[t] for t in tasks)
    assert tasks[0] == "inverted-pendulum-balance"
    assert parse_tasks(None) == (tasks, {}) and SuiteConfig().tasks == tasks
    assert parse_tasks("swimmer-swim,ant-run=300k") == (["swimmer-swim", "ant-run"], {"ant-run": 300_000})

    # a task directory of its own: a new env-reward task joins, a sparse-baseline one does not
    for name in ("swimmer-swim", "ant-circle", "reacher-reach"):
        shutil.copy(ENVIRONMENTS_DIR / f"{name}.yaml", tmp_path)
    text = (ENVIRONMENTS_DIR / "reacher-reach.yaml").read_text().replace("id: reacher-reach", "id: reacher-near")
    (tmp_path / "reacher-near.yaml").write_text(text.replace("default_steps: 150000", "default_steps: 20000"))
    assert default_tasks(tmp_path) == ["reacher-near", "reacher-reach", "swimmer-swim"]


def test_offline_library_leaves_out_terms_the_robot_cannot_change():
    """The suite's reflection showed candidates spending terms on constants ("dropped drift/upright_body0:
    constant during training"): a planar robot cannot move sideways, a reacher's links cannot tilt, the
    reacher's target is not the robot, and a survival bonus pays the same every step where nothing ends
    an episode early. Terms that can vary stay."""
    from rewardgen.proposers.base import ProposalContext
    from rewardgen.proposers.library import term_library
    from rewardgen.proposers.offline import OfflineProposer
    from rewardgen.tasks.spec import get_task

    libs = {t: term_library(get_task(t), get_task(t).schema) for t in
            ("halfcheetah-run", "hopper-hop", "walker-run", "reacher-reach", "inverted-pendulum-balance", "ant-run",
             "swimmer-swim")}
    for planar in ("halfcheetah-run", "hopper-hop", "walker-run"):
        assert "drift" not in libs[planar] and "upright_torso" in libs[planar]
    assert not [k for k in libs["reacher-reach"] if k.startswith("upright_")]
    assert [k for k in libs["inverted-pendulum-balance"] if k.startswith("upright_")] == ["upright_pole"]
    assert {"drift", "upright_torso"} <= set(libs["ant-run"])  # the ant moves and tilts freely
    assert "drift" in libs["swimmer-swim"]  # it swims in the xy plane
    # a survival bonus only where an episode can end early: elsewhere it is the same every step
    for never_ends in ("halfcheetah-run", "reacher-reach", "swimmer-swim"):
        assert "alive" not in libs[never_ends], never_ends
    assert "alive" in libs["hopper-hop"] and "alive" in libs["ant-run"] and "alive" in libs["walker-run"]
    assert libs["inverted-pendulum-balance"]["alive"].goal  # surviving is the pendulum's goal
    task = get_task("reacher-reach")
    for p in OfflineProposer().propose(ProposalContext(task, task.schema, 0, 8, seed=3)):
        assert "upright" not in p.source


def test_the_gap_between_evolved_and_human_is_read_against_the_seeds_spread(tmp_path):
    # Welch's statistic by hand: means 2 and 1, sample variances 1 and 0 over 3 seeds: 1 / sqrt(1/3)
    assert gap_in_standard_errors([1, 2, 3], [1, 1, 1]) == pytest.approx(3 ** 0.5)
    assert gap_in_standard_errors([1, 1, 1], [1, 2, 3]) == pytest.approx(-(3 ** 0.5))
    assert gap_in_standard_errors([1, 1, 1], [1, 1, 1]) == 0.0  # both balanced on every seed: a tie
    assert gap_in_standard_errors([1, 1], [0.9, 0.9]) == float("inf")  # apart on every seed, neither varies
    assert gap_in_standard_errors([1], [0, 1]) is None  # one seed says nothing of the spread
    assert gap_in_standard_errors([1, float("nan")], [0, 1]) is None
    assert [gap_verdict(g) for g in (2.0, 1.99, -1.99, -2.0, float("-inf"), None)] == \
        ["above", "within noise", "within noise", "below", "below", None]

    def row(task, evolved, human):
        final = {"task": task, "steps": 1000, "seeds": 3, "score": None, "score_note": None,
                 "rows": [{"method": m, "fitness_mean": sum(v) / 3, "fitness_std": 0.0, "ok": 3, "seeds": 3,
                           "success_rate": 0.0} for m, v in (("evolved", evolved), ("human", human))],
                 "runs": [{"method": m, "seed_index": i, "status": "ok", "fitness": x}
                          for m, v in (("evolved", evolved), ("human", human)) for i, x in enumerate(v)]}
        return task_row(task, final, tmp_path)

    rows = [row("a", [0.9, 1.0, 1.1], [0.1, 0.2, 0.3]),   # far above: 9.8 standard errors
            row("b", [0.3, 0.5, 0.1], [0.4, 0.2, 0.6]),   # a loss within the seeds' luck
            row("c", [0.1, 0.2, 0.1], [0.9, 1.0, 1.1]),   # far below
            row("d", [1, 1, 1], [1, 1, 1])]               # a tie
    assert [r["gap"] for r in rows] == ["above", "within noise", "below", "within noise"]
    assert rows[1]["evolved_ge_human"] is False and rows[1]["gap_se"] == pytest.approx(-0.1 / (0.08 / 3) ** 0.5)
    md = markdown_table(summarise(rows, {"samples": 2, "generations": 1, "seeds": 3}))
    assert "| +9.8 se (above) |" in md and "| -0.6 se (within noise) |" in md and "| 0 (tie) |" in md
    assert "below human by 2 standard errors or more on 1" in md
    assert "The trainings do not record their install." in md  # records from before they did


def test_a_table_says_which_install_trained_it_and_flags_rows_from_another(tmp_path):
    """One seed trains another policy after the packages are installed again, so the table names the
    install and says when its rows (or one row's methods) came from more than one. Records from a run
    directory are untrusted: only known names with plain version strings are shown."""
    here = software()
    older = here | {"numpy": "2.3.0", "mujoco": "3.3.7"}
    hostile = {"torch": "<script>alert(1)</script>", "mujoco": "4.0\x1b[2J", "numpy": 7, "evil": "1.0",
               "gymnasium": "1.4.0"}

    def row(task, installs):
        runs = [{"method": m, "seed_index": i, "status": "ok", "fitness": float(i), "software": sw}
                for m in ("evolved", "human") for i, sw in enumerate(installs)]
        final = {"task": task, "steps": 1000, "seeds": 3, "score": None, "score_note": None, "runs": runs,
                 "rows": [{"method": m, "fitness_mean": 1.0, "fitness_std": 0.8, "ok": 3, "seeds": 3,
                           "success_rate": 0.0} for m in ("evolved", "human")]}
        return task_row(task, final, tmp_path)

    config = {"samples": 2, "generations": 1, "seeds": 3}
    one = markdown_table(summarise([row("a", [here] * 3), row("b", [here] * 3)], config))
    assert f"Trained with {software_text(here)}." in one and "installs" not in one

    mixed = summarise([row("a", [here] * 3), row("b", [older, here, here]), row("c", [hostile, None, hostile])],
                      config)
    md = markdown_table(mixed)
    assert "Trained under 4 installs" in md
    assert f"- {software_text(here)}: a, b" in md and f"- {software_text(older)}: b" in md
    assert "- gymnasium 1.4.0: c" in md and "- not recorded: c" in md  # only the plain version survives
    assert "<script>" not in md and "\x1b" not in md and "evil" not in md and " 7" not in md
