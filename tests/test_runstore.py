"""Atomic writes, corrupt run directories, and resume after a real kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, cli, last_json

from rewardgen import store as runstore
from rewardgen.store import RunStore, RunStoreError, atomic_write_json


def test_atomic_write_keeps_old_content_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"v": 1})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(runstore.os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_atomic_write_never_exposes_a_partial_file(tmp_path):
    """A reader polling while a writer rewrites a large file only ever sees whole documents."""
    target = tmp_path / "run.json"
    atomic_write_json(target, {"n": 0, "pad": "x" * 200_000})
    writer = subprocess.Popen([sys.executable, "-c", f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from rewardgen.store import atomic_write_json
for i in range(1, 150):
    atomic_write_json(Path({str(target)!r}), {{"n": i, "pad": "x" * 200_000}})
"""])
    seen = 0
    while writer.poll() is None:
        seen = max(seen, json.loads(target.read_text())["n"])
    assert writer.returncode == 0
    assert json.loads(target.read_text())["n"] == 149


def test_a_relative_runs_dir_keeps_every_file_in_its_run(tmp_path, monkeypatch):
    """The default --runs-dir is the relative `runs`: a candidate's files must land in runs/<id>/gen-0/...,
    beside run.json, not one run directory deeper."""
    monkeypatch.chdir(tmp_path)
    store = RunStore.create(Path("runs"), "x", {"kind": "evolve", "status": "running"})
    store.write_json(store.cand_dir(0, 0) / "metrics.json", {"status": "ok"})
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert "runs/x/gen-000/cand-00/metrics.json" in written and "runs/x/run.json" in written, written
    assert not (tmp_path / "runs" / "x" / "runs").exists()
    assert store.read_json(store.cand_dir(0, 0) / "metrics.json") == {"status": "ok"}


def test_open_rejects_missing_and_corrupt_runs(tmp_path):
    with pytest.raises(RunStoreError, match="no run directory"):
        RunStore.open(tmp_path / "nope")
    (tmp_path / "r").mkdir()
    with pytest.raises(RunStoreError, match="not a run directory"):
        RunStore.open(tmp_path / "r")
    (tmp_path / "r" / "run.json").write_text("{not json")
    with pytest.raises(RunStoreError, match="corrupt"):
        RunStore.open(tmp_path / "r")


def test_lock_refuses_a_second_process(tmp_path):
    store = RunStore.create(tmp_path, "x", {"config": {}, "task": {}, "status": "created"})
    store.lock()
    other = RunStore.open(store.path)
    with pytest.raises(RunStoreError, match="in use"):
        other.lock()
    store.unlock()
    other.lock()
    other.unlock()


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out |= {int(p) for p in (task / "children").read_text().split()}
    except OSError:  # it exited meanwhile
        pass
    return out


def _descendants(pid: int) -> set[int]:
    """Children, grandchildren (the workers the zygote forks), and so on."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        new = _children(todo.pop()) - out
        out |= new
        todo.extend(new)
    return out


def _is_training_worker(pid: int) -> bool:
    """A worker process: forked from the zygote (named rg:worker) or started fresh (-m ...worker)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return comm == "rg:worker" or b"rewardgen.trainers.worker" in cmdline


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_resume_after_kill_9(runs_dir):
    """kill -9 the orchestrator mid-run; resume finishes without retraining finished candidates."""
    args = [sys.executable, "-m", "rewardgen", "evolve", "--task", "inverted-pendulum-balance", "--samples", "3",
            "--generations", "2", "--steps", "2048", "--workers", "1", "--schedule", "full", "--runs-dir", str(runs_dir),
            "--json"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    run_dir = None
    while time.monotonic() < deadline:
        dirs = list(runs_dir.iterdir())
        if dirs and (dirs[0] / "gen-000" / "cand-00" / "metrics.json").exists():
            run_dir = dirs[0]
            break
        time.sleep(0.2)
    assert run_dir is not None, "the first candidate never finished"
    assert proc.poll() is None, "the run finished before it could be killed"
    # wait for the next candidate's worker: a training worker that was not there when cand-00 finished
    earlier = {p for p in _descendants(proc.pid) if _is_training_worker(p)}
    started: set[int] = set()
    while time.monotonic() < deadline and not started and proc.poll() is None:
        started = {p for p in _descendants(proc.pid) if _is_training_worker(p)} - earlier
        time.sleep(0.05)
    assert started, "the next candidate's worker never started"
    workers = _descendants(proc.pid)  # the zygote, the workers it forked, their jails
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # the workers die with the orchestrator (no orphan keeps training)
    gone_by = time.monotonic() + 5
    orphans = [p for p in workers if _alive(p)]
    while orphans and time.monotonic() < gone_by:
        time.sleep(0.05)
        orphans = [p for p in workers if _alive(p)]
    assert orphans == [], f"worker processes outlived the orchestrator: {orphans}"

    finished_before = {p: p.read_bytes() for p in run_dir.glob("gen-*/cand-*/metrics.json")}
    assert finished_before
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    res = cli("resume", str(run_dir), "--json")
    assert res.returncode == 0, res.stderr
    summary = last_json(res.stdout)
    assert [len(g["candidates"]) for g in summary["generations"]] == [3, 3]
    statuses = [(c["status"], c["error"]) for g in summary["generations"] for c in g["candidates"]]
    assert all(s == "ok" for s, _ in statuses), statuses
    for path, content in finished_before.items():
        assert path.read_bytes() == content, f"{path} was retrained"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["best"]["fitness"] is not None
