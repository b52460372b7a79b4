"""Hostile run directories (issue 31, item 1): someone else's run is data, never instructions.

Each run here is made with the real store and then made hostile the way a shared directory can be:
files and folders that are symlinks to the user's own files, a ``run.lock`` and a ``web-job.log`` that
point at a shell start-up file, an LLM endpoint of the attacker's in ``run.json`` (a real local
OpenAI-compatible server that records whether an API key arrived), shell and Python text in the
task. Each test asserts the effect did not happen: no key leaves, nothing outside the run is written
or shown, nothing runs. The positive controls (``--use-run-endpoint``, the user's own ``--base-url``)
prove the key-leak test can fail.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from conftest import cli
from llm_server import ScriptedServer
from test_feedback import fake_run

from rewardgen.run.config import EvolveConfig
from rewardgen.run.evolve import start_run
from rewardgen.store import RunStore, atomic_write_json

KEY = "sk-victim-key-123"
SECRET = "the user's private text: ssh-ed25519 AAAA-private"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "home" / "private.txt"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


@pytest.fixture
def bashrc(tmp_path: Path) -> Path:
    path = tmp_path / "home" / ".bashrc"
    path.parent.mkdir(exist_ok=True)
    path.write_text("# the user's shell start-up file\n")
    return path


# ----- the LLM endpoint comes from the user, never from the run
def _llm_run(runs_dir: Path, base_url: str) -> Path:
    """A real LLM run (the real store, start_run) that recorded ``base_url`` and was interrupted."""
    config = EvolveConfig(task="inverted-pendulum-balance", samples=1, generations=1, steps=256, llm="openai",
                          base_url=base_url, video=False, workers=1)
    store = start_run(config, runs_dir)
    run = store.read_run()
    store.write_run(dict(run, status="interrupted"))
    return store.path


def _no_code(request: dict, index: int) -> dict:
    return {"texts": ["I will not write code today."] * int(request.get("n") or 1)}


def test_resume_never_sends_the_key_to_the_runs_endpoint(runs_dir: Path):
    with ScriptedServer(_no_code) as hostile:
        run = _llm_run(runs_dir, hostile.base_url)
        before = (run / "run.json").read_text()
        res = cli("resume", str(run), env={"OPENAI_API_KEY": KEY}, timeout=300)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and hostile.base_url in lines[0] and "--use-run-endpoint" in lines[0], res.stderr
        assert hostile.requests == [] and hostile.authorizations == []
        assert (run / "run.json").read_text() == before  # nothing changed on disk
        # positive control: the user trusts the run's endpoint explicitly; then (only then) the key goes there
        res = cli("resume", str(run), "--use-run-endpoint", env={"OPENAI_API_KEY": KEY}, timeout=300)
        assert res.returncode == 1, res.stderr  # no code in the answers: nothing trained, one line
        assert hostile.authorizations and set(hostile.authorizations) == {f"Bearer {KEY}"}


def test_resume_with_the_users_endpoint_leaves_the_runs_alone(runs_dir: Path):
    with ScriptedServer(_no_code) as hostile, ScriptedServer(_no_code) as mine:
        run = _llm_run(runs_dir, hostile.base_url)
        res = cli("resume", str(run), "--base-url", mine.base_url, env={"OPENAI_API_KEY": KEY}, timeout=300)
        assert res.returncode == 1, res.stderr
        assert hostile.requests == []
        assert mine.authorizations and set(mine.authorizations) == {f"Bearer {KEY}"}
        assert json.loads((run / "run.json").read_text())["config"]["base_url"] == mine.base_url  # recorded


def test_web_next_generation_never_sends_the_key_to_the_runs_endpoint(runs_dir: Path, monkeypatch):
    from rewardgen.web import JobError, Jobs

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with ScriptedServer(_no_code) as hostile:
        run = _llm_run(runs_dir, hostile.base_url)
        before = (run / "run.json").read_text()
        jobs = Jobs()
        with pytest.raises(JobError, match="--use-run-endpoint"):
            jobs.start_next(run)
        jobs.wait_all(30)
        assert hostile.requests == [] and not (run / "web-job.log").exists()
        assert (run / "run.json").read_text() == before


def test_prompt_templates_and_ray_cluster_of_a_run_are_not_used(runs_dir: Path, tmp_path: Path):
    evil = tmp_path / "evil-prompts"
    evil.mkdir()
    pwned = tmp_path / "pwned"
    # a Jinja2 template that would run code in the orchestrator if rendered unsandboxed
    (evil / "system.j2").write_text("{{ cycler.__init__.__globals__.os.system('touch " + str(pwned) + "') }}")
    for name in ("task.j2", "reflection.j2"):
        (evil / name).write_text("x")
    store = RunStore(fake_run(runs_dir, status="interrupted"))
    run = store.read_run()
    run["config"] |= {"prompts": str(evil), "proposer": "offline"}
    store.write_run(run)
    res = cli("resume", str(store.path), timeout=300)
    assert res.returncode == 2 and "--prompts" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    run["config"] |= {"prompts": None, "executor": "ray", "ray_address": "10.0.0.66:6379"}
    store.write_run(run)
    res = cli("resume", str(store.path), timeout=300)
    assert res.returncode == 2 and "--ray-address" in res.stderr
    assert not pwned.exists()


# ----- symlinks: nothing outside the run is read, shown or written
def test_report_and_web_show_nothing_from_outside_the_run(runs_dir: Path, secret: Path, tmp_path: Path):
    from fastapi.testclient import TestClient

    from rewardgen.inspect.report import write_report
    from rewardgen.web import create_app

    run = fake_run(runs_dir, samples=2)
    reward = run / "gen-000" / "cand-00" / "reward.py"
    reward.unlink()
    reward.symlink_to(secret)  # a reward.py that is a link to the user's file
    (run / "gen-000" / "cand-01" / "metrics.json").unlink()
    (run / "gen-000" / "cand-01" / "metrics.json").symlink_to(secret)
    (run / "gen-000" / "cand-00" / "video.mp4").symlink_to(secret)
    other = tmp_path / "elsewhere" / "gen-000" / "cand-00"  # a whole folder that is a link
    other.mkdir(parents=True)
    (other / "reward.py").write_text(f"# {SECRET}\n")
    (run / "gen-001").symlink_to(other.parent)
    out = write_report(run)
    html = out.read_text()
    assert SECRET not in html and "private" not in html
    assert "symbolic link" in html  # said, not hidden
    client = TestClient(create_app(runs_dir), base_url="http://127.0.0.1")
    for url in (f"/runs/{run.name}", f"/runs/{run.name}/gen/0", f"/runs/{run.name}/gen/1",
                f"/runs/{run.name}/gen/0/cand/0/video.mp4"):
        page = client.get(url)
        assert SECRET not in page.text and "private" not in page.text, url
    assert client.get(f"/runs/{run.name}/gen/0/cand/0/video.mp4").status_code == 404
    assert secret.read_text() == SECRET


def test_run_lock_and_web_job_log_links_write_nothing_outside(runs_dir: Path, bashrc: Path, tmp_path: Path):
    from rewardgen.web import JobError, Jobs

    run = fake_run(runs_dir, status="interrupted")
    (run / "run.lock").symlink_to(bashrc)
    res = cli("resume", str(run), timeout=300)
    assert res.returncode == 2 and "run.lock" in res.stderr and "symbolic link" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    (run / "run.lock").unlink()
    # a web-job.log linked to the shell start-up file, and a task id that is a shell line
    store = RunStore(run)
    record = store.read_run()
    record["task"]["id"] = f"x; touch {tmp_path / 'pwned'} #"
    store.write_run(record)
    (run / "web-job.log").symlink_to(bashrc)
    with pytest.raises(JobError, match="symbolic link"):
        Jobs().start_next(run)
    assert bashrc.read_text() == "# the user's shell start-up file\n"
    assert not (tmp_path / "pwned").exists()


def test_printed_commands_quote_the_run_path(tmp_path: Path):
    """A runs folder whose name is a shell line: the command rewardgen prints for the user to copy (here
    ``rewardgen resume RUN`` after the endpoint refused the key) keeps the path one shell word."""
    runs = tmp_path / "runs; touch pwned #"
    with ScriptedServer(lambda request, index: {"status": 401}) as server:
        res = cli("evolve", "--task", "inverted-pendulum-balance", "--steps", "256", "--samples", "1", "--generations",
                  "1", "--llm", "openai", "--base-url", server.base_url, "--no-video", "--runs-dir", str(runs),
                  env={"OPENAI_API_KEY": KEY}, timeout=300)
    assert res.returncode == 1, res.stderr
    run_dir = next(runs.iterdir())
    lines = [ln for ln in res.stderr.splitlines() if "rewardgen resume" in ln]
    assert lines, res.stderr
    for line in lines:
        command = line[line.index("rewardgen resume"):].rstrip(")`")
        assert shlex.split(command)[2] == str(run_dir), line
    assert not (tmp_path / "pwned").exists()


def test_code_in_task_text_never_runs(runs_dir: Path, tmp_path: Path):
    """Task text with Python and shell in it: export writes it as data (imported, nothing runs), and the
    report and resume only show it."""
    import importlib.util

    from rewardgen.inspect.export import export_reward

    pwned = tmp_path / "pwned"
    run = fake_run(runs_dir)
    store = RunStore(run)
    record = store.read_run()
    from rewardgen.tasks.spec import get_task

    task = get_task("inverted-pendulum-balance").to_dict()
    payload = f'"""\nimport os; os.system("touch {pwned}")\n"""\n$(touch {pwned})\n`touch {pwned}`'
    task |= {"description": payload, "id": f"x\"\"\"; import os; os.system('touch {pwned}') #"}
    task["fitness"] = dict(task["fitness"], name=f"f'''\\nimport os\\nos.system('touch {pwned}')#")
    record |= {"task": task, "best": {"generation": 0, "candidate": 0, "fitness": 1.0}}
    store.write_run(record)
    atomic_write_json(run / "gen-000" / "cand-00" / "metrics.json", {"status": "ok", "fitness": 1.0})
    out = export_reward(run, None, tmp_path / "exported.py")
    spec = importlib.util.spec_from_file_location("exported_hostile", out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert not pwned.exists()
    assert mod.TASK_DESCRIPTION == payload  # kept as data, exactly
    from rewardgen.inspect.report import write_report

    write_report(run)
    assert not pwned.exists()
    assert sys.modules.get("exported_hostile") is None
