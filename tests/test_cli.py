"""The CLI: bad input gets one line and exit code 2, nothing on disk is harmed; describe/tasks work."""

from __future__ import annotations

import json

import pytest
from conftest import cli, last_json


def _assert_usage_error(res, fragment: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
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
        args = [*args, "--runs-dir", str(runs_dir)]
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


def test_ci_runs_exactly_the_readmes_test_command():
    """CI (.ci/run) runs the README's test command and nothing else: no exported MUJOCO_GL or other
    setting that a new user following the README would not have."""
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    command = next(line.split("#")[0].strip() for line in readme.splitlines()
                   if "scripts/setup-tests.sh" in line and "pytest" in line)
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert steps[-1] == command, steps
    assert steps[:-1] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."'], steps  # nothing else: no export


# ----- flags mean what they say
def _all_parsers():
    """rewardgen's parser and every subcommand's, recursively."""
    import argparse

    from rewardgen.cli.parser import build_parser

    todo, out = [build_parser()], []
    while todo:
        p = todo.pop()
        out.append(p)
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                todo.extend(a.choices.values())
    return out


def test_no_parser_takes_prefix_abbreviations():
    parsers = _all_parsers()
    assert len(parsers) > 15 and not [p.prog for p in parsers if p.allow_abbrev]
    import inspect

    import rewardgen.bench.sandbox as bench_sandbox
    import rewardgen.inspect.debug as debug
    import rewardgen.trainers.worker as worker

    for module in (bench_sandbox, debug, worker):  # the package's internal entry points too
        assert "allow_abbrev=False" in inspect.getsource(module), module.__name__


def test_every_env_step_flag_takes_100k_1_5m_1e5_and_underscores():
    from rewardgen.cli.common import env_steps

    flags = [(p, a) for p in _all_parsers() for a in p._actions
             if a.dest in ("steps", "halving_steps", "schedule_steps", "episode_length")]
    assert len(flags) >= 8
    wrong = [f"{p.prog} {a.option_strings}" for p, a in flags if a.type is not env_steps]
    assert not wrong, wrong  # every count of env-steps goes through the one parser
    from rewardgen.cli.parser import build_parser

    parser = build_parser()
    for text, n in (("100k", 100_000), ("1.5M", 1_500_000), ("1e5", 100_000), ("100_000", 100_000)):
        assert parser.parse_args(["evolve", "--task", "t", "--steps", text]).steps == n
        assert parser.parse_args(["train", "r.py", "--task", "t", "--steps", text]).steps == n
        assert parser.parse_args(["bench", "evolve", "--halving-steps", text]).halving_steps == n
        assert parser.parse_args(["final", "run", "--steps", text]).steps == n


@pytest.mark.parametrize("args, fragment", [
    (["evolve", "--task", "inverted-pendulum-balance", "--generation", "2"], "unrecognized arguments: --generation"),
    (["evolve", "--task", "inverted-pendulum-balance", "--sample", "2"], "unrecognized arguments: --sample"),
    (["evolve", "--task", "inverted-pendulum-balance", "--steps", "junk"], "--steps: expected a number of env-steps"),
    (["evolve", "--task", "inverted-pendulum-balance", "--steps", "1.5"], "not a whole number"),
    (["evolve", "--task", "inverted-pendulum-balance", "--steps", "0"], "positive"),
    (["train", "r.py", "--task", "inverted-pendulum-balance", "--steps", "10kk"], "--steps"),
    (["check", "r.py", "--task", "inverted-pendulum-balance", "--steps", "1e-2"], "--steps"),
    (["evolve", "--task", "inverted-pendulum-balance", "--frame-skip", "2"], "--frame-skip goes with --env"),
    (["evolve", "--task", "inverted-pendulum-balance", "--episode-length", "5k"], "--episode-length goes with --env"),
    (["evolve", "--task", "inverted-pendulum-balance", "--id", "mine"], "--id goes with --env"),
    (["evolve", "--task", "halfcheetah-run", "--fitness", "forward_velocity(body=nope)"], "no body named 'nope'"),
    (["evolve", "--task", "halfcheetah-run", "--fitness", "speed()"], "unknown fitness 'speed'"),
    (["evolve", "--task", "reacher-reach", "--fitness", "forward_velocity(body=fingertip)"], "does not apply"),
    (["bench", "suite", "--tasks", "reacher-reach=lots"], "--tasks reacher-reach=lots"),
])
def test_flag_mistakes_exit_2_with_one_line(args, fragment, runs_dir):
    if args[0] in ("evolve", "train"):
        args = [*args, "--runs-dir", str(runs_dir)]
    _assert_usage_error(cli(*args), fragment)
    assert list(runs_dir.iterdir()) == []


def test_replay_refuses_flags_it_would_ignore(tmp_path, runs_dir):
    recorded = tmp_path / "recorded"
    (recorded / "llm-cache").mkdir(parents=True)
    res = cli("evolve", "--replay", str(recorded), "--samples", "8", "--fitness", "alive_fraction",
              "--runs-dir", str(runs_dir))
    _assert_usage_error(res, "--fitness, --samples would be ignored")
    assert list(runs_dir.iterdir()) == []


def test_version_names_the_package_mujoco_and_the_renderer():
    import rewardgen

    res = cli("--version")
    assert res.returncode == 0 and res.stderr == ""
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rewardgen {rewardgen.__version__} (") and "MuJoCo " in lines[0]
    assert "renderer: " in lines[0]


def test_a_task_takes_another_fitness_threshold_and_goal():
    from rewardgen.tasks.spec import get_task, with_overrides

    hopper = get_task("hopper-hop")
    task, notes = with_overrides(hopper, fitness="alive_fraction")
    assert task.fitness == {"name": "alive_fraction", "params": {}} and task.success_threshold == 0.95
    assert task.id == hopper.id and hopper.fitness["name"] == "forward_velocity"  # the original is untouched
    assert notes == ["trusted fitness: alive_fraction() instead of the task's forward_velocity(body=torso, axis=x)",
                     "success threshold: 0.95, alive_fraction's default (give --success-threshold to choose)"]
    task, notes = with_overrides(hopper, fitness="forward_velocity(body=torso, axis=x, sign=-1)", success_threshold=0.3,
                                 describe="hop backwards")
    assert task.fitness["params"]["sign"] == -1 and task.success_threshold == 0.3
    assert task.description == "hop backwards" and len(notes) == 3
    assert with_overrides(hopper, fitness="forward_velocity(body=torso, axis=x)") == (hopper, [])  # its own: no change


@pytest.mark.slow
def test_fitness_with_task_is_the_fitness_the_run_uses(runs_dir):
    """``evolve --task T --fitness F`` trains and judges with F (run.json records it), and says so."""
    res = cli("evolve", "--task", "inverted-pendulum-balance", "--fitness", "height(body=pole)",
              "--success-threshold", "0.55", "--samples", "1", "--generations", "1", "--steps", "1k", "--no-video",
              "--llm", "offline", "--runs-dir", str(runs_dir), "--json")
    assert res.returncode == 0, res.stderr
    assert "trusted fitness: height(body=pole) instead of the task's alive_fraction()" in res.stderr
    run_dir = last_json(res.stdout)["run_dir"]
    run = json.loads((__import__("pathlib").Path(run_dir) / "run.json").read_text())
    assert run["task"]["fitness"] == {"name": "height", "params": {"body": "pole"}}
    assert run["task"]["success_threshold"] == 0.55
    metrics = json.loads(next(__import__("pathlib").Path(run_dir).glob("gen-000/cand-00/metrics.json")).read_text())
    # the pole's frame sits on the hinge, at height 0 all episode long; alive_fraction is never 0
    assert metrics["status"] == "ok" and metrics["fitness"] == pytest.approx(0.0, abs=1e-6)
