"""The CLI: bad input gets one line and exit code 2, nothing on disk is harmed; describe/tasks work."""

from __future__ import annotations

import json

import pytest

from conftest import cli, last_json


def _assert_usage_error(res, fragment: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [l for l in res.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert fragment in lines[0]


@pytest.mark.parametrize("args, fragment", [
    (["evolve", "--task", "no-such-task"], "unknown task 'no-such-task'"),
    (["evolve", "--task", "halfcheetah-run", "--samples", "0"], "--samples"),
    (["evolve", "--task", "halfcheetah-run", "--generations", "-1"], "--generations"),
    (["evolve", "--task", "halfcheetah-run", "--steps", "abc"], "--steps"),
    (["evolve", "--task", "halfcheetah-run", "--timeout", "0"], "--timeout"),
    (["evolve"], "--task"),
    (["train", "/nonexistent/reward.py", "--task", "halfcheetah-run"], "no such reward file"),
    (["resume", "/nonexistent/run"], "no run directory"),
    (["describe", "nope"], "unknown task"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(args, fragment, runs_dir):
    if args[0] in ("evolve", "train"):
        args = args + ["--runs-dir", str(runs_dir)]
    _assert_usage_error(cli(*args), fragment)
    assert list(runs_dir.iterdir()) == []  # nothing was created


def test_corrupt_run_dir_is_reported_and_left_untouched(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{ this is not json")
    (run / "notes.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    _assert_usage_error(cli("resume", str(run)), "corrupt")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    _assert_usage_error(cli("resume", str(run)), "missing 'config'")


def test_tasks_lists_the_foundation_tasks():
    res = cli("tasks", "--json")
    assert res.returncode == 0
    tasks = {t["id"]: t for t in last_json(res.stdout)}
    for tid in ("inverted-pendulum-balance", "reacher-reach", "halfcheetah-run", "hopper-hop", "ant-run"):
        assert tasks[tid]["description"]
        assert tasks[tid]["fitness"]["name"]
    human = cli("tasks")
    assert human.returncode == 0 and "halfcheetah-run" in human.stdout


def test_describe_prints_the_derived_schema_and_contract():
    res = cli("describe", "hopper-hop")
    assert res.returncode == 0, res.stderr
    for text in ("compute_reward(s)", "thigh_joint", "torso", "actuator0", "s.dt = 0.008", "Hopper-v5"):
        assert text in res.stdout
    data = last_json(cli("describe", "hopper-hop", "--json").stdout)
    assert "foot_joint" in data["user"] and "reward contract" in data["system"]


def test_help_documents_every_command():
    res = cli("--help")
    assert res.returncode == 0
    for cmd in ("evolve", "resume", "train", "tasks", "describe"):
        assert cmd in res.stdout
    res = cli("evolve", "--help")
    for flag in ("--samples", "--generations", "--steps", "--seed", "--runs-dir", "--json"):
        assert flag in res.stdout
