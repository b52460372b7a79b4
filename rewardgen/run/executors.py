"""Where worker jobs run: threads on this machine, or Ray tasks across a cluster.

The orchestrator hands a worker job (the dict ``rewardgen.procs.run_worker`` takes) to an
executor and gets a ``concurrent.futures.Future`` of the ``WorkerResult`` back. Wherever the job
runs, it runs through ``run_worker`` - the sandboxed worker process with every isolation layer -
and its results come back as data. Only the orchestrator writes the run store.

``LocalExecutor(max_workers)``: a thread pool on this machine (one thread waits on one worker).

``RayExecutor(address, num_cpus_per_task, num_gpus_per_task)``: each job is one Ray task that calls
``run_worker`` on whichever node Ray schedules it (``rewardgen`` must be installed there), with the
declared CPUs and (fractional) GPUs. The task returns the ``WorkerResult`` fields as plain data
(strings, numbers, bytes). If the attempt is lost - the Ray worker process or its node died, the
task could not run - it is retried once; when the retry is lost too, the job's result has stage
"lost" and an error naming both failures. A lost job never raises into the orchestrator. Progress
events are not streamed back from Ray tasks (the job reports when it is done). Ray is imported only
when a ``RayExecutor`` is constructed (``pip install 'rewardgen[ray]'``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rewardgen.procs import WorkerLimits, WorkerResult, run_worker

EventFn = Callable[[dict], None]
#: the limits a job gets when none are given (``WorkerLimits``'s defaults; one frozen instance)
NO_LIMITS_GIVEN = WorkerLimits()


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; else all the machine's): the local
    pool's default size and what ``cpu_threads`` divides."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_candidate_workers(samples: int) -> int:
    """Candidates a generation trains at once when ``--workers`` is not given: one per sample, at
    most the cores this process may use (``usable_cores()``, as the local pool counts them)."""
    return max(1, min(samples, usable_cores()))


class Executor:
    """Runs worker jobs; ``submit`` never blocks on the job and the future never raises for job faults."""

    name = "executor"

    def submit(self, job: dict[str, Any], limits: WorkerLimits = NO_LIMITS_GIVEN,
               on_event: EventFn | None = None) -> Future[WorkerResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Wait for submitted jobs and release the executor's resources."""

    def describe(self) -> dict:
        """What a run records about where its jobs ran."""
        return {"executor": self.name}

    def cpu_threads(self, concurrent: int) -> int:
        """CPU threads one job should use when ``concurrent`` jobs run at once (goes in the job as
        ``cpu_threads``: the worker sizes its physics pool to it and uses PPO's helper thread only
        with two or more)."""
        return 1

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """Worker jobs on this machine, at most ``max_workers`` at once (default: the usable cores)."""

    name = "local"

    def __init__(self, max_workers: int | None = None, module: str = "rewardgen.trainers.worker"):
        if max_workers is not None and max_workers <= 0:
            raise ValueError(f"max_workers must be positive, got {max_workers}")
        self.max_workers = max_workers or usable_cores()
        self.module = module
        self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="worker-job")

    def submit(self, job: dict[str, Any], limits: WorkerLimits = NO_LIMITS_GIVEN,
               on_event: EventFn | None = None) -> Future[WorkerResult]:
        return self._pool.submit(_run_local, job, limits, on_event, self.module)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def describe(self) -> dict:
        return {"executor": self.name, "max_workers": self.max_workers}

    def cpu_threads(self, concurrent: int) -> int:
        # more busy threads than cores made two HalfCheetah workers 7-12% slower in all (docs/benchmarks.md)
        return max(1, usable_cores() // max(1, min(int(concurrent), self.max_workers)))


def _run_local(job: dict, limits: WorkerLimits, on_event: EventFn | None, module: str) -> WorkerResult:
    try:
        return run_worker(job, limits, on_event=on_event, module=module)
    except Exception as exc:
        return WorkerResult(stage="crash", error=f"could not run the worker: {type(exc).__name__}: {exc}")


# ----- Ray ---------------------------------------------------------------------------------------

RAY_MISSING = ("RayExecutor needs Ray, which is not installed: install rewardgen[ray] "
               "(pip install -c constraints.txt -e '.[ray]', or pip install 'ray==2.60.0')")
_PID_FILE_KEY = "_executor_pid_file"  # tests only: the Ray task writes its process id here first


def _result_to_data(result: WorkerResult) -> dict:
    return dataclasses.asdict(result)


def _result_from_data(data: dict) -> WorkerResult:
    known = {f.name for f in dataclasses.fields(WorkerResult)}
    fields = {k: v for k, v in data.items() if k in known}
    return WorkerResult(**fields)


def ray_worker_task(job: dict, limits: dict, attempt: int = 0) -> dict:
    """The body of a Ray task: run the sandboxed worker on this node, return its result as data."""
    job = dict(job)
    pid_file = job.pop(_PID_FILE_KEY, None)
    if pid_file:
        tmp = f"{pid_file}.{attempt}.tmp"
        with open(tmp, "w") as f:
            f.write(str(os.getpid()))
        os.replace(tmp, f"{pid_file}.{attempt}")
    try:
        result = run_worker(job, WorkerLimits(**limits))
    except Exception as exc:
        result = WorkerResult(stage="crash", error=f"could not run the worker on {os.uname().nodename}: "
                                                   f"{type(exc).__name__}: {exc}")
    data = _result_to_data(result)
    data["node"] = os.uname().nodename
    return data


class RayExecutor(Executor):
    """Each worker job is a Ray task with declared resources; a lost attempt is retried once.

    :param address: the cluster to join (``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:PORT"``);
        None starts a local Ray instance on this machine, or uses the one this process already
        initialised.
    :param num_cpus_per_task: CPUs Ray reserves for each job.
    :param num_gpus_per_task: GPUs (fractions allowed, e.g. 0.25) Ray reserves for each job.
    :param retries: how often a lost attempt is retried (1: the job gets two attempts in all).
    :param init_kwargs: more arguments for ``ray.init`` when this executor starts Ray.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus_per_task: float = 1, num_gpus_per_task: float = 0,
                 retries: int = 1, init_kwargs: dict | None = None):
        try:
            import ray
        except ImportError:
            raise ImportError(RAY_MISSING) from None
        if num_cpus_per_task < 0 or num_gpus_per_task < 0:
            raise ValueError("num_cpus_per_task and num_gpus_per_task must not be negative")
        self._ray = ray
        self.address = address
        self.num_cpus_per_task = num_cpus_per_task
        self.num_gpus_per_task = num_gpus_per_task
        self.retries = max(0, int(retries))
        self._owns_ray = False
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False} | (init_kwargs or {})
            ray.init(address=address, **kwargs)
            self._owns_ray = True
        # Ray's own retries are off: a lost attempt must be visible here to be reported and retried once
        self._remote = ray.remote(num_cpus=num_cpus_per_task, num_gpus=num_gpus_per_task, max_retries=0)(
            ray_worker_task)
        self._waiters = ThreadPoolExecutor(max_workers=256, thread_name_prefix="ray-job")
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: dict[str, Any], limits: WorkerLimits = NO_LIMITS_GIVEN,
               on_event: EventFn | None = None) -> Future[WorkerResult]:
        with self._lock:
            if self._closed:
                raise RuntimeError("RayExecutor is closed")
            return self._waiters.submit(self._run, job, dataclasses.asdict(limits), on_event)

    def _run(self, job: dict, limits: dict, on_event: EventFn | None) -> WorkerResult:
        failures: list[str] = []
        for attempt in range(self.retries + 1):
            try:
                ref = self._remote.remote(job, limits, attempt)
                data = self._ray.get(ref)
            except Exception as exc:
                failures.append(f"attempt {attempt + 1}: {_describe_ray_error(exc)}")
                continue
            result = _result_from_data(data)
            if failures:
                result.warnings.append("retried after a lost attempt: " + "; ".join(failures))
            if on_event and result.ok and isinstance(result.result, dict) and "env_steps" in result.result:
                on_event({"type": "progress", "steps": result.result.get("env_steps"), "total": job.get("steps")})
            return result
        return WorkerResult(stage="lost", error=f"the job was lost {len(failures)} time(s) and not run to the end "
                                               f"(worker or node died): " + "; ".join(failures))

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._waiters.shutdown(wait=True)
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False

    def describe(self) -> dict:
        return {"executor": self.name, "address": self.address, "num_cpus_per_task": self.num_cpus_per_task,
                "num_gpus_per_task": self.num_gpus_per_task, "retries": self.retries}

    def cpu_threads(self, concurrent: int) -> int:
        return max(1, int(self.num_cpus_per_task))  # what Ray reserved for the task


def _describe_ray_error(exc: BaseException) -> str:
    """One line: the Ray exception's class and the first line of its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:300] if lines else '(no message)'}"


def make_executor(kind: str = "local", *, workers: int | None = None, ray_address: str | None = None,
                  num_cpus_per_task: float = 1, num_gpus_per_task: float = 0) -> Executor:
    """The executor a CLI flag names: ``local`` or ``ray``."""
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(ray_address, num_cpus_per_task=num_cpus_per_task, num_gpus_per_task=num_gpus_per_task)
    raise ValueError(f"unknown executor {kind!r}; choose local or ray")


__all__ = [
    "RAY_MISSING",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "default_candidate_workers",
    "make_executor",
    "usable_cores",
]
