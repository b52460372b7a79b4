"""The run store: ``runs/<run-id>/`` holds everything a run did, written atomically.

Layout::

    runs/<id>/run.json                       config, status, per-generation summary, best
    runs/<id>/run.lock                       held while a process works on the run
    runs/<id>/gen-NNN/generation.json        the generation's proposals (written once, before training)
    runs/<id>/gen-NNN/cand-NN/reward.py      candidate source
    runs/<id>/gen-NNN/cand-NN/proposal.json  what the proposer said about it (origin, parent, genome)
    runs/<id>/gen-NNN/cand-NN/train.log      the worker's captured output (bounded)
    runs/<id>/gen-NNN/cand-NN/policy.npz     the trained actor (plain arrays)
    runs/<id>/gen-NNN/cand-NN/metrics.json   verdict, trusted fitness, training statistics (written last)

Every write is a temp file in the same directory, fsync'd, then renamed over the target, so a
reader (or a run resumed after ``kill -9``) sees either the old file or the new one, never half.
A candidate whose ``metrics.json`` exists is finished and is never retrained.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"


class RunStoreError(ValueError):
    """A run directory that is missing, corrupt or busy; the message is for the user."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise RunStoreError(f"corrupt file {path}: {exc}") from None


def new_run_id(task_id: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{task_id}"


class RunStore:
    """One run directory. Only the orchestrator writes here."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    # ----- creation and loading
    @classmethod
    def create(cls, runs_dir: Path, run_id: str, run: dict) -> "RunStore":
        path = Path(runs_dir) / run_id
        suffix = 1
        while path.exists():
            suffix += 1
            path = Path(runs_dir) / f"{run_id}-{suffix}"
        path.mkdir(parents=True)
        store = cls(path)
        run = dict(run, id=path.name)
        store.write_run(run)
        return store

    @classmethod
    def open(cls, path: Path) -> "RunStore":
        path = Path(path)
        if not path.is_dir():
            raise RunStoreError(f"no run directory at {path}")
        if not (path / RUN_FILE).is_file():
            raise RunStoreError(f"{path} is not a run directory (no {RUN_FILE})")
        store = cls(path)
        run = store.read_run()
        for key in ("config", "task", "status"):
            if key not in run:
                raise RunStoreError(f"corrupt run file {path / RUN_FILE}: missing '{key}'")
        return store

    def read_run(self) -> dict:
        try:
            run = read_json(self.path / RUN_FILE)
        except FileNotFoundError:
            raise RunStoreError(f"{self.path} has no {RUN_FILE}") from None
        if not isinstance(run, dict):
            raise RunStoreError(f"corrupt run file {self.path / RUN_FILE}: not an object")
        return run

    def write_run(self, run: dict) -> None:
        atomic_write_json(self.path / RUN_FILE, run)

    # ----- locking: one process works on a run at a time
    def lock(self) -> None:
        fd = os.open(self.path / "run.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunStoreError(f"run {self.path} is in use by another rewardgen process") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ----- layout
    def gen_dir(self, generation: int) -> Path:
        return self.path / f"gen-{generation:03d}"

    def cand_dir(self, generation: int, candidate: int) -> Path:
        return self.gen_dir(generation) / f"cand-{candidate:02d}"

    def read_generation(self, generation: int) -> dict | None:
        """The generation's proposal record, or None if it was never completely written."""
        path = self.gen_dir(generation) / "generation.json"
        try:
            return read_json(path)
        except FileNotFoundError:
            return None

    def read_metrics(self, generation: int, candidate: int) -> dict | None:
        path = self.cand_dir(generation, candidate) / "metrics.json"
        try:
            return read_json(path)
        except FileNotFoundError:
            return None

    def read_source(self, generation: int, candidate: int) -> str:
        return (self.cand_dir(generation, candidate) / "reward.py").read_text()
