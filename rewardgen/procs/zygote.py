"""The zygote: a trusted fork server that has paid the imports, so a worker starts in milliseconds.

Every worker (``rewardgen.trainers.worker``, ``rewardgen.inspect.debug_worker``), the trusted evaluator and the video
renderer used to be a fresh ``python -m ...``: 2-3 s of importing torch, mujoco and gymnasium each,
three or four times per candidate. The zygote is one process per command that imports them once
and then forks a child per job. The child is locked exactly as a fresh worker was, and only then
runs its module's ``main``.

What the zygote is, and what it holds
-------------------------------------
- Started (``Zygote.start``) as ``python -s -m rewardgen.procs.zygote`` by a dedicated keeper thread
  of the orchestrator, in its own session, from an empty scratch directory, with the environment
  every child gets (``rewardgen.procs.confine.Confinement.environment``, a headless MUJOCO_GL) and no
  descriptor of the orchestrator's but its end of the
  control socket (``close_fds``). So a fork of it carries no API key, no run-store path, no open
  file: it holds imports (``PRELOAD``), torch's warmed-up CPU kernels (``jail._warm_up``) and
  nothing else. It never opens a GPU: CUDA is initialised, if ever, by the worker after it forked
  its jail (``rewardgen.trainers.worker._warm_up``), exactly as before.
- It dies with the orchestrator: the parent-death signal is tied to the keeper thread (which lives
  as long as the zygote), and end-of-file on the control socket (the kernel closes it when the
  orchestrator dies, even by ``kill -9``) makes it kill every child's process group and exit. Each
  child has the parent-death signal towards the zygote, so the chain holds.
- It is single-threaded (``OMP_NUM_THREADS=1``; checked at start-up), so a fork copies a consistent
  process.

Protocol (how descriptors reach it)
-----------------------------------
The control socket is one end of a ``socketpair(AF_UNIX, SOCK_SEQPACKET)`` made by the orchestrator:
no path in the file system, nobody else can connect. For each job the orchestrator makes the
child's pipes itself and a fresh per-job socketpair, and sends one message: a JSON request
(``module``, ``argv``, ``env``, ``cwd``, ``fds`` - the descriptor numbers the child gets -, and the
``confinement``: ``rewardgen.procs.confine.Confinement`` as a dict) with the job socket's end and the pipe ends
attached as ``SCM_RIGHTS``. The zygote forks; the child, before it runs any job code:

1. resets the zygote's signal plumbing, starts its own session (``setsid``: own process group,
   no terminal), sets the parent-death signal (and exits if the zygote is already gone);
2. moves the received descriptors to the requested numbers and closes every other descriptor
   (the control socket, the job socket and the zygote's wake-up pipe among them);
3. changes to the requested directory and *replaces* its environment with the requested one
   (``Confinement.environment``) - nothing of the zygote's environment survives;
4. applies the confinement (``Confinement.apply``, the same call a fresh child makes before exec):
   a new network namespace when asked, the rlimits, niceness / ``SCHED_IDLE`` when asked;
5. tells the zygote it is locked; the zygote then answers the orchestrator ``{"pid": N}`` on the
   job socket, so everything the orchestrator observes in ``/proc/N`` (e.g. the network
   namespace) is already in force;
6. runs ``module.main()`` (or the module as ``__main__`` when it was not preloaded) and exits with
   its status.

The job socket then carries one byte ``K`` from the orchestrator (kill the child's process group:
the wall-clock limit) and, from the zygote, ``{"pid": N, "status": S}`` when the child has exited
(S as ``subprocess.Popen.returncode``: negative for a signal; with the child's peak RSS from
``wait4``). The zygote kills the child's process
group *before* reaping it (``waitid(WNOWAIT)``), so the group id is never a recycled pid. If the
orchestrator closes the job socket early, the child's group is killed too.

Fallback: when the zygote cannot be started or dies, ``rewardgen.procs.confine.launch`` starts a
fresh process instead and says so (``Child.started``). ``REWARDGEN_ZYGOTE=0`` in the
orchestrator's environment switches the zygote off (overhead measurements; tests of the fallback).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from rewardgen.procs.confine import Confinement, headless_gl
from rewardgen.sandbox.oslevel import LIBC as _LIBC
from rewardgen.sandbox.oslevel import close_fds_except, set_parent_death_signal

#: what the zygote imports once (each child has them for free)
PRELOAD = ("numpy", "torch", "mujoco", "gymnasium", "rewardgen.trainers.worker", "rewardgen.inspect.debug_worker",
           "rewardgen.sandbox.jail", "rewardgen.sandbox.guard", "rewardgen.sandbox.seccomp", "rewardgen.contract.reward",
           "rewardgen.sandbox.validate", "rewardgen.trainers.ppo", "rewardgen.trainers.sb3", "rewardgen.sim.cpu",
           "rewardgen.evaluate.evaluator", "rewardgen.evaluate.trajectory", "rewardgen.evaluate.video",
           "rewardgen.tasks.fitness", "rewardgen.tasks.spec", "rewardgen.procs.standalone", "rewardgen.procs.child",
           "torch._dynamo", "imageio_ffmpeg")
MAX_REQUEST_BYTES = 8 * 1024 * 1024
_MAX_FDS = 8
_PR_SET_NAME = 15
_START_TIMEOUT = 120.0



class ZygoteUnavailable(RuntimeError):
    """The zygote could not be started or stopped answering; the caller starts a fresh process."""


def enabled() -> bool:
    return os.environ.get("REWARDGEN_ZYGOTE", "1").strip().lower() not in ("0", "no", "off", "false")


def own_confinement() -> Confinement:
    """The zygote's own: the environment every child gets (its children get their own per job) with a
    headless GL backend (mujoco picks it when imported, here, and its children render videos); no
    core dumps; it dies with the keeper thread that started it."""
    return Confinement(env=(("MUJOCO_GL", headless_gl()),))


# ----------------------------------------------------------------------------------------------
# the orchestrator's side
# ----------------------------------------------------------------------------------------------

@dataclass
class SpawnRequest:
    """One child: run ``module`` with ``argv``; ``fds`` maps the child's descriptor numbers to the
    orchestrator's descriptors to pass; ``confinement`` is what holds it."""

    module: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    fds: dict[int, int]
    confinement: Confinement


class ZygoteChild:
    """A child forked by the zygote: ``pid``, ``wait(timeout)``, ``kill()`` (its process group)."""

    def __init__(self, pid: int, sock: socket.socket):
        self.pid = pid
        self._sock = sock
        self.returncode: int | None = None
        self.maxrss_kb: int | None = None  # the child's peak RSS once it has exited
        self.cpu_seconds: float | None = None  # and the CPU time it (and the children it reaped) used
        # one reader of the socket at a time: the frame reader's kill and the caller's wait both wait,
        # and two threads changing one socket's timeout under each other's recv made a wait time out
        # at once (a lying worker then ended "timeout" instead of "protocol", about 1 run in 100)
        self._reading = threading.Lock()

    def wait(self, timeout: float | None = None) -> int:
        """The exit status (negative: killed by that signal); ``subprocess.TimeoutExpired`` after
        ``timeout`` seconds. If the zygote died, the child died with it: SIGKILL."""
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._reading.acquire(timeout=-1 if timeout is None else timeout):
            raise subprocess.TimeoutExpired(f"zygote child {self.pid}", timeout or 0.0)
        try:
            if self.returncode is not None:  # the other waiter read the status meanwhile
                return self.returncode
            return self._read_status(None if deadline is None else max(0.0, deadline - time.monotonic()))
        finally:
            self._reading.release()

    def _read_status(self, timeout: float | None) -> int:
        """``wait``'s read of the exit status (the caller holds ``_reading``)."""
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(4096)
        except (TimeoutError, BlockingIOError):  # (a timeout of 0 makes the socket non-blocking)
            raise subprocess.TimeoutExpired(f"zygote child {self.pid}", timeout or 0.0) from None
        except OSError:
            data = b""
        finally:
            try:
                self._sock.settimeout(None)
            except OSError:
                pass
        try:
            answer = json.loads(data)
            self.returncode = int(answer["status"])
            self.maxrss_kb = int(answer.get("maxrss_kb") or 0) or None
            self.cpu_seconds = float(answer["cpu_s"]) if "cpu_s" in answer else None
        except (ValueError, KeyError, TypeError):
            self.returncode = -signal.SIGKILL  # the zygote went away; its children die with it
        self._close()
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                return self.wait(0.0)
            except subprocess.TimeoutExpired:
                return None
        return self.returncode

    def kill(self) -> None:
        """Kill the child's process group (done by the zygote, which has not reaped it yet)."""
        if self.returncode is None:
            try:
                self._sock.send(b"K")
            except OSError:
                pass

    def _close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class Zygote:
    """The client: ``spawn(SpawnRequest)`` returns a ``ZygoteChild``; ``ZygoteUnavailable`` if the
    zygote cannot serve (the caller falls back to a fresh process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None
        self.start_seconds: float | None = None
        self.error: str | None = None

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start the zygote (from a keeper thread, see the module docstring) and wait for its ready
        message; ZygoteUnavailable if it does not come."""
        started = time.monotonic()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._scratch = tempfile.TemporaryDirectory(prefix="rewardgen-zygote-")
        scratch = self._scratch.name
        box: dict[str, Any] = {}
        launched = threading.Event()
        confinement = own_confinement()

        def keeper() -> None:  # lives as long as the zygote: its parent-death signal is tied to this thread
            try:
                box["proc"] = subprocess.Popen(
                    [sys.executable, "-s", "-m", "rewardgen.procs.zygote", str(theirs.fileno())],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=scratch,
                    env=confinement.environment(scratch), pass_fds=(theirs.fileno(),), start_new_session=True,
                    preexec_fn=confinement.apply)
            except Exception as exc:  # reported as ZygoteUnavailable
                box["error"] = f"{type(exc).__name__}: {exc}"
                launched.set()
                return
            launched.set()
            proc = box["proc"]
            box["stderr"] = proc.stderr.read(64 * 1024) if proc.stderr else b""
            proc.wait()

        threading.Thread(target=keeper, name="rewardgen-zygote", daemon=True).start()
        launched.wait()
        theirs.close()
        if "error" in box:
            ours.close()
            raise ZygoteUnavailable(f"could not start the zygote: {box['error']}")
        self._proc = box["proc"]
        ours.settimeout(timeout)
        try:
            hello = json.loads(ours.recv(4096) or b"null")
        except (OSError, ValueError):
            hello = None
        ours.settimeout(None)
        if not isinstance(hello, dict) or hello.get("ready") is not True:
            ours.close()
            self._kill()
            why = (hello or {}).get("error") if isinstance(hello, dict) else None
            if not why:
                time.sleep(0.2)
                why = (box.get("stderr") or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or ["no answer"]
                why = why[0]
            raise ZygoteUnavailable(f"the zygote did not start: {str(why)[:300]}")
        self._sock = ours
        self.start_seconds = time.monotonic() - started

    def spawn(self, req: SpawnRequest) -> ZygoteChild:
        with self._lock:
            if self._sock is None:
                if self.error is not None:
                    raise ZygoteUnavailable(self.error)
                try:
                    self.start()
                except ZygoteUnavailable as exc:
                    self.error = str(exc)
                    raise
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            targets = sorted(req.fds)
            payload = json.dumps({"module": req.module, "argv": list(req.argv), "env": dict(req.env),
                                  "cwd": req.cwd, "fds": targets,
                                  "confinement": req.confinement.to_dict()}).encode()
            sock = self._sock
            if sock is None:  # start() either made the socket or raised
                raise ZygoteUnavailable("the zygote did not start")
            try:
                socket.send_fds(sock, [payload], [theirs.fileno(), *(req.fds[t] for t in targets)])
            except OSError as exc:
                mine.close()
                self._broken(f"the zygote stopped answering ({exc})")
            finally:
                theirs.close()
        mine.settimeout(60.0)
        try:
            answer = json.loads(mine.recv(4096) or b"null")
        except (OSError, ValueError):
            answer = None
        mine.settimeout(None)
        if not isinstance(answer, dict) or not isinstance(answer.get("pid"), int) or answer["pid"] <= 0:
            mine.close()
            with self._lock:
                self._broken("the zygote did not fork the job")
        if answer.get("error"):
            child = ZygoteChild(answer["pid"], mine)
            child.wait(30.0)
            raise ZygoteUnavailable(f"the zygote's child could not be locked: {str(answer['error'])[:300]}")
        return ZygoteChild(answer["pid"], mine)

    def _broken(self, why: str) -> None:
        self.error = why
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._kill()
        raise ZygoteUnavailable(why)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                self._proc.kill()
            except OSError:
                pass

    def close(self) -> None:
        """Stop the zygote (end-of-file on its socket; it kills what is left of its children). One
        still importing is killed at once (``prestart`` for a command that then failed fast). A closed
        zygote never starts again: a ``prestart`` thread that had not begun yet must not fork while the
        command exits (the interpreter's shutdown and a fork in flight break each other's locks)."""
        if self._sock is None and self._proc is not None:
            self._kill()
        with self._lock:
            if self.error is None:
                self.error = "this command's zygote was closed"
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            if self._proc is not None:
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._kill()
                self._proc = None
            if self._scratch is not None:
                self._scratch.cleanup()
                self._scratch = None


_SHARED: Zygote | None = None
_SHARED_LOCK = threading.Lock()


def _start_if_idle(z: Zygote) -> None:
    """Start ``z`` unless it serves already or failed before; a failure is kept as its ``error``."""
    with z._lock:
        if z._sock is None and z.error is None:
            try:
                z.start()
            except ZygoteUnavailable as exc:
                z.error = str(exc)


def prestart() -> None:
    """Start this command's zygote in the background now (the first job then finds it ready)."""
    z = shared()
    if z is not None:
        threading.Thread(target=_start_if_idle, args=(z,), name="rewardgen-zygote-start", daemon=True).start()


def ready() -> None:
    """Start this command's zygote now if it is not running, and return once it serves (or could not
    start): what is timed after this does not pay its start-up (the time estimate's calibration)."""
    z = shared()
    if z is not None:
        _start_if_idle(z)


def reset_shared() -> None:
    """Stop this command's zygote; the next job starts a new one (benchmarks: one per measured run)."""
    global _SHARED
    with _SHARED_LOCK:
        old, _SHARED = _SHARED, None
    if old is not None:
        old.close()


def shared() -> Zygote | None:
    """This command's zygote (made on first use), or None when switched off (``REWARDGEN_ZYGOTE=0``)."""
    global _SHARED
    if not enabled():
        return None
    with _SHARED_LOCK:
        if _SHARED is None:
            import atexit

            _SHARED = Zygote()
            atexit.register(_SHARED.close)
        return _SHARED


# ----------------------------------------------------------------------------------------------
# the zygote's side
# ----------------------------------------------------------------------------------------------

def _serve(control_fd: int) -> None:  # pragma: no cover - runs in the zygote process
    import select

    control = socket.socket(fileno=control_fd)
    problem = _preload()
    if problem:
        control.send(json.dumps({"ready": False, "error": problem}).encode())
        return
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    control.send(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    jobs: dict[int, socket.socket] = {}  # child pid -> its job socket
    by_sock: dict[int, int] = {}  # job socket fd -> child pid
    closing = False
    while True:
        watched = [wake_r] + list(by_sock) + ([] if closing else [control.fileno()])
        try:
            ready = select.select(watched, [], [], 1.0 if closing else None)[0]
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        _reap(jobs, by_sock)
        if closing and not jobs:
            return
        for fd in ready:
            if fd == control.fileno():
                try:
                    msg, fds, _, _ = socket.recv_fds(control, MAX_REQUEST_BYTES, _MAX_FDS)
                except OSError:
                    msg, fds = b"", []
                if not msg:  # the orchestrator is gone: so are its jobs
                    closing = True
                    for pid in list(jobs):
                        _killpg(pid)
                    _reap(jobs, by_sock)
                    if not jobs:
                        return
                    continue
                _fork_job(msg, fds, control, wake_r, wake_w, jobs, by_sock)
            elif fd in by_sock:
                pid = by_sock[fd]
                try:
                    data = jobs[pid].recv(16)
                except OSError:
                    data = b""
                if data == b"K" or not data:
                    _killpg(pid)
                if not data:
                    del by_sock[fd]  # still reaped (and killed) below; nobody reads the status


def _preload() -> str | None:  # pragma: no cover
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional module makes no zygote
            if name in ("imageio_ffmpeg", "torch._dynamo", "rewardgen.evaluate.video"):
                continue
            return f"could not import {name}: {type(exc).__name__}: {exc}"
    try:  # torch's lazy initialisation, done once here (each jail would repeat it otherwise)
        from rewardgen.contract.schema import Schema  # noqa: F401 - loaded before the fork, for every job
        from rewardgen.sandbox.jail import SharedState, _warm_up
        from rewardgen.tasks.spec import get_task, list_tasks

        ids = [t.id for t in list_tasks()]
        task = get_task("inverted-pendulum-balance" if "inverted-pendulum-balance" in ids else ids[0])
        _warm_up(SharedState(task.schema, 4))
    except Exception:  # the worker warms up itself then
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    if len(os.listdir("/proc/self/task")) != 1:
        return "the zygote is not single-threaded after its imports; refusing to fork from it"
    return None


def _fork_job(msg: bytes, fds: list[int], control: socket.socket, wake_r: int, wake_w: int,
              jobs: dict[int, socket.socket], by_sock: dict[int, int]) -> None:  # pragma: no cover
    if not fds:
        return
    job_sock = socket.socket(fileno=fds[0])
    passed = fds[1:]
    try:
        req = json.loads(msg)
        targets = [int(t) for t in req["fds"]]
        if len(targets) != len(passed) or not isinstance(req.get("module"), str):
            raise ValueError("descriptors do not match the request")
    except (ValueError, KeyError, TypeError) as exc:
        job_sock.send(json.dumps({"pid": -1, "error": f"bad request: {exc}"}).encode())
        job_sock.close()
        for fd in passed:
            os.close(fd)
        return
    sync_r, sync_w = os.pipe()
    zygote = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(sync_r)
            code = _child(req, dict(zip(targets, passed)), zygote, sync_w)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            try:
                import traceback

                traceback.print_exc()
            except BaseException:
                pass
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:
                    pass
            os._exit(code)
    os.close(sync_w)
    for fd in passed:
        os.close(fd)
    status = _read_sync(sync_r)
    os.close(sync_r)
    answer: dict[str, Any] = {"pid": pid}
    if status != "R":
        answer["error"] = status or "the child died while being locked"
    try:
        job_sock.send(json.dumps(answer).encode())
    except OSError:
        _killpg(pid)
    jobs[pid] = job_sock
    by_sock[job_sock.fileno()] = pid


def _read_sync(fd: int, timeout: float = 60.0) -> str:  # pragma: no cover
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        data += chunk
        if data[:1] == b"R":
            return "R"
    return data[1:].decode("utf-8", "replace") if data[:1] == b"E" else ""


def _reap(jobs: dict[int, socket.socket], by_sock: dict[int, int]) -> None:  # pragma: no cover
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == 0:
            return
        pid = info.si_pid
        _killpg(pid)  # whatever it left in its group; the unreaped pid cannot have been recycled
        try:
            _, status, usage = os.wait4(pid, 0)
        except ChildProcessError:
            continue
        sock = jobs.pop(pid, None)
        if sock is not None:
            by_sock.pop(sock.fileno(), None)
            try:  # with the child's peak RSS and CPU time (its own and the children's it reaped: the jail)
                sock.send(json.dumps({"pid": pid, "status": os.waitstatus_to_exitcode(status),
                                      "maxrss_kb": int(usage.ru_maxrss),
                                      "cpu_s": round(usage.ru_utime + usage.ru_stime, 4)}).encode())
            except OSError:
                pass
            sock.close()


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _child(req: dict, fds: dict[int, int], zygote: int, sync_w: int) -> int:  # pragma: no cover
    """In the forked child: lock it (module docstring, steps 1-5), then run the module."""
    import io

    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        os.setsid()
        set_parent_death_signal()
        if os.getppid() != zygote:
            return 70
        if _LIBC is not None:  # "rg:worker" in ps/top rather than the zygote's command line
            _LIBC.prctl(_PR_SET_NAME, ("rg:" + str(req["module"]).rsplit(".", 1)[-1])[:15].encode(), 0, 0, 0)
        # descriptors: first out of the way (above every target), then into place; the rest closed
        high = max([*fds, *fds.values(), sync_w, 2]) + 1
        parked: dict[int, int] = {}
        for i, (target, src) in enumerate(sorted(fds.items())):
            parked[target] = os.dup2(src, high + i, inheritable=False)
        for target, src in parked.items():
            os.dup2(src, target, inheritable=target <= 2)  # the standard streams pass on to what it runs
        sync_high = os.dup2(sync_w, high + len(parked), inheritable=False)
        close_fds_except(set(parked) | {sync_high})
        sync_w = sync_high
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in req["env"].items()})
        tempfile.tempdir = None
        Confinement.from_dict(req["confinement"]).apply()
    except BaseException as exc:
        _write_all(sync_w, b"E" + f"{type(exc).__name__}: {exc}".encode()[:1000])
        return 70
    _write_all(sync_w, b"R")
    os.close(sync_w)
    # fresh standard streams on the received descriptors
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False))) if 0 in fds else sys.stdin
    if 1 in fds:
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), write_through=False)
    if 2 in fds:
        sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), line_buffering=True,
                                      errors="backslashreplace")
    sys.argv = [req["module"], *[str(a) for a in req.get("argv", [])]]
    return _run_module(req["module"])


def _run_module(name: str) -> int:  # pragma: no cover
    import importlib
    import runpy

    module = sys.modules.get(name)
    if module is not None and callable(getattr(module, "main", None)):
        module.main()
    else:
        if module is None:
            importlib.invalidate_caches()
        runpy.run_module(name, run_name="__main__", alter_sys=True)
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main() -> None:  # pragma: no cover
    if len(sys.argv) != 2:
        sys.exit("usage: python -m rewardgen.procs.zygote CONTROL_FD (started by rewardgen itself)")
    _serve(int(sys.argv[1]))
    os._exit(0)  # nothing to flush or save: skip tearing down torch and friends


if __name__ == "__main__":  # pragma: no cover
    main()
