"""The zygote (issue 17): workers forked from a trusted fork server, locked as fresh ones were.

Each test runs real workers (no mocks): what a forked worker sees of itself, what the zygote holds,
the fallback to a fresh process when the zygote is gone, that the chain dies with the orchestrator,
and that training is the same bit for bit either way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewardgen.procs import WorkerLimits, run_worker, zygote
from rewardgen.procs.confine import Confinement
from rewardgen.procs.process import worker_env
from rewardgen.tasks.spec import get_task

#: a well-formed job (no candidate code: env-reward training) for the probe module, which only reports facts
PROBE_JOB = {"mode": "train", "task": {}, "env_reward": True}

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-zygote-test-secret"
ZERO = "def compute_reward(s):\n    z = s.qpos[:, 0] * 0.0\n    return z, {'z': z}\n"


def _dies(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` is gone or a zombie (its files, the control socket among them, closed) in time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _facts(res) -> dict:
    line = next(x for x in res.log.splitlines() if x.startswith("FACTS "))
    return json.loads(line[len("FACTS "):])


@pytest.fixture
def fresh_zygote(monkeypatch):
    """A zygote of this test's own, started with the secret in the orchestrator's environment."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("REWARDGEN_ZYGOTE", "1")
    zygote.reset_shared()
    yield zygote.shared()
    zygote.reset_shared()


@pytest.mark.slow
def test_forked_worker_is_locked_like_a_fresh_one(fresh_zygote, tmp_path):
    limits = WorkerLimits(wall_seconds=60, memory_bytes=3 * 1024**3, file_bytes=5 * 1024**2)
    with open(tmp_path / "held-open.txt", "w"):  # an open file of the orchestrator's
        res = run_worker(PROBE_JOB | {"seed": 7}, limits, module="tests.zygote_probe")
    assert res.ok and res.started == "zygote", (res.stage, res.error, res.log[-2000:])
    f = _facts(res)
    assert f["torch_preloaded"] and f["job"] == 7  # forked after the imports, and it got its job
    assert f["ppid"] == fresh_zygote.pid != os.getpid()
    assert f["sid"] == f["pgid"] == f["pid"]  # own session and process group
    assert f["fds"] == [0, 1, 2, 3]  # stdin, output, the result pipe: nothing else came along
    assert f["env"] == worker_env(f["cwd"]) and SECRET not in json.dumps(f["env"])
    assert f["env"]["HOME"] == f["cwd"] and Path(f["cwd"]).name.startswith("rewardgen-worker-")
    assert f["limits"]["RLIMIT_AS"] == 3 * 1024**3 and f["limits"]["RLIMIT_FSIZE"] == 5 * 1024**2
    assert f["limits"]["RLIMIT_CORE"] == 0 and f["limits"]["RLIMIT_CPU"] == 2 * 60 + 30
    if "worker-netns" in res.isolation:  # where the OS allows it, as for a fresh worker
        assert f["netns"] != os.readlink("/proc/self/ns/net")


@pytest.mark.slow
def test_zygote_holds_nothing_of_the_orchestrator(fresh_zygote, tmp_path):
    with open(tmp_path / "held-open.txt", "w"):
        run_worker(PROBE_JOB, WorkerLimits(wall_seconds=60), module="tests.zygote_probe")
        pid = fresh_zygote.pid
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        fds = {int(x): os.readlink(f"/proc/{pid}/fd/{x}") for x in os.listdir(f"/proc/{pid}/fd")}
    assert SECRET.encode() not in environ and b"OPENAI" not in environ
    assert not any("held-open" in target or "runs" in target for target in fds.values()), fds
    assert sum(t.startswith("socket:") for t in fds.values()) == 1, fds  # its control socket only
    assert len(os.listdir(f"/proc/{pid}/task")) == 1  # single-threaded: a fork copies a whole process
    assert os.getsid(pid) == pid  # its own session: no terminal's signals


@pytest.mark.slow
def test_dead_zygote_falls_back_to_a_fresh_worker_and_says_so(fresh_zygote):
    first = run_worker(PROBE_JOB, WorkerLimits(wall_seconds=60), module="tests.zygote_probe")
    assert first.started == "zygote"
    os.kill(fresh_zygote.pid, signal.SIGKILL)
    assert _dies(fresh_zygote.pid), "SIGKILL did not stop the zygote"
    res = run_worker(PROBE_JOB, WorkerLimits(wall_seconds=60), module="tests.zygote_probe")
    assert res.ok and res.started.startswith("started a fresh worker process: no zygote"), res.started
    assert any("no zygote" in w for w in res.warnings), res.warnings
    assert not _facts(res)["torch_preloaded"]  # a fresh interpreter indeed


def test_a_closed_zygote_never_starts_again(monkeypatch):
    """A command that fails fast closes its zygote while the ``prestart`` thread may not have begun: that
    thread must then start nothing (a fork in flight while the interpreter exits broke a lock and printed
    a traceback under the command's one-line error)."""
    monkeypatch.setenv("REWARDGEN_ZYGOTE", "1")
    z = zygote.Zygote()
    z.close()
    zygote._start_if_idle(z)
    assert z.pid is None and z.error


def test_switched_off_runs_fresh_without_a_warning(monkeypatch):
    monkeypatch.setenv("REWARDGEN_ZYGOTE", "0")
    res = run_worker(PROBE_JOB, WorkerLimits(wall_seconds=60), module="tests.zygote_probe")
    assert res.ok and res.started == "fresh" and not any("zygote" in w for w in res.warnings)


@pytest.mark.slow
def test_training_is_the_same_forked_or_fresh(monkeypatch):
    task = get_task("inverted-pendulum-balance")
    job = {"mode": "train", "task": task.to_dict(), "source": ZERO, "steps": 1024, "seed": 3, "trainer": "ppo",
           "num_envs": 16}
    payloads = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("REWARDGEN_ZYGOTE", flag)
        res = run_worker(job, WorkerLimits(wall_seconds=120))
        assert res.ok, (res.stage, res.error)
        payloads[res.started] = res.payload
        if res.started == "zygote":  # the zygote reaped it and says how much memory it took at most
            assert 50 * 1024 < res.peak_rss_kb < 2 * 1024**2
    assert set(payloads) == {"zygote", "fresh"} and payloads["zygote"] == payloads["fresh"]


@pytest.mark.slow
def test_the_cpu_time_a_worker_used_counts_its_jails(monkeypatch):
    """The zygote says how much CPU time a worker it reaped used, its reward jail's included (what the
    time forecast's calibration trusts where the load it sampled missed something): a reward that
    spins in its jail costs that much more than one that does not; a fresh worker says nothing."""
    monkeypatch.setenv("REWARDGEN_ZYGOTE", "1")
    task = get_task("inverted-pendulum-balance")
    spin = ("def compute_reward(s):\n    n = 0\n    for i in range(400_000):\n        n += i\n"
            "    z = s.qpos[:, 0] * 0.0\n    return z, {'z': z}\n")
    cpu = {}
    for name, source in (("zero", ZERO), ("spin", spin)):
        job = {"mode": "train", "task": task.to_dict(), "source": source, "steps": 1024, "seed": 3, "trainer": "ppo",
               "num_envs": 16}
        res = run_worker(job, WorkerLimits(wall_seconds=120))
        assert res.ok and res.started == "zygote", (res.stage, res.error, res.started)
        calls = res.result["env_steps"] // 16
        assert 0 < res.cpu_seconds, res.cpu_seconds
        cpu[name] = (res.cpu_seconds, calls)
    spin_cpu = cpu["spin"][0] - cpu["zero"][0]
    assert spin_cpu > 0.5 * cpu["spin"][1] * 0.01, cpu  # each of its calls spun for at least ~10 ms
    monkeypatch.setenv("REWARDGEN_ZYGOTE", "0")
    res = run_worker(PROBE_JOB, WorkerLimits(wall_seconds=60), module="tests.zygote_probe")
    assert res.ok and res.started == "fresh" and res.cpu_seconds is None


@pytest.mark.slow
def test_zygote_and_its_workers_die_with_the_orchestrator():
    """kill -9 of the orchestrator: the zygote (its child) and a worker forked from it (a grandchild,
    busy) are gone at once."""
    script = (f"import sys, threading, time\nsys.path.insert(0, {str(ROOT)!r})\n"
              "from rewardgen.procs import WorkerLimits, run_worker, zygote\n"
              "from rewardgen.tasks.spec import get_task\n"
              "t = get_task('inverted-pendulum-balance')\n"
              f"job = {{'mode': 'train', 'task': t.to_dict(), 'source': {ZERO!r}, 'steps': 10**7, 'seed': 0,"
              " 'trainer': 'ppo', 'num_envs': 16}\n"
              "threading.Thread(target=run_worker, args=(job, WorkerLimits(wall_seconds=600)), daemon=True).start()\n"
              # the thread's job starts the zygote: wait until it has (its pid), then say which it is
              "z, deadline = zygote.shared(), time.monotonic() + 60\n"
              "while z.pid is None and time.monotonic() < deadline:\n    time.sleep(0.02)\n"
              "print(z.pid, flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "REWARDGEN_ZYGOTE": "1"})
    zpid = int(proc.stdout.readline())
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and not workers:
        workers = [int(p) for p in Path(f"/proc/{zpid}/task/{zpid}/children").read_text().split()]
        time.sleep(0.1)
    assert workers, "the zygote forked no worker"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    alive = [zpid, *workers]
    while time.monotonic() < deadline and alive:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and
                 Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"]
        time.sleep(0.05)
    assert alive == [], f"outlived the orchestrator: {alive}"


@pytest.mark.slow
def test_timeout_kills_the_forked_workers_group(fresh_zygote):
    task = get_task("inverted-pendulum-balance")
    spin = "def compute_reward(s):\n    while True:\n        pass\n"
    job = {"mode": "check", "task": task.to_dict(), "source": spin, "steps": 16, "seed": 0}
    zygote.ready()  # its start-up (seconds on a loaded machine) is not the timeout's to pay
    started = time.monotonic()
    res = run_worker(job, WorkerLimits(wall_seconds=3))
    assert res.stage == "timeout" and res.started == "zygote" and time.monotonic() - started < 20
    assert res.returncode == -signal.SIGKILL


def test_two_threads_waiting_on_one_child_never_time_out_early(fresh_zygote, tmp_path):
    """run_worker's frame reader kills a lying worker and waits for it while the caller's thread waits
    too: both read the child's status from one socket. They once changed its timeout under each other's
    read and a 60 s wait gave up at once (a lying worker ended "timeout", not "protocol"). A child that
    blocks on its stdin, killed from one thread while another waits: both get SIGKILL, never a timeout."""
    import threading

    for _ in range(100):  # the old race showed in about 1 of 100 pairs
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            child = fresh_zygote.spawn(zygote.SpawnRequest(
                module="rewardgen.trainers.worker", argv=["--result-fd", "3"], env=worker_env(str(tmp_path), 1),
                cwd=str(tmp_path), fds={0: in_r, 3: out_w}, confinement=Confinement()))
        finally:
            os.close(in_r)
            os.close(out_w)
        got: dict[str, object] = {}

        def wait(name: str, timeout: float, child=child, got=got) -> None:
            try:
                got[name] = child.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                got[name] = exc

        caller = threading.Thread(target=wait, args=("caller", 60.0))
        caller.start()
        child.kill()
        wait("killer", 10.0)
        caller.join(70)
        os.close(in_w)
        os.close(out_r)
        assert got == {"caller": -signal.SIGKILL, "killer": -signal.SIGKILL}, got
