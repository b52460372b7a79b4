"""The worker process: one fresh interpreter per job, data back through a pipe.

A worker (``python -m rewardgen.trainers.worker``, or ``rewardgen.inspect.debug_worker``) is trusted code that trains
or debugs with a candidate's reward; the candidate itself runs only in the worker's jail
(``rewardgen.sandbox.jail``). Around the worker, as defence in depth and to bound what a job costs:
- its own session and process group, an empty scratch directory, a scrubbed environment (no API
  keys or other secrets), its own network namespace where the OS allows it;
- resource limits (address space, CPU time, file size, no core dumps); it dies with the
  orchestrator (parent-death signal); a wall-clock limit kills its whole process group;
- stdout/stderr captured and bounded (head and tail kept);
- results only as frames on a dedicated pipe (``rewardgen.sandbox.ipc``), each frame checked
  against what a worker may send, the bytes of one worker bounded in all; the worker never
  receives a path into the run store;
- the candidate's source validated statically before anything is spawned.

``run_worker(..., sandboxed=False)`` runs the same worker without limits, namespace or jail (the
candidate in the worker's own process): for measuring the sandbox's cost only, never in production.
See docs/sandbox.md.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rewardgen.contract.job import WorkerJob
from rewardgen.sandbox.oslevel import enter_netns, netns_of, set_parent_death_signal
from rewardgen.resources import PACKAGE_PARENT
from rewardgen.sandbox.ipc import (MAX_POLICY_BYTES, MAX_RESUME_BYTES, MAX_WORKER_BYTES, FrameError, SchemaError,
                                    check_frame, read_frames)

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
    """What came back from a worker. ``stage`` is "ok" or where it failed.

    Stages: "ok", "static" (refused by the validator, nothing spawned), "load", "runtime",
    "contract", "sandbox" (the reward attempted a refused operation), "timeout", "crash",
    "protocol", "job". ``isolation`` lists the active layers, ``warnings`` the missing ones;
    ``resume_state`` the trainer's resumable state (pickle-free bytes; pass it back base64-encoded
    as the job's ``resume`` to continue training). Executors add stage "lost" (the machine running
    the worker went away, see ``rewardgen.run.executors``). ``started``: "zygote" (forked from the command's
    zygote), "fresh", or why there was no zygote; ``check``: a train job's folded smoke check as its
    ``check`` frame said (with ``seconds`` from the start and the ``output_bytes`` seen by then);
    ``peak_rss_kb``: the forked worker's peak RSS (its jail included), as the zygote reaped it;
    ``jail``: the worker's ``jail`` frame (system calls refused in the jail, guard switched off).
    """

    stage: str
    error: str | None = None
    traceback: str | None = None
    result: dict[str, Any] | None = None
    payload: bytes | None = None
    log: str = ""
    seconds: float = 0.0
    returncode: int | None = None
    isolation: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    output_dropped: int = 0
    resume_state: bytes | None = None
    started: str = ""
    check: dict[str, Any] | None = None
    timeout_seconds: float | None = None
    peak_rss_kb: int | None = None
    jail: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.stage == "ok"


def _preexec(limits: WorkerLimits, sandboxed: bool = True, address_limit: bool = True) -> Callable[[], None]:
    cpu = limits.cpu_seconds or int(limits.wall_seconds * 2 + 30)

    def apply() -> None:
        set_parent_death_signal()
        if not sandboxed:
            return
        try:
            enter_netns()
        except Exception:  # noqa: BLE001 - the parent reports whether it worked
            pass
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if address_limit:
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
        "SB3_LOGDIR": scratch,  # SB3 makes its (unused) log folder here; it exists, so nothing is created
    })
    return env


class _BoundedLog:
    """Keeps the first and last ``limit/2`` bytes of a stream and counts what was dropped."""

    def __init__(self, limit: int):
        self.half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
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


def run_worker(job: WorkerJob | dict[str, Any], limits: WorkerLimits = WorkerLimits(),
               on_event: Callable[[dict], None] | None = None,
               module: str = "rewardgen.trainers.worker", sandboxed: bool = True) -> WorkerResult:
    """Run ``job`` in a fresh worker process and collect its verdict; never raises for worker faults.

    With ``sandboxed`` (the default) a job carrying ``source`` is validated statically first (stage
    "static" without spawning anything when refused) and the worker runs with every isolation layer;
    ``WorkerResult.isolation`` lists the layers that were active and ``warnings`` those that were not.
    ``sandboxed=False`` is for overhead measurements only. Stage "sandbox" means the worker refused an
    operation the reward attempted (the error names it and the line).
    """
    import json

    start = time.monotonic()
    result = WorkerResult(stage="crash")
    # the jail's own RLIMIT_AS, CUDA jobs included
    job = replace(WorkerJob.from_dict(job), sandbox=bool(sandboxed), jail_memory_bytes=int(limits.memory_bytes))
    if sandboxed and job.source is not None and job.validate:
        from rewardgen.sandbox.validate import validate_source

        issues = validate_source(job.source)
        if issues:
            first = str(issues[0]) + (f" (and {len(issues) - 1} more issue(s))" if len(issues) > 1 else "")
            return WorkerResult(stage="static", error=first, traceback="\n".join(str(i) for i in issues),
                                seconds=time.monotonic() - start)
    isolation: list[str] = []
    if sandboxed:
        isolation += ["worker-process", "worker-session", "scrubbed-env", "scratch-cwd", "worker-rlimits"]
    # a CUDA context reserves far more address space than any useful RLIMIT_AS: GPU jobs are bounded
    # by torch's per-process memory fraction on the device instead (job "gpu_memory_fraction")
    address_limit = not job.device.startswith("cuda")
    if sandboxed and not address_limit:
        result.warnings.append("RLIMIT_AS not applied to a CUDA job (the driver reserves huge address space); "
                               "device memory is capped by the job's gpu_memory_fraction")
    log = _BoundedLog(limits.output_bytes)
    with tempfile.TemporaryDirectory(prefix="rewardgen-worker-") as scratch:
        env = worker_env(scratch, job.torch_threads)
        proc, stdin, stdout, read_fd, how = _start(module, scratch, env, limits, sandboxed, address_limit)
        spawned = time.monotonic()  # the wall-clock limits count from here (not the zygote's own start)
        result.started = how
        if how not in ("zygote", "fresh"):  # the zygote was wanted and failed: say so
            result.warnings.append(how)
        if sandboxed:
            child_ns, own_ns = netns_of(proc.pid), netns_of("self")
            if child_ns and own_ns and child_ns != own_ns:
                isolation.append("worker-netns")
            else:
                result.warnings.append("no network namespace for the worker (unshare not permitted here); the "
                                       "reward's jail is refused sockets by its own namespace and seccomp")

        def pump_output() -> None:
            with stdout:
                for chunk in iter(lambda: stdout.read1(65536), b""):
                    log.feed(chunk)

        worker_layers: list[list[str]] = []
        check_done = threading.Event()

        def pump_frames() -> None:
            """Frames in the order a worker sends them, each checked (``check_frame``) before use; the
            bytes one worker may send are bounded in all. The first bad frame ends the reading: stage
            "protocol", and the worker is killed (nothing after it is believed)."""
            debug = module == "rewardgen.inspect.debug_worker"
            received = 0
            expect_resume = False  # the next bytes frame is the resume state
            with os.fdopen(read_fd, "rb") as stream:
                try:
                    for kind, value in read_frames(stream):
                        received += len(value) if isinstance(value, bytes) else 0
                        if received > MAX_WORKER_BYTES:
                            raise FrameError(f"more than {MAX_WORKER_BYTES} bytes in all")
                        if kind == "bytes":
                            if expect_resume and len(value) <= MAX_RESUME_BYTES:
                                result.resume_state, expect_resume = value, False
                            elif not expect_resume and len(value) <= MAX_POLICY_BYTES and result.payload is None:
                                result.payload = value
                            else:
                                raise FrameError("an unexpected or oversized bytes frame")
                            continue
                        value = check_frame(value, debug)
                        kind = value["type"]
                        if kind == "resume_state":
                            expect_resume = True
                        elif kind == "progress" and on_event:
                            on_event(value)
                        elif kind == "isolation" and not worker_layers:  # the first report precedes the reward
                            worker_layers.append(value.get("layers", []))
                            result.warnings.extend(value.get("warnings", []))
                        elif kind == "check" and result.check is None:
                            result.check = dict(value, seconds=round(time.monotonic() - start, 3),
                                                output_bytes=log.total)
                            check_done.set()
                        elif kind == "jail":
                            result.jail = value
                        elif kind == "result":
                            result.result, result.stage = value, "ok"
                        elif kind == "error":
                            result.stage, result.error = value["stage"], value.get("error", "")
                            result.traceback = value.get("traceback", "")
                except (FrameError, SchemaError) as exc:
                    result.stage, result.error = "protocol", f"worker sent malformed data: {exc}"
                    result.result = result.payload = result.resume_state = None
                    _kill_group(proc)

        threads = [threading.Thread(target=pump_output, daemon=True), threading.Thread(target=pump_frames, daemon=True)]
        for t in threads:
            t.start()
        try:
            with stdin:
                stdin.write(json.dumps(job.to_dict()).encode())
        except BrokenPipeError:
            pass
        check_seconds = float(job.check.seconds) if job.check else 0.0
        try:
            if 0 < check_seconds < limits.wall_seconds:  # the folded smoke check has its own, shorter limit
                try:
                    proc.wait(timeout=check_seconds)
                except subprocess.TimeoutExpired:
                    if not check_done.is_set():
                        _kill_group(proc)
                        result.stage = "timeout"
                        result.error = (f"worker exceeded the check's wall-clock limit of {check_seconds:.0f} s "
                                        "and was killed")
                        result.timeout_seconds = check_seconds
                        raise
            proc.wait(timeout=max(0.0, limits.wall_seconds - (time.monotonic() - spawned)))
        except subprocess.TimeoutExpired:
            if result.stage != "timeout":
                _kill_group(proc)
                result.stage = "timeout"
                result.error = f"worker exceeded the wall-clock limit of {limits.wall_seconds:.0f} s and was killed"
        finally:
            _kill_group(proc)  # whatever the worker started dies with it
        for t in threads:
            t.join(timeout=5)
    result.returncode = proc.returncode
    result.peak_rss_kb = getattr(getattr(proc, "child", None), "maxrss_kb", None)
    result.isolation = isolation + (worker_layers[0] if worker_layers else [])
    result.output_dropped = log.dropped
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


class _Fresh:
    """A worker started as a fresh process (the fallback when there is no zygote)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.pid = proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout=timeout)

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class _Forked:
    """A worker forked by the zygote (``rewardgen.sandbox.zygote``)."""

    def __init__(self, child):
        self.child = child
        self.pid = child.pid

    @property
    def returncode(self) -> int | None:
        return self.child.returncode

    def wait(self, timeout: float | None = None) -> int:
        return self.child.wait(timeout)

    def kill_group(self) -> None:
        self.child.kill()


def _rlimits(limits: WorkerLimits, address_limit: bool) -> list[tuple[int, int, int]]:
    cpu = limits.cpu_seconds or int(limits.wall_seconds * 2 + 30)
    out = [(resource.RLIMIT_CORE, 0, 0)]
    if address_limit:
        out.append((resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes))
    return out + [(resource.RLIMIT_CPU, cpu, cpu), (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes)]


_RESULT_FD = 3  # the result pipe's number in a zygote's child


def _start(module: str, scratch: str, env: dict[str, str], limits: WorkerLimits, sandboxed: bool,
           address_limit: bool):
    """Start the worker: forked from this command's zygote when there is one, else a fresh process.
    Returns (process handle, its stdin to write, its output to read, the result pipe's read end,
    how it started: "zygote", or "fresh" plus why there was no zygote)."""
    from rewardgen.sandbox import zygote

    why = None
    z = zygote.shared()
    if z is not None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        read_fd, write_fd = os.pipe()
        request = zygote.SpawnRequest(
            module=module, argv=["--result-fd", str(_RESULT_FD)], env=env, cwd=scratch,
            fds={0: in_r, 1: out_w, 2: out_w, _RESULT_FD: write_fd},
            rlimits=_rlimits(limits, address_limit) if sandboxed else [], netns=sandboxed)
        try:
            child = z.spawn(request)
        except zygote.ZygoteUnavailable as exc:
            for fd in (in_r, in_w, out_r, out_w, read_fd, write_fd):
                os.close(fd)
            why = str(exc)
        else:
            for fd in (in_r, out_w, write_fd):
                os.close(fd)
            return _Forked(child), os.fdopen(in_w, "wb"), os.fdopen(out_r, "rb"), read_fd, "zygote"
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-s", "-m", module, "--result-fd", str(write_fd)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=scratch, env=env, pass_fds=(write_fd,), start_new_session=True,
            preexec_fn=_preexec(limits, sandboxed, address_limit),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    how = "fresh" if why is None else f"started a fresh worker process: no zygote ({why})"
    return _Fresh(proc), proc.stdin, proc.stdout, read_fd, how


def _kill_group(proc) -> None:
    proc.kill_group()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
