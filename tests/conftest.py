"""Shared test helpers: run the real CLI in a subprocess, and small reward sources."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GOOD_PENDULUM_REWARD = '''
import torch

def compute_reward(s):
    alive = torch.ones_like(s.step)
    upright = s.body_up["pole"][:, 2]
    return alive + upright, {"alive": alive, "upright": upright}
'''


#: the test files that take longest, longest first (seconds in a whole run on 2 cores, 2026-12-06): they are
#: handed to the test processes first, and the many short files fill in after them, so that the two
#: processes finish together instead of one running a long file alone at the end. Order only: a file
#: missing here runs after these, in collection order.
LONGEST_FILES = ("test_bench_suite.py", "test_speed.py", "test_cli.py", "test_browser.py", "test_llm_loop.py",
                 "test_terminal.py", "test_bench_schedule.py", "test_debug.py", "test_cli_errors.py",
                 "test_confirm.py", "test_llm_servers.py", "test_bench.py", "test_evolve.py", "test_bench_evolve.py",
                 "test_zygote.py", "test_trust.py", "test_jail.py", "test_llm.py", "test_extend_run.py",
                 "test_schedule.py", "test_play.py", "test_tasks_suite.py", "test_policy_export.py",
                 "test_sandbox.py", "test_byo.py", "test_ray.py", "test_reaper.py", "test_wheel.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


#: every CLI call of the test session: (args, result); checked for tracebacks after each test
CLI_RUNS: list[tuple[list[str], subprocess.CompletedProcess]] = []


def cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m rewardgen ARGS`` and capture its output (stdin closed, like CI)."""
    res = subprocess.run([sys.executable, "-m", "rewardgen", *args], cwd=cwd or ROOT, capture_output=True,
                         text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                         env={**os.environ, **(env or {})})
    CLI_RUNS.append((list(args), res))
    return res


def traceback_runs(runs: list[tuple[list[str], subprocess.CompletedProcess]]) -> list[list[str]]:
    """The arguments of the CLI calls whose stderr holds a Python traceback."""
    return [args for args, res in runs if "Traceback (most recent call last)" in (res.stderr or "")]


@pytest.fixture(autouse=True)
def _no_traceback_on_cli_stderr():
    """Every CLI call of every test: a traceback on stderr fails the test (errors are one line)."""
    start = len(CLI_RUNS)
    yield
    bad = traceback_runs(CLI_RUNS[start:])
    if bad:
        pytest.fail(f"rewardgen printed a traceback on stderr for: {bad}", pytrace=False)


def kill_9_when(args: list[str], when, where: Path | None = None, timeout: float = 600):
    """Start ``rewardgen ARGS`` (stdin closed), wait until ``when`` holds, ``kill -9`` the process there
    and return what ``when`` found; fail if the process ended or never got there. ``when`` is a glob
    pattern under ``where`` (returns the first file matching it) or a callable (returns its truthy value)."""
    found_by = when if callable(when) else (lambda: next(iter(sorted(where.glob(when))), None))
    proc = subprocess.Popen([sys.executable, "-m", "rewardgen", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            found = found_by()
            if found:
                os.kill(proc.pid, signal.SIGKILL)
                return found
            time.sleep(0.05)
        raise AssertionError(f"rewardgen {' '.join(args[:2])} never got to {when} while alive")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture(autouse=True, scope="session")
def _rate_book_of_the_test_session(tmp_path_factory):
    """Runs remember their pace (``rewardgen.run.forecast.RateBook``) in the session's own cache, never
    the tester's (session-wide, so the session's shared real runs use it too): a test that needs a fresh
    machine's first estimate points XDG_CACHE_HOME elsewhere."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
        yield


@pytest.fixture(autouse=True)
def _no_llm_from_the_environment(monkeypatch):
    """Tests choose their proposer: a key or base URL in the tester's environment must not switch
    `--llm auto` to a real endpoint (tests that need an LLM start their own server)."""
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)


def mlp_policy(task, seed: int = 1, scale: float = 0.5):
    """A policy export for ``task``: one hidden layer of 16, weights drawn N(0, scale) (scale 0: always action 0)."""
    import numpy as np

    from rewardgen.contract.policy import PolicyExport

    env = task.make_env()
    od, ad = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    rng = np.random.default_rng(seed)
    arrays = {"obs_mean": np.zeros(od), "obs_var": np.ones(od), "w0": rng.normal(0, scale, (16, od)),
              "b0": np.zeros(16), "w1": rng.normal(0, scale, (ad, 16)), "b1": np.zeros(ad)}
    return PolicyExport({k: v.astype(np.float32) for k, v in arrays.items()})


class EventRecorder:
    """A progress sink (``event(event)``) that keeps every event, in order: ``received`` as sent,
    ``events`` as (kind, fields) pairs."""

    def __init__(self):
        self.received: list = []
        self.events: list[tuple[str, dict]] = []

    def event(self, event) -> None:
        self.received.append(event)
        self.events.append((event.kind, event.fields()))


class RecordingProgress(EventRecorder):
    """The CLI's live display (``rewardgen.cli.display.RichProgress``) on a recorded terminal, with every bar's
    state captured after each event: what a person would have seen, event by event."""

    def __init__(self, width: int = 110):
        import io

        from rich.console import Console

        from rewardgen.cli.display import RichProgress

        super().__init__()
        self.file = io.StringIO()
        self.console = Console(file=self.file, force_terminal=True, width=width, color_system=None)
        self.display = RichProgress(self.console)
        self.frames: list[list[dict]] = []

    def event(self, event) -> None:
        self.display.event(event)
        super().event(event)
        self.frames.append([{"description": t.description, "completed": t.completed, "total": t.total,
                             "count": t.fields.get("count", ""), "eta": t.fields.get("eta", "")}
                            for t in self.display.bars.tasks])


@pytest.fixture(scope="session")
def small_real_run(tmp_path_factory):
    """A real run, small: inverted pendulum, 3 candidates x 2 generations, 3000 env-steps under the
    halving schedule, one worker (so candidates queue), videos rendered; watched by the CLI's
    display. Returns (run_dir, RecordingProgress)."""
    from rewardgen.run.config import EvolveConfig
    from rewardgen.run.evolve import evolve

    runs = tmp_path_factory.mktemp("small-real-run") / "runs"
    progress = RecordingProgress()
    config = EvolveConfig(task="inverted-pendulum-balance", samples=3, generations=2, steps=3000, workers=1,
                          llm="offline")
    with progress.display:
        summary = evolve(config, runs, progress)
    return Path(summary["run_dir"]), progress
