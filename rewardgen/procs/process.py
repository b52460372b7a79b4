"""The worker process: one process per job (forked from the zygote, or fresh), data back as frames.

A worker (``rewardgen.trainers.worker``, or ``rewardgen.inspect.debug_worker``) is trusted code that
trains or debugs with a candidate's reward; the candidate itself runs only in the worker's jail
(``rewardgen.sandbox.jail``). Around the worker, as defence in depth and to bound what a job costs:
- it is started by ``rewardgen.procs.launch`` and held by ``worker_confinement``: its own session
  and process group, an empty scratch directory, the one environment policy (no API keys or other
  secrets), its own network namespace where the OS allows it, rlimits (address space, CPU time,
  file size, no core dumps); it dies with the orchestrator (parent-death signal); a wall-clock
  limit kills its whole process group;
- stdout/stderr captured and bounded (head and tail kept);
- its job goes to it as a ``Job`` frame, its results come back only as frames on a dedicated pipe
  (``rewardgen.procs.frames``), each checked against what a worker may send, the bytes of one
  worker bounded in all; the worker never receives a path into the run store;
- the candidate's source validated statically before anything is spawned.

``run_worker(..., sandboxed=False)`` runs the same worker without limits, namespace or jail (the
candidate in the worker's own process): for measuring the sandbox's cost only, never in production.
See docs/sandbox.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rewardgen.contract.job import WorkerJob
from rewardgen.procs.confine import Confinement
from rewardgen.procs.frames import (
    DEBUG_FRAMES,
    MAX_POLICY_BYTES,
    MAX_RESUME_BYTES,
    MAX_WORKER_BYTES,
    WORKER_FRAMES,
    Check,
    DebugResult,
    Error,
    Frame,
    FrameError,
    FrameWriter,
    Isolation,
    JailReport,
    Job,
    Progress,
    ResumeHeader,
    SchemaError,
    TrainResult,
    parse_frame,
    read_frames,
)
from rewardgen.procs.launch import launch
from rewardgen.sandbox.oslevel import netns_of


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
    ``cpu_seconds``: the CPU time it used (its jail's included), as the zygote reaped it;
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
    cpu_seconds: float | None = None
    jail: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.stage == "ok"


def worker_confinement(limits: WorkerLimits, threads: int = 1, sandboxed: bool = True,
                       address_limit: bool = True) -> Confinement:
    """What holds a worker: the limits' rlimits, its own network namespace, ``threads`` OpenMP threads
    (``sandboxed=False``: no rlimit but no core dumps, no namespace; overhead measurements only)."""
    if not sandboxed:
        return Confinement(threads=threads)
    return Confinement(memory_bytes=limits.memory_bytes if address_limit else None,
                       cpu_seconds=limits.cpu_seconds or int(limits.wall_seconds * 2 + 30),
                       file_bytes=limits.file_bytes, netns=True, threads=threads)


def worker_env(scratch: str, threads: int = 1) -> dict[str, str]:
    """The whole environment a worker sees (``Confinement.environment``, the one policy)."""
    return Confinement(threads=threads).environment(scratch)


def run_worker(job: WorkerJob | dict[str, Any], limits: WorkerLimits = WorkerLimits(),
               on_event: Callable[[dict], None] | None = None,
               module: str = "rewardgen.trainers.worker", sandboxed: bool = True) -> WorkerResult:
    """Run ``job`` in a worker process (``launch``: forked from the zygote, or fresh) and collect its
    verdict; never raises for worker faults.

    With ``sandboxed`` (the default) a job carrying ``source`` is validated statically first (stage
    "static" without spawning anything when refused) and the worker runs with every isolation layer;
    ``WorkerResult.isolation`` lists the layers that were active and ``warnings`` those that were not.
    ``sandboxed=False`` is for overhead measurements only. Stage "sandbox" means the worker refused an
    operation the reward attempted (the error names it and the line).
    """
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
    confinement = worker_confinement(limits, job.torch_threads, sandboxed, address_limit)
    with tempfile.TemporaryDirectory(prefix="rewardgen-worker-") as scratch:
        proc = launch(module, confinement, home=scratch, output_bytes=limits.output_bytes)
        log = proc.log
        spawned = time.monotonic()  # the wall-clock limits count from here (not the zygote's own start)
        result.started = proc.started
        if proc.started not in ("zygote", "fresh"):  # the zygote was wanted and failed: say so
            result.warnings.append(proc.started)
        if sandboxed:
            child_ns, own_ns = netns_of(proc.pid), netns_of("self")
            if child_ns and own_ns and child_ns != own_ns:
                isolation.append("worker-netns")
            else:
                result.warnings.append("no network namespace for the worker (unshare not permitted here); the "
                                       "reward's jail is refused sockets by its own namespace and seccomp")

        worker_layers: list[list[str]] = []
        check_done = threading.Event()
        accepted = DEBUG_FRAMES if module == "rewardgen.inspect.debug_worker" else WORKER_FRAMES

        def receive(frame: Frame) -> bool:
            """One checked frame, by its class; True for the resume state's header (its bytes follow)."""
            match frame:
                case ResumeHeader():
                    return True
                case Progress() if on_event:
                    on_event(frame.to_json())
                case Isolation() if not worker_layers:  # the first report precedes the reward
                    worker_layers.append(list(frame.layers))
                    result.warnings.extend(frame.warnings)
                case Check() if result.check is None:
                    result.check = dict(frame.to_json(), seconds=round(time.monotonic() - start, 3),
                                        output_bytes=log.total)
                    check_done.set()
                case JailReport():
                    result.jail = frame.to_json()
                case TrainResult() | DebugResult():
                    result.result, result.stage = frame.to_json(), "ok"
                case Error():
                    result.stage, result.error, result.traceback = frame.stage, frame.error, frame.traceback
            return False

        def pump_frames() -> None:
            """Frames in the order a worker sends them, each checked (``parse_frame``) before use; the
            bytes one worker may send are bounded in all. The first bad frame ends the reading: stage
            "protocol", and the worker is killed (nothing after it is believed)."""
            received = 0
            expect_resume = False  # the next bytes frame is the resume state
            with os.fdopen(proc.results, "rb", closefd=False) as stream:
                try:
                    for kind, value in read_frames(stream):
                        received += len(value) if isinstance(value, bytes) else 0
                        if received > MAX_WORKER_BYTES:
                            raise FrameError(f"more than {MAX_WORKER_BYTES} bytes in all")
                        if kind == "json":
                            expect_resume = receive(parse_frame(value, accepted)) or expect_resume
                        elif expect_resume and len(value) <= MAX_RESUME_BYTES:
                            result.resume_state, expect_resume = value, False
                        elif not expect_resume and len(value) <= MAX_POLICY_BYTES and result.payload is None:
                            result.payload = value
                        else:
                            raise FrameError("an unexpected or oversized bytes frame")
                except (FrameError, SchemaError) as exc:
                    result.stage, result.error = "protocol", f"worker sent malformed data: {exc}"
                    result.result = result.payload = result.resume_state = None
                    proc.kill_group()

        reader = threading.Thread(target=pump_frames, daemon=True, name="rewardgen-worker-frames")
        reader.start()
        try:
            FrameWriter(proc.stdin.fileno()).send(Job(job.to_dict()))
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
        check_seconds = float(job.check.seconds) if job.check else 0.0
        try:
            if 0 < check_seconds < limits.wall_seconds:  # the folded smoke check has its own, shorter limit
                try:
                    proc.wait(timeout=check_seconds)
                except subprocess.TimeoutExpired:
                    if not check_done.is_set():
                        proc.kill_group()
                        result.stage = "timeout"
                        result.error = (f"worker exceeded the check's wall-clock limit of {check_seconds:.0f} s "
                                        "and was killed")
                        result.timeout_seconds = check_seconds
                        raise
            proc.wait(timeout=max(0.0, limits.wall_seconds - (time.monotonic() - spawned)))
        except subprocess.TimeoutExpired:
            if result.stage != "timeout":
                proc.kill_group()
                result.stage = "timeout"
                result.error = f"worker exceeded the wall-clock limit of {limits.wall_seconds:.0f} s and was killed"
        finally:
            proc.kill_group()  # whatever the worker started dies with it
        reader.join(timeout=5)
        proc.finish()
    result.returncode = proc.returncode
    result.peak_rss_kb = proc.peak_rss_kb
    result.cpu_seconds = proc.cpu_seconds
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
