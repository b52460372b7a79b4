"""Background jobs of the web UI: "start the next generation" as ``python -m rewardgen resume RUN_DIR``.

``Jobs.start_next(run_dir)`` is the default ``start_next`` of ``create_app``. It refuses (``JobError``)
while a job it started for that run is still running, and while any other process holds the run's
``run.lock`` (e.g. ``rewardgen evolve`` in a terminal, perhaps waiting for feedback). A finished run
gets one more generation first: config ``generations`` becomes (finished generations + 1) and its
status ``queued`` (so that ``resume`` continues it); an interrupted run is simply resumed.

The job's output goes to ``runs/<id>/web-job.log``; ``status(run_dir)`` reports it for the progress
endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardgen.errors import UserError
from rewardgen.resources import PACKAGE_PARENT
from rewardgen.runfiles import RunFiles
from rewardgen.sandbox.oslevel import keep_priority_in_session
from rewardgen.store import RunStore, RunStoreError

LOG_FILE = "web-job.log"


class JobError(RuntimeError):
    """The job cannot start now (already running, run busy); the message is for the user."""


@dataclass
class Job:
    run_dir: Path
    proc: subprocess.Popen
    started: float
    log: Path

    def running(self) -> bool:
        return self.proc.poll() is None


def run_lock_held(run_dir: Path) -> bool:
    """Whether some process holds ``run.lock`` (i.e. is working on the run right now)."""
    return RunStore(Path(run_dir)).lock_held()


def tail(run_dir: Path, lines: int = 8, max_bytes: int = 8192) -> list[str]:
    """The last lines of the run's ``web-job.log`` (read like every file of a run: no link followed)."""
    try:
        with RunFiles(Path(run_dir)).open_read(LOG_FILE) as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read(max_bytes).decode("utf-8", "replace")
    except (OSError, RunStoreError):
        return []
    # only the latest job's part of the log (each start writes a "--- ... rewardgen resume" marker)
    marker = text.rfind("\n--- ")
    if marker >= 0:
        text = text[marker + 1:]
    # progress bars redraw with carriage returns; keep the last state of each line, and each line once
    out: list[str] = []
    for ln in text.split("\n"):  # not splitlines(): it splits at "\r" too
        ln = ln.rsplit("\r", 1)[-1].rstrip()
        if ln.strip() and ln not in out:
            out.append(ln)
    return out[-lines:]


class Jobs:
    """One background ``resume`` per run at a time, tracked in this process."""

    def __init__(self, python: str = sys.executable):
        self.python = python
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start_next(self, run_dir: Path) -> None:
        run_dir = Path(run_dir).resolve()
        with self._lock:
            job = self._jobs.get(str(run_dir))
            if job is not None and job.running():
                raise JobError(f"the next generation of {run_dir.name} is already running "
                               f"(started {time.time() - job.started:.0f} s ago); wait for it to finish")
            if run_lock_held(run_dir):
                raise JobError(f"run {run_dir.name} is in use by another rewardgen process "
                               "(a terminal session may be training it or waiting for feedback)")
            self._check_reach(run_dir)
            self._extend(run_dir)
            log = run_dir / LOG_FILE
            try:  # appended inside the run only: a web-job.log that is a link is refused, never followed
                out = RunFiles(run_dir).open_append(LOG_FILE)
            except (OSError, RunStoreError) as exc:
                raise JobError(f"cannot write the job's log: {exc}") from None
            with out:
                # the marker holds the time only: nothing from the run's files is written as a line of its own
                out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} rewardgen resume\n".encode())
                out.flush()
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                    p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p))
                proc = subprocess.Popen([self.python, "-m", "rewardgen", "resume", str(run_dir)],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True,
                                        preexec_fn=keep_priority_in_session)  # as nice as the server
            self._jobs[str(run_dir)] = Job(run_dir, proc, time.time(), log)

    @staticmethod
    def _check_reach(run_dir: Path) -> None:
        """Refuse, before anything changes, a run whose recorded LLM endpoint (or prompt templates, or Ray
        cluster) is not what this server's environment names: the job would send the key there.
        ``rewardgen resume`` refuses it again (``continue_settings``)."""
        from rewardgen.run.config import ConfigError, EvolveConfig, UserReach, continue_settings

        try:
            run = RunStore.open(run_dir).read_run()
            continue_settings(EvolveConfig.from_dict(run["config"]), UserReach(), f"run {run_dir.name}")
        except (ConfigError, RunStoreError, TypeError, AttributeError) as exc:
            raise JobError(f"{exc} (the web UI continues a run only with this server's own settings; resume it "
                           f"from a terminal with the flags that message names)") from None

    @staticmethod
    def _extend(run_dir: Path) -> None:
        """A finished run gets one more generation; anything else is resumed as it is."""
        from rewardgen.run.evolve import extend_run

        try:
            run = RunStore.open(run_dir).read_run()
            if run.get("status") == "finished":
                extend_run(run_dir, len(run.get("generations", [])) + 1)
        except UserError as exc:
            raise JobError(str(exc)) from None

    def status(self, run_dir: Path) -> dict[str, Any] | None:
        """The latest job this process started for the run, or None."""
        run_dir = Path(run_dir).resolve()
        with self._lock:
            job = self._jobs.get(str(run_dir))
        if job is None:
            return None
        code = job.proc.poll()
        return {"running": code is None, "returncode": code, "pid": job.proc.pid,
                "seconds": round(time.time() - job.started, 1), "log_tail": tail(job.run_dir)}

    def wait_all(self, timeout: float | None = None) -> None:
        """Wait for every job (tests, shutdown)."""
        for job in list(self._jobs.values()):
            try:
                job.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
