"""Executors (issue 8): worker jobs on local threads or as Ray tasks on a real local Ray cluster.

The Ray test starts Ray in-process on 127.0.0.1 with 2 CPUs, runs an evolve-like set of jobs
(3 check jobs, one of them a broken reward, and 2 tiny train jobs) and kills Ray worker processes
mid-task with SIGKILL: a job killed once is retried and completes; a job killed on both attempts
comes back with stage "lost"; every other job completes. Results come back as data.
Needs the ``ray`` extra (``pip install -e '.[ray]'``); skipped without it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import GOOD_PENDULUM_REWARD

from rewardgen.contract.policy import PolicyExport
from rewardgen.procs import WorkerLimits
from rewardgen.run.executors import RAY_MISSING, LocalExecutor, RayExecutor
from rewardgen.tasks.spec import get_task

TASK = get_task("inverted-pendulum-balance")
BROKEN = "import torch\n\ndef compute_reward(s):\n    return s.qpos, {}\n"  # wrong shape: contract error
LIMITS = WorkerLimits(wall_seconds=240)


def _check(source: str, seed: int) -> dict:
    return {"mode": "check", "task": TASK.to_dict(), "source": source, "steps": 64, "num_envs": 4, "seed": seed}


def _train(steps: int, seed: int, **extra) -> dict:
    return {"mode": "train", "task": TASK.to_dict(), "source": GOOD_PENDULUM_REWARD, "steps": steps, "seed": seed,
            "trainer": "sb3", **extra}


def _wait_for(path: Path, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_local_executor_runs_jobs():
    with LocalExecutor(2) as ex:
        good, bad = ex.submit(_check(GOOD_PENDULUM_REWARD, 0), LIMITS), ex.submit(_check(BROKEN, 1), LIMITS)
        assert good.result().ok, good.result().error
        assert bad.result().stage == "contract"
    with pytest.raises(ValueError):
        LocalExecutor(0)


def test_ray_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ImportError, match=r"rewardgen\[ray\]"):
        RayExecutor()
    assert "pip install" in RAY_MISSING


@pytest.fixture(scope="module")
def ray_cluster():
    try:
        import ray
    except ImportError:
        pytest.skip("ray is not installed (pip install -e '.[ray]'); the Ray executor is not tested")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_executor_jobs_and_lost_workers(ray_cluster, tmp_path):
    started = time.monotonic()
    ex = RayExecutor(num_cpus_per_task=0.5)  # Ray is up already: the executor joins it and leaves it running
    try:
        killed_once, killed_twice = tmp_path / "once.pid", tmp_path / "twice.pid"
        # the jobs whose workers get killed go first so they start at once
        twice = ex.submit(_train(10_000_000, 7, _executor_pid_file=str(killed_twice)), LIMITS)
        once = ex.submit(_train(2048, 8, _executor_pid_file=str(killed_once)), LIMITS)
        for attempt, pid_file in ((0, killed_twice), (0, killed_once)):
            os.kill(_wait_for(Path(f"{pid_file}.{attempt}")), signal.SIGKILL)
        events: list[dict] = []
        checks = [ex.submit(_check(GOOD_PENDULUM_REWARD, s), LIMITS) for s in (0, 1)] + [
            ex.submit(_check(BROKEN, 2), LIMITS)]
        trains = [ex.submit(_train(2048, s), LIMITS, on_event=events.append) for s in (3, 4)]
        os.kill(_wait_for(Path(f"{killed_twice}.1")), signal.SIGKILL)  # its retry dies too

        lost = twice.result(timeout=120)
        assert lost.stage == "lost" and not lost.ok
        assert "lost 2 time(s)" in lost.error and "attempt 2" in lost.error

        retried = once.result(timeout=120)
        assert retried.ok, retried.error
        assert any("retried after a lost attempt" in w for w in retried.warnings)
        assert Path(f"{killed_once}.1").exists()

        results = [f.result(timeout=120) for f in checks]
        assert [r.stage for r in results] == ["ok", "ok", "contract"]
        assert results[0].result["env_steps"] > 0 and "static-validation" in results[0].isolation  # sandboxed there
        for f in trains:
            r = f.result(timeout=120)
            assert r.ok, r.error
            assert r.result["env_steps"] == 2048
            PolicyExport.from_bytes(r.payload)  # the policy came back as bytes for the orchestrator to write
            assert r.resume_state
        assert [e["steps"] for e in events] == [2048, 2048]  # coarse progress: one event when done
    finally:
        ex.close()
    assert ray_cluster.is_initialized()  # not the executor's to shut down
    assert time.monotonic() - started < 120
