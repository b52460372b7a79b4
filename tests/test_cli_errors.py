"""Every bad input of issue 19 through the real CLI: exit code 2, exactly one line on stderr that
names the cause, no traceback, and nothing on disk created, changed or orphaned."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
from conftest import GOOD_PENDULUM_REWARD, cli, traceback_runs

from rewardgen.contract.policy import PolicyExport
from rewardgen.store import RunStore
from rewardgen.tasks.spec import ENVIRONMENTS_DIR


def one_line_error(res, *fragments: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "error: rewardgen" not in lines[0]  # no doubled "rewardgen: error: rewardgen evolve:" prefix
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ----- --runs-dir
@pytest.mark.slow
def test_runs_dir_that_is_a_file_or_cannot_hold_runs(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for runs_dir, fragment in ((afile, "is not a directory"), (afile / "sub", "cannot create the runs directory"),
                               (Path("/proc"), "cannot create a run in /proc"),
                               (Path("/proc/rewardgen-runs"), "cannot create the runs directory")):
        res = cli("evolve", "--task", "inverted-pendulum-balance", "--samples", "1", "--generations", "1",
                  "--steps", "100", "--runs-dir", str(runs_dir))
        line = one_line_error(res, fragment, str(runs_dir))
        assert "--runs-dir" in line  # says what to change
    assert afile.read_text() == "keep me"
    res = cli("train", str(tmp_path / "r.py"), "--task", "inverted-pendulum-balance", "--runs-dir", str(afile))
    one_line_error(res, "no such reward file")


def test_run_files_get_the_umask_permissions_not_0600(tmp_path):
    store = RunStore.create(tmp_path, "run", {"status": "created"})
    mode = stat.S_IMODE((store.path / "run.json").stat().st_mode)
    assert mode == 0o666 & ~umask()


# ----- task files
@pytest.mark.slow
def test_task_yaml_with_an_unknown_env_id_leaves_no_run(tmp_path, runs_dir):
    raw = (ENVIRONMENTS_DIR / "inverted-pendulum-balance.yaml").read_text()
    bad = tmp_path / "typo.yaml"
    bad.write_text(raw.replace("InvertedPendulum-v5", "InvertedPendulum-v9"))
    for args in (["evolve", "--task", str(bad), "--runs-dir", str(runs_dir)],
                 ["train", str(_reward(tmp_path)), "--task", str(bad), "--runs-dir", str(runs_dir)],
                 ["describe", str(bad)]):
        line = one_line_error(cli(*args), "unknown gymnasium env id 'InvertedPendulum-v9'", str(bad))
        assert "InvertedPendulum-v5" in line  # the close match is suggested
    assert list(runs_dir.iterdir()) == []  # no orphan run with status "created"


@pytest.mark.slow
def test_task_yaml_whose_model_file_is_broken_leaves_no_run(tmp_path, runs_dir):
    xml = tmp_path / "robot.xml"
    xml.write_text("<mujoco>\n<worldbody>\n<body name='a'>\n</worldbody>\n</mujoco>\n")
    task = tmp_path / "robot.yaml"
    task.write_text("id: robot\ndescription: walk\nmjcf: robot.xml\nepisode_length: 100\n"
                    "fitness: {name: forward_velocity, params: {body: a}}\nsuccess_threshold: 1.0\n"
                    "default_steps: 1000\n")
    one_line_error(cli("evolve", "--task", str(task), "--runs-dir", str(runs_dir)), "XML_ERROR_MISMATCHED_ELEMENT")
    assert list(runs_dir.iterdir()) == []


@pytest.mark.slow
def test_missing_task_file_is_called_missing_not_unknown(tmp_path, runs_dir):
    missing = tmp_path / "nowhere" / "task.yaml"
    line = one_line_error(cli("evolve", "--task", str(missing), "--runs-dir", str(runs_dir)),
                          f"no such task file: {missing}")
    assert "unknown task" not in line and "known tasks" not in line
    assert list(runs_dir.iterdir()) == []


@pytest.mark.slow
def test_broken_mjcf_parse_error_is_shown_whole(tmp_path, runs_dir):
    xml = tmp_path / "broken.xml"
    xml.write_text("<mujoco>\n<worldbody>\n<body name='a'>\n</worldbody>\n</mujoco>\n")
    res = cli("evolve", "--env", str(xml), "--describe", "walk", "--fitness", "forward_velocity(body=a)",
              "--runs-dir", str(runs_dir))
    one_line_error(res, "XML parse error", "XML_ERROR_MISMATCHED_ELEMENT", "Line number=3")
    out = tmp_path / "robot.yaml"
    res = cli("task", "new", "--env", str(xml), "--describe", "walk", "--fitness", "forward_velocity(body=a)",
              "-o", str(out))
    one_line_error(res, "XML_ERROR_MISMATCHED_ELEMENT")
    assert not out.exists() and list(runs_dir.iterdir()) == []


# ----- serve
@pytest.mark.slow
def test_serve_port_out_of_range_and_port_in_use(runs_dir):
    one_line_error(cli("serve", "--port", "99999", "--runs-dir", str(runs_dir)), "--port", "1 to 65535")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = cli("serve", "--port", str(port), "--runs-dir", str(runs_dir))
    one_line_error(res, f"port {port}", "already in use", "--port")
    assert "http://" not in res.stdout + res.stderr  # never claims the UI started


# ----- export and report
def _run_with(root: Path, source: str, metrics: dict) -> Path:
    run = root / "run"
    d = run / "gen-000" / "cand-00"
    d.mkdir(parents=True)
    (d / "reward.py").write_text(source)
    (d / "metrics.json").write_text(json.dumps(metrics))
    task = json.loads(json.dumps({"id": "inverted-pendulum-balance", "env": "InvertedPendulum-v5",
                                  "description": "balance", "episode_length": 1000,
                                  "fitness": {"name": "alive_fraction", "params": {}}, "success_threshold": 0.95,
                                  "default_steps": 50000}))
    (run / "run.json").write_text(json.dumps({"status": "finished", "config": {}, "task": task,
                                              "best": {"generation": 0, "candidate": 0, "fitness": 1.0}}))
    return run


def test_export_of_a_candidate_with_a_syntax_error_or_a_broken_contract(tmp_path):
    syntax = _run_with(tmp_path / "a", "def compute_reward(s)\n    return s.step, {}\n", {"status": "static"})
    before = snapshot(tmp_path)
    out = tmp_path / "out.py"
    one_line_error(cli("export", str(syntax), "--candidate", "g0c0", "-o", str(out)),
                   "candidate g0c0", "does not parse", "SyntaxError", "line 1")
    broken = _run_with(tmp_path / "b", GOOD_PENDULUM_REWARD,
                       {"status": "contract", "error": "compute_reward must return (total, dict)"})
    before = snapshot(tmp_path)
    one_line_error(cli("export", str(broken), "-o", str(out)), "broke the reward contract", "(total, dict)")
    assert not out.exists() and snapshot(tmp_path) == before


@pytest.mark.slow
def test_export_and_report_into_unwritable_or_missing_folders(tmp_path):
    run = _run_with(tmp_path / "a", GOOD_PENDULUM_REWARD, {"status": "ok", "fitness": 1.0})
    afile = tmp_path / "afile"
    afile.write_text("x")
    before = snapshot(tmp_path)
    for out, fragment in ((Path("/proc/reward.py"), "cannot write /proc/reward.py"),
                          (afile / "reward.py", "is not a folder"),
                          (tmp_path / "no" / "reward.py", "does not exist"),
                          (tmp_path, "is a directory")):
        one_line_error(cli("export", str(run), "-o", str(out)), fragment)
        one_line_error(cli("report", str(run), "-o", str(out.with_suffix(".html") if out != tmp_path else out)),
                       fragment.replace("reward.py", "reward.html"))
    assert snapshot(tmp_path) == before
    res = cli("export", str(run), "-o", str(tmp_path / "ok.py"))
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE((tmp_path / "ok.py").stat().st_mode) == 0o666 & ~umask()


# ----- debug --policy of another task
@pytest.mark.slow
def test_debug_with_a_policy_of_another_task_blames_the_policy(tmp_path):
    arrays = {"obs_mean": np.zeros(17, np.float32), "obs_var": np.ones(17, np.float32),
              "w0": np.zeros((8, 17), np.float32), "b0": np.zeros(8, np.float32),
              "w1": np.zeros((6, 8), np.float32), "b1": np.zeros(6, np.float32)}
    policy = tmp_path / "cheetah-policy.npz"
    policy.write_bytes(PolicyExport(arrays).to_bytes())
    line = one_line_error(cli("debug", str(_reward(tmp_path)), "--task", "inverted-pendulum-balance",
                              "--policy", str(policy)),
                          "--policy", "does not fit task inverted-pendulum-balance", "17 observations", "has 4")
    assert "reward could not be run" not in line


# ----- help and argparse errors
def test_help_lists_every_bench_and_argparse_errors_have_one_prefix():
    res = cli("--help")
    assert res.returncode == 0 and "schedule" in res.stdout
    line = one_line_error(cli("evolve", "--task", "halfcheetah-run", "--samples", "0"), "--samples")
    assert line.startswith("rewardgen evolve: error: argument --samples")
    line = one_line_error(cli("evolve"), "--task")
    assert line.startswith("rewardgen evolve: error:") and line.count("rewardgen") == 1


def test_the_traceback_check_can_fail():
    """The autouse check in conftest fails a test whose CLI call printed a traceback."""
    import subprocess

    crash = subprocess.CompletedProcess(["rewardgen"], 1, "", 'Traceback (most recent call last):\n  File "x"\n')
    assert traceback_runs([(["x"], crash)]) == [["x"]]
    assert traceback_runs([(["x"], subprocess.CompletedProcess(["rewardgen"], 2, "", "rewardgen: error: x\n"))]) == []


def _reward(tmp_path: Path) -> Path:
    path = tmp_path / "reward.py"
    path.write_text(GOOD_PENDULUM_REWARD)
    return path
