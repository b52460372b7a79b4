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

import fcntl
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardgen.resources import PACKAGE_PARENT
from rewardgen.errors import UserError
from rewardgen.store import RUN_LOCK_FILE, RunStore

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
    path = Path(run_dir) / RUN_LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def tail(path: Path, lines: int = 8, max_bytes: int = 8192) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
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
            self._extend(run_dir)
            log = run_dir / LOG_FILE
            with open(log, "ab") as out:
                out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} rewardgen resume\n".encode())
                out.flush()
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                    p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p))
                proc = subprocess.Popen([self.python, "-m", "rewardgen", "resume", str(run_dir)],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)
            self._jobs[str(run_dir)] = Job(run_dir, proc, time.time(), log)

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
                "seconds": round(time.time() - job.started, 1), "log_tail": tail(job.log)}

    def wait_all(self, timeout: float | None = None) -> None:
        """Wait for every job (tests, shutdown)."""
        for job in list(self._jobs.values()):
            try:
                job.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
