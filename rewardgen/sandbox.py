"""Running untrusted reward code: one worker process per job, data back through a pipe.

The isolation story in one place:
- a fresh interpreter (``python -m rewardgen.worker``) in its own session and process group, in
  an empty scratch directory, with a scrubbed environment (no API keys or other secrets);
- resource limits: address space, CPU time, file size, no core dumps; it dies with the orchestrator;
- a wall-clock limit that kills the whole process group;
- stdout/stderr captured and bounded (head and tail kept);
- results only as frames on a dedicated pipe (``rewardgen.ipc``), parsed with size bounds; the
  worker never receives a path into the run store.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardgen.ipc import FrameError, read_frames

PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
_PR_SET_PDEATHSIG = 1
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "MUJOCO_GL", "PYOPENGL_PLATFORM", "TZ")


@dataclass(frozen=True)
class WorkerLimits:
    """Limits for one worker.

    :param wall_seconds: wall-clock limit; the process group is killed after it.
    :param memory_bytes: address-space limit (RLIMIT_AS).
    :param cpu_seconds: CPU-time limit (RLIMIT_CPU), defaults to twice the wall limit.
    :param file_bytes: largest file the worker may write (RLIMIT_FSIZE).
    :param output_bytes: how much of stdout/stderr is kept (half head, half tail).
    """

    wall_seconds: float = 600.0
    memory_bytes: int = 8 * 1024**3
    cpu_seconds: int | None = None
    file_bytes: int = 16 * 1024**2
    output_bytes: int = 256 * 1024


@dataclass
class WorkerResult:
    """What came back from a worker. ``stage`` is "ok" or where it failed."""

    stage: str
    error: str | None = None
    traceback: str | None = None
    result: dict[str, Any] | None = None
    payload: bytes | None = None
    log: str = ""
    seconds: float = 0.0
    returncode: int | None = None
    events: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.stage == "ok"


def _preexec(limits: WorkerLimits) -> Callable[[], None]:
    cpu = limits.cpu_seconds or int(limits.wall_seconds * 2 + 30)

    def apply() -> None:
        try:
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))

    return apply


def worker_env(scratch: str, threads: int = 1) -> dict[str, str]:
    """The whole environment a worker sees: nothing of the user's but PATH and locale."""
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update({
        "HOME": scratch, "TMPDIR": scratch, "PYTHONPATH": PACKAGE_PARENT, "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONHASHSEED": "0",
    })
    return env


class _BoundedLog:
    """Keeps the first and last ``limit/2`` bytes of a stream and counts what was dropped."""

    def __init__(self, limit: int):
        self.half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > self.half:
            cut = len(self.tail) - self.half
            self.dropped += cut
            del self.tail[:cut]

    def text(self) -> str:
        mid = f"\n[... {self.dropped} bytes of output dropped ...]\n" if self.dropped else ""
        return (bytes(self.head) + mid.encode() + bytes(self.tail)).decode("utf-8", "replace")


def run_worker(job: dict[str, Any], limits: WorkerLimits = WorkerLimits(),
               on_event: Callable[[dict], None] | None = None,
               module: str = "rewardgen.worker") -> WorkerResult:
    """Run ``job`` in a fresh worker process and collect its verdict; never raises for worker faults."""
    import json

    start = time.monotonic()
    result = WorkerResult(stage="crash")
    log = _BoundedLog(limits.output_bytes)
    with tempfile.TemporaryDirectory(prefix="rewardgen-worker-") as scratch:
        read_fd, write_fd = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-s", "-m", module, "--result-fd", str(write_fd)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=scratch, env=worker_env(scratch, int(job.get("torch_threads", 1))),
            pass_fds=(write_fd,), start_new_session=True, preexec_fn=_preexec(limits),
        )
        os.close(write_fd)

        def pump_output() -> None:
            assert proc.stdout is not None
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                log.feed(chunk)

        def pump_frames() -> None:
            with os.fdopen(read_fd, "rb") as stream:
                try:
                    for kind, value in read_frames(stream):
                        if kind == "bytes":
                            result.payload = value
                        elif isinstance(value, dict) and value.get("type") == "progress":
                            if on_event:
                                on_event(value)
                        elif isinstance(value, dict) and value.get("type") == "result":
                            result.result, result.stage = value, "ok"
                        elif isinstance(value, dict) and value.get("type") == "error":
                            result.stage = str(value.get("stage", "runtime"))
                            result.error = str(value.get("error", ""))[:4000]
                            result.traceback = str(value.get("traceback", ""))[:20000]
                except FrameError as exc:
                    result.stage, result.error = "protocol", f"worker sent malformed data: {exc}"

        threads = [threading.Thread(target=pump_output, daemon=True), threading.Thread(target=pump_frames, daemon=True)]
        for t in threads:
            t.start()
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            proc.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            result.stage = "timeout"
            result.error = f"worker exceeded the wall-clock limit of {limits.wall_seconds:.0f} s and was killed"
        finally:
            _kill_group(proc)  # whatever the worker started dies with it
        for t in threads:
            t.join(timeout=5)
    result.returncode = proc.returncode
    result.log = log.text()
    result.seconds = time.monotonic() - start
    if result.stage == "ok" and proc.returncode != 0:
        result.stage, result.error = "crash", f"worker exited with code {proc.returncode} after reporting"
    if result.stage == "crash" and result.error is None:
        rc = proc.returncode
        why = f"killed by signal {signal.Signals(-rc).name}" if rc is not None and rc < 0 else f"exit code {rc}"
        tail = result.log.strip().splitlines()[-1:] or ["(no output)"]
        result.error = f"worker died ({why}) without reporting a result; last output: {tail[0][:300]}"
    return result


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
