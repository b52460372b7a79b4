"""The reward jail: candidate code alone in its own process, locked by the kernel.

The trusted training process (``rewardgen.trainers.worker``) holds the simulator, the policy, the optimiser
and the result pipe. It never runs candidate code. ``Jail(source, schema, capacity)`` forks a child
that holds none of those, locks it, and loads the candidate there; calling the jail with a State
copies the State into shared memory, wakes the child through a pipe, and reads back ``total`` and
the named components, each checked by the trusted side before use.

How the child is made (all trusted code, before a line of the candidate runs):

1. fork; the child closes every descriptor but stdout/stderr and its two pipe ends (moved to 3, 4);
2. ``unshare`` new user, PID, IPC, mount, network, UTS and cgroup namespaces; the trusted parent
   maps the child's root to ``nobody`` outside (its own uid where it may not map others);
3. fork again, so the jail is PID 1 of its PID namespace (its parent only waits and reports how it
   died); the jail starts its own session, then mounts an empty read-only tmpfs and ``pivot_root``s
   into it: no file of the host is reachable by path;
4. rlimits (address space, CPU, no files, no processes, no core, few descriptors), all capabilities
   dropped, no new privileges, the parent-death signal set (it dies with the trainer);
5. the allowlist seccomp filter (``rewardgen.sandbox.seccomp``): no open, no signals, no processes;
6. Python-level guards for clear messages to honest mistakes (``rewardgen.sandbox.guard``: audit
   hook, restricted builtins); then the candidate is executed and served.

Where the OS forbids a layer the jail says so (``Jail.warnings``) and keeps the others. The layers
listed in ``Jail.layers`` are those the trusted side saw in ``/proc/<jail>/`` (seccomp mode, no new
privileges, namespaces), not what the child claims.

Channel: requests ``(op, worlds)``; replies ``(kind, components, payload bytes)`` followed by the
payload (component names as JSON when they change, or an error record), at most
``MAX_MESSAGE_BYTES``. Everything the child sends is validated: kinds, counts, sizes, UTF-8,
names (printable, at most ``MAX_NAME_CHARS``, at most ``MAX_COMPONENTS``, none the trusted side uses
itself: ``RESERVED_NAMES`` and anything starting with ``__``), error stages.

The answers are checked for liveness and meaning too:

- every call has a deadline (``Jail.deadline``): generous for the first ``CALIBRATION_CALLS`` (the
  smoke check's), then ``DEADLINE_FACTOR`` times the slowest call measured so far, scaled by the
  batch size, within ``DEADLINE_MIN``..``DEADLINE_MAX`` seconds. A reward that blocks (reading its own
  channel uses no CPU, so RLIMIT_CPU never fires) is stopped there and fails with a clear reason;
- the namespace parent supervises the seccomp filter (``seccomp.Supervisor``): every refused system
  call is counted outside the jail, where the reward cannot change the count (``Jail.refused``);
- ``Jail.verify`` also asks whether the audit hook is still armed (``guard_off``: the jail's own
  word, so a flag, not a boundary).
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rewardgen.contract.schema import Schema
from rewardgen.contract.state import State, field_shapes
from rewardgen.sandbox.confined import Closing
from rewardgen.sandbox.guard import CANDIDATE_FILENAME
from rewardgen.sandbox.oslevel import close_fds_except, keep_priority_in_session

MAX_COMPONENTS = 64
MAX_NAME_CHARS = 100
MAX_MESSAGE_BYTES = 256 * 1024
STAGES = ("static", "load", "runtime", "contract", "sandbox")
#: component names the trusted side uses for its own series (the total's label in the books, the
#: charts' and debug tables' total): a reward may not return them (nor any name starting with "__")
RESERVED_NAMES = frozenset({"total", "(total)", "total_reward"})
#: the first calls (the smoke check's) get FIRST_CALL_DEADLINE seconds each; later ones
#: DEADLINE_FACTOR x the slowest measured (per world, times the batch), within DEADLINE_MIN..DEADLINE_MAX
CALIBRATION_CALLS = 16
FIRST_CALL_DEADLINE = 60.0
DEADLINE_FACTOR = 50.0
DEADLINE_MIN = 2.0
DEADLINE_MAX = 30.0

_REQUEST = struct.Struct("<BI")  # op, worlds
_REPLY = struct.Struct("<BHI")  # kind, components, payload bytes
_OP_CALL, _OP_VERIFY, _OP_STOP = 1, 2, 3
_HELLO, _OK, _ERROR = 1, 2, 3
_REQ_FD, _REP_FD = 3, 4  # the jail's ends of the channel, at fixed numbers
_HANDOFF_FD = 5  # the jail's end of the socket that hands its seccomp listener to the supervisor

_CLONE_NEWNS, _CLONE_NEWCGROUP, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x20000, 0x02000000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_NAMESPACES = (_CLONE_NEWUSER | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWUTS
               | _CLONE_NEWCGROUP)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2
_PR_SET_PDEATHSIG, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_SET_DUMPABLE = 1, 24, 38, 4
_NOBODY = 65534
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, -1)  # glibc has no wrapper for it

_LIBC: ctypes.CDLL | None
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)  # resolved now: the jail may not open libraries later
except OSError:  # pragma: no cover
    _LIBC = None


class JailError(Exception):
    """The candidate failed inside the jail (or the jail died); ``stage`` is one of ``STAGES``."""

    def __init__(self, stage: str, error: str, traceback_text: str = ""):
        super().__init__(error)
        self.stage, self.error, self.traceback = stage, error, traceback_text


@dataclass(frozen=True)
class JailOptions:
    """Switches for single layers, for the tests that prove each layer on its own; all on by default.

    :param audit: arm the audit hook (clear messages for refused operations).
    :param seccomp: load the allowlist filter.
    :param namespaces: unshare namespaces and pivot into an empty root.
    :param memory_bytes: the jail's address-space limit (None: inherit the trainer's).
    :param cpu_seconds: the jail's CPU-time limit (None: inherit the trainer's).
    """

    audit: bool = True
    seccomp: bool = True
    namespaces: bool = True
    memory_bytes: int | None = None
    cpu_seconds: int | None = None


class SharedState:
    """State fields of up to ``capacity`` worlds and the reward's outputs, in one anonymous shared
    mapping made before the fork (so both processes see it and no file or name exists for it)."""

    def __init__(self, schema: Schema, capacity: int):
        self.schema, self.capacity = schema, int(capacity)
        self.shapes = field_shapes(schema)
        sizes = {k: self.capacity * int(np.prod(s, dtype=np.int64)) * 4 for k, s in self.shapes.items()}
        self.input_bytes = sum(sizes.values())
        out_bytes = (1 + MAX_COMPONENTS) * self.capacity * 4
        self.buf = mmap.mmap(-1, self.input_bytes + out_bytes)
        self.offsets, offset = {}, 0
        for name in self.shapes:
            self.offsets[name] = offset
            offset += sizes[name]
        block = np.ndarray((self.input_bytes,), np.uint8, buffer=self.buf)
        self.inputs = self._views(block)
        self._tensor_inputs = {k: torch.from_numpy(v) for k, v in self.inputs.items()}
        self.outputs = np.ndarray((1 + MAX_COMPONENTS, self.capacity), np.float32, buffer=self.buf,
                                  offset=self.input_bytes)

    def _views(self, block: np.ndarray) -> dict[str, np.ndarray]:
        return {name: np.ndarray((self.capacity, *shape), np.float32, buffer=block, offset=self.offsets[name])
                for name, shape in self.shapes.items()}

    def write(self, state: State) -> int:
        """Copy ``state`` in (trusted side); returns its number of worlds."""
        n = state.num_worlds
        if n > self.capacity:
            raise ValueError(f"a State of {n} worlds does not fit a jail made for {self.capacity}")
        for name, tensor in state.arrays().items():
            if tensor.device.type == "cpu":
                np.copyto(self.inputs[name][:n], tensor.detach().numpy())
            else:  # from a GPU: one device-to-host copy per field, straight into shared memory
                self._tensor_inputs[name][:n].copy_(tensor)
        return n

    def state(self, n: int) -> State:
        """A State of fresh tensors (jail side): one copy of the whole block, then views into it, so
        writing into it changes nothing anyone else reads and a tensor kept from an earlier call
        keeps its values."""
        block = np.frombuffer(self.buf, np.uint8, self.input_bytes).copy()
        arrays = {name: torch.from_numpy(np.ndarray((n, *shape), np.float32, buffer=block, offset=self.offsets[name]))
                  for name, shape in self.shapes.items()}
        return State.from_arrays(self.schema, arrays, _same)


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def failure_record(exc: BaseException, stage: str, filename: str = CANDIDATE_FILENAME) -> dict[str, str]:
    """``{"stage", "error", "traceback"}`` for an exception raised while loading or running a candidate:
    static-check refusals, sandbox refusals, contract breaks, syntax errors, and plain exceptions with
    the candidate's line."""
    from rewardgen.contract.reward import ContractError
    from rewardgen.sandbox.guard import RefusedImport, SandboxViolation
    from rewardgen.sandbox.validate import ValidationError

    if isinstance(exc, ValidationError):
        return {"stage": "static", "error": str(exc), "traceback": "\n".join(str(i) for i in exc.issues)}
    if isinstance(exc, (SandboxViolation, RefusedImport)):
        return {"stage": "sandbox", "error": str(exc), "traceback": _trim_traceback(exc, filename)}
    if isinstance(exc, ContractError):  # raised by the contract's checks: only the candidate's frames matter
        own = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        return {"stage": "contract", "error": str(exc), "traceback": "".join(traceback.format_list(own))}
    if isinstance(exc, SyntaxError):
        return {"stage": "load", "error": f"SyntaxError: {exc.msg} (line {exc.lineno})",
                "traceback": "".join(traceback.format_exception_only(type(exc), exc))}
    cause = _violation_cause(exc)
    if cause is not None:
        return {"stage": "sandbox", "error": cause, "traceback": _trim_traceback(exc, filename)}
    error = f"{type(exc).__name__}: {exc}"
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    if lines and f"line {lines[-1]}" not in error:
        error = f"{error} ({filename} line {lines[-1]})"
    return {"stage": stage, "error": error, "traceback": _trim_traceback(exc, filename)}


def _trim_traceback(exc: BaseException, filename: str) -> str:
    """The traceback frames from the candidate's file when there are any, else the last three."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if f.filename == filename]
    lines = traceback.format_list(own) if own else traceback.format_list(frames[-3:])
    return "".join(lines) + "".join(traceback.format_exception_only(type(exc), exc))


def _violation_cause(exc: BaseException) -> str | None:
    """A sandbox refusal wrapped in another exception (raise X from violation, or during handling)."""
    from rewardgen.sandbox.guard import RefusedImport, SandboxViolation

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (SandboxViolation, RefusedImport)):
            return str(cur)
        cur = cur.__cause__ or cur.__context__
    return None


def component_name_error(name: Any) -> str | None:
    """Why ``name`` cannot be a component name (None when it can)."""
    if not isinstance(name, str) or not name:
        return f"component names must be non-empty strings, got {name!r}"[:200]
    if len(name) > MAX_NAME_CHARS:
        return f"component name {name[:40]!r}... is longer than {MAX_NAME_CHARS} characters"
    shown = name.encode("unicode_escape").decode("ascii")  # lone surrogates, control codes: \\udcff, \\x1b
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"component name '{shown[:60]}' is not valid Unicode text (a lone surrogate)"
    if not name.isprintable():
        return f"component name '{shown[:60]}' has unprintable characters"
    if name.startswith("__") or name in RESERVED_NAMES:
        return (f"component name {name!r} is reserved (rewardgen's own series use it; names starting with '__' "
                "are reserved too): choose another")
    return None


# ----------------------------------------------------------------------------------------------
# the trusted side
# ----------------------------------------------------------------------------------------------

class Jail(Closing):
    """Runs one candidate's ``compute_reward`` in a locked child process; call it like the reward.

    :param source: the candidate's source (validated statically by the caller).
    :param schema: the robot's schema (fixes the State layout).
    :param capacity: the largest number of worlds a call will pass.
    :param options: layer switches and limits (``JailOptions``).
    ``layers``/``warnings`` say which isolation layers the trusted side saw active and which were
    missing; ``load_error`` is the ``JailError`` of a candidate that could not be loaded (its calls
    raise it). ``JailError`` from the constructor means the jail itself could not start.
    """

    def __init__(self, source: str, schema: Schema, capacity: int, options: JailOptions = JailOptions(),
                 filename: str = CANDIDATE_FILENAME):
        self.shared = SharedState(schema, capacity)
        _warm_up(self.shared)
        from rewardgen.sandbox.seccomp import COUNTS_BYTES

        # the supervisor's counters of refused system calls: shared with the namespace parent only (the
        # jail unmaps its copy before any candidate code runs)
        self._counts = mmap.mmap(-1, COUNTS_BYTES)
        self.deadline: float | None = None  # seconds for the next call (None: FIRST_CALL_DEADLINE)
        self._slowest = 0.0  # the slowest call measured, per world
        self._calls = 0
        self._submitted = 0.0
        self.guard_off = False
        self.layers: list[str] = []
        self.warnings: list[str] = []
        self._names: tuple[str, ...] = ()
        self.load_error: JailError | None = None
        self._pending: tuple[int, torch.device] | None = None  # (worlds, device) of a submitted call
        self._pid: int | None = None  # the intermediate process (the jail's parent), our child
        self._jail_pid: int | None = None
        req_r, self._req = os.pipe()
        self._rep, rep_w = os.pipe()
        sync_r, sync_w = os.pipe()  # child -> parent: namespaces made? then the jail's pid
        go_r, go_w = os.pipe()  # parent -> child: uid/gid maps written
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child (its coverage is the tests' verdicts)
            code = 70
            try:
                os.close(self._req)
                os.close(self._rep)
                _intermediate(parent, source, options, filename, self.shared, req_r, rep_w, sync_w, go_r,
                              self._counts)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        self._pid = pid
        for fd in (req_r, rep_w, sync_w, go_r):
            os.close(fd)
        try:
            self._setup(sync_r, go_w, options)
        except BaseException:
            self.close()
            raise
        finally:
            os.close(sync_r)
            os.close(go_w)

    # -- start-up ------------------------------------------------------------------------------
    def _setup(self, sync_r: int, go_w: int, options: JailOptions) -> None:
        made = _read_exact(sync_r, 1, 60.0)
        if made == b"N":
            self._map_ids()
        elif made == b"-" and not options.namespaces:
            self.warnings.append("namespaces disabled by the job (tests only)")
        elif made == b"-":
            self.warnings.append("no user/PID/IPC/mount/network namespaces for the reward process (unshare "
                                 "not permitted here); seccomp and rlimits still apply")
        if made:
            os.write(go_w, b"G")
        raw = _read_exact(sync_r, 8, 60.0)
        if len(raw) == 8:
            self._jail_pid = struct.unpack("<q", raw)[0]
        kind, _, payload = self._reply(timeout=120.0)
        if kind != _HELLO:
            raise JailError("runtime", "the reward process did not start")
        hello = _json_object(payload)
        if self._jail_pid is not None:  # its own session by now: as nice there as its worker made it
            keep_priority_in_session(self._jail_pid)
        self.warnings += [str(w)[:300] for w in hello.get("warnings", [])[:20]]
        self.layers = self._observed_layers(hello, options)
        kind, _, payload = self._reply(timeout=None)  # loading runs module-level candidate code
        if kind == _ERROR:
            self.load_error = _error_from(payload)
        elif kind != _OK:
            raise JailError("runtime", f"the reward process answered {kind} while loading")

    def _map_ids(self) -> None:
        """Map the child's root to nobody (or, unprivileged, to our own uid) in its user namespace."""
        assert self._pid is not None
        proc = f"/proc/{self._pid}"
        uid, gid = os.geteuid(), os.getegid()
        for outer_uid, outer_gid in ((_NOBODY, _NOBODY), (uid, gid)):
            try:
                if outer_uid != _NOBODY:  # unprivileged: gid_map needs setgroups denied first
                    _write_file(f"{proc}/setgroups", "deny")
                _write_file(f"{proc}/uid_map", f"0 {outer_uid} 1")
                _write_file(f"{proc}/gid_map", f"0 {outer_gid} 1")
                if outer_uid != _NOBODY:
                    self.warnings.append("the reward process keeps this user's uid outside its namespace "
                                         "(mapping it to nobody needs CAP_SETUID)")
                return
            except OSError:
                continue
        self.warnings.append("could not map uids into the reward process's user namespace")

    def _observed_layers(self, hello: dict, options: JailOptions) -> list[str]:
        """Layers seen from outside in /proc/<jail>/, plus the in-process guards the child armed
        before any candidate code ran (its hello precedes the candidate)."""
        layers = ["jail-process"]
        pid = self._jail_pid
        status = ""
        try:
            with open(f"/proc/{pid}/status") as fh:
                status = fh.read()
        except (OSError, TypeError):
            self.warnings.append("could not inspect the reward process in /proc")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Seccomp", "").strip() == "2":
            layers.append("seccomp")
        elif options.seccomp:
            self.warnings.append("seccomp filter not active in the reward process")
        if fields.get("NoNewPrivs", "").strip() == "1":
            layers.append("no-new-privs")
        if fields.get("CapEff", "").strip().strip("0") == "" and status:
            layers.append("no-capabilities")
        for ns in ("user", "pid", "ipc", "mnt", "net"):
            try:
                if os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"):
                    layers.append(f"{ns}ns")
            except (OSError, TypeError):
                pass
        claimed = {str(x) for x in hello.get("layers", [])[:20]}
        for layer in ("empty-root", "rlimits", "audit-hook", "restricted-builtins"):
            if layer in claimed:
                layers.append(layer)
        return layers

    # -- calls ---------------------------------------------------------------------------------
    def __call__(self, state: State) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.submit(state)
        return self.collect()

    def submit(self, state: State) -> None:
        """Hand ``state`` to the jail and return at once (one call at a time: ``collect`` next)."""
        self.submit_shared(self.shared.write(state), state.qpos.device)

    def submit_shared(self, n: int, device: torch.device | str = "cpu") -> None:
        """Like ``submit`` for a State of ``n`` worlds already written into ``shared.inputs``."""
        if self.load_error is not None:
            raise self.load_error
        if self._pending is not None:
            raise RuntimeError("Jail.submit twice without collect")
        if not 0 < n <= self.shared.capacity:
            raise ValueError(f"a call on {n} worlds does not fit a jail made for {self.shared.capacity}")
        self._send(_OP_CALL, n)
        self._submitted = time.monotonic()
        self._pending = (n, torch.device(device))

    def collect(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The answer to the last ``submit``: ``(total, components)``, checked (JailError if it failed)."""
        if self._pending is None:
            raise RuntimeError("Jail.collect without submit")
        (n, device), self._pending = self._pending, None
        allowed = self.call_deadline(n)
        try:
            kind, count, payload = self._reply(timeout=max(0.0, self._submitted + allowed - time.monotonic()),
                                               timeout_error=None)
        except TimeoutError:
            self.close()  # it blocked: the jail goes, its worker reports the candidate
            measured = f"its calls took at most {self._slowest * n * 1000:.1f} ms for {n} worlds before"
            raise JailError("runtime", f"the reward did not answer within {allowed:.1f} s ({measured}; the "
                                       f"deadline is {DEADLINE_FACTOR:g}x that, at least {DEADLINE_MIN:g} s): it "
                                       "blocked or hung, and was stopped") from None
        took = time.monotonic() - self._submitted
        self._calls += 1
        self._slowest = max(self._slowest, took / max(n, 1))
        if kind == _ERROR:
            raise _error_from(payload)
        if kind != _OK:
            raise JailError("runtime", f"the reward process sent an unexpected reply ({kind})")
        if payload:
            self._names = _names_from(payload)
        if count != len(self._names):
            raise JailError("contract", f"the reward process reported {count} components for "
                                        f"{len(self._names)} names")
        values = torch.from_numpy(self.shared.outputs[: 1 + count, :n].copy()).to(device)
        return values[0], {name: values[1 + k] for k, name in enumerate(self._names)}

    def call_deadline(self, n: int) -> float:
        """Seconds a call on ``n`` worlds may take: ``FIRST_CALL_DEADLINE`` while calibrating, then
        ``DEADLINE_FACTOR`` x the slowest call measured (per world, times ``n``), within the bounds."""
        if self._calls < CALIBRATION_CALLS:
            return FIRST_CALL_DEADLINE
        return min(DEADLINE_MAX, max(DEADLINE_MIN, DEADLINE_FACTOR * self._slowest * max(n, 1)))

    @property
    def calls(self) -> int:
        """Calls answered so far."""
        return self._calls

    @property
    def capacity(self) -> int:
        """The most worlds one call may carry."""
        return self.shared.capacity

    def refused(self) -> tuple[int, dict[str, int]]:
        """System calls the seccomp filter refused the jail, as its supervisor counted them outside it:
        ``(in all, {name: count})``."""
        from rewardgen.sandbox.seccomp import read_counts

        return read_counts(self._counts)

    def verify(self) -> None:
        """Ask the jail's guards whether the candidate tried anything refused (JailError if so); notes
        in ``guard_off`` whether the jail says its audit hook was switched off."""
        self._send(_OP_VERIFY, 0)
        kind, _, payload = self._reply(timeout=60.0)
        if kind == _ERROR:
            raise _error_from(payload)
        if payload:
            self.guard_off = self.guard_off or _json_object(payload).get("guard") == "off"

    def close(self) -> None:
        """Stop the jail and reap it (killed if it does not stop at once)."""
        if self._pid is None:
            return
        try:
            os.write(self._req, _REQUEST.pack(_OP_STOP, 0))
        except OSError:
            pass
        for fd in (self._req, self._rep):
            try:
                os.close(fd)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and os.waitpid(self._pid, os.WNOHANG) == (0, 0):
            time.sleep(0.01)
        else:
            try:
                os.kill(self._pid, signal.SIGKILL)  # the jail dies with it (parent-death signal)
                os.waitpid(self._pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self._pid = None

    # -- channel -------------------------------------------------------------------------------
    def _send(self, op: int, n: int) -> None:
        try:
            os.write(self._req, _REQUEST.pack(op, n))
        except OSError:
            raise self._death() from None

    def _reply(self, timeout: float | None, timeout_error: str | None = "") -> tuple[int, int, bytes]:
        """The next reply; after ``timeout`` s a JailError (``timeout_error`` None: TimeoutError)."""
        try:
            head = _read_exact(self._rep, _REPLY.size, timeout)
        except JailError:
            if timeout_error is None:
                raise TimeoutError from None
            raise
        if len(head) < _REPLY.size:
            raise self._death()
        kind, count, length = _REPLY.unpack(head)
        if kind not in (_HELLO, _OK, _ERROR) or count > MAX_COMPONENTS or length > MAX_MESSAGE_BYTES:
            raise JailError("runtime", f"the reward process sent a malformed reply (kind {kind}, "
                                       f"{count} components, {length} bytes)")
        payload = _read_exact(self._rep, length, 60.0) if length else b""
        if len(payload) < length:
            raise self._death()
        return kind, count, payload

    def _death(self) -> JailError:
        """The jail went away: say how (its parent exits with 128 + the signal that killed it)."""
        status = None
        if self._pid is not None:
            try:
                for _ in range(200):
                    pid, status = os.waitpid(self._pid, os.WNOHANG)
                    if pid:
                        break
                    time.sleep(0.01)
                else:
                    status = None
                if status is not None:
                    self._pid = None
            except ChildProcessError:
                status = None
        code = os.waitstatus_to_exitcode(status) if status is not None else None
        if code is not None and code > 128:
            sig = code - 128
            name = signal.Signals(sig).name if sig in signal.Signals.__members__.values() else str(sig)
            reasons: dict[int, str] = {signal.SIGXCPU: "it exceeded the CPU-time limit",
                                       signal.SIGXFSZ: "it exceeded the file-size limit",
                                       signal.SIGSYS: "it made a system call of another architecture",
                                       signal.SIGKILL: "its CPU-time hard limit, the system's out-of-memory killer, "
                                                       "or its worker's end",
                                       signal.SIGSEGV: "it crashed (segmentation fault; out of memory or stack)"}
            why = reasons.get(sig, "")
            return JailError("runtime", f"the reward process was killed by {name}" + (f": {why}" if why else ""))
        return JailError("runtime", f"the reward process exited unexpectedly (code {code})")


_WARMED: list[bool] = []
_WARM_UP_REWARD = """
import math
import torch
import torch.nn.functional as F


def compute_reward(s):
    v = s.qvel
    x = torch.cat([s.qpos, v], dim=-1)
    a = torch.stack([x.sum(-1), x.mean(-1), x.amax(-1), x.amin(-1), x.std(-1), x.norm(dim=-1)], dim=-1)
    b = torch.linalg.norm(x, dim=-1) + torch.linalg.vector_norm(v, dim=-1) + torch.einsum("ni,ni->n", x, x)
    c = torch.exp(-x.abs()).prod(-1) + torch.tanh(x).sum(-1) + torch.sigmoid(x).sum(-1) + F.relu(x).sum(-1)
    d = torch.where(x > 0, torch.sqrt(x.abs() + 1e-6), torch.log1p(x.abs())).sum(-1) + F.softplus(x).sum(-1)
    e = torch.clamp(x, -1.0, 1.0).pow(2).sum(-1) + torch.atan2(v, v + 1.0).sum(-1) + (x @ x.T).diagonal()
    f = torch.cos(x).sum(-1) * math.pi + torch.sin(x).sum(-1) + torch.zeros_like(b) + torch.ones(x.shape[0])
    g = torch.max(x, dim=-1).values + torch.min(x, dim=-1).values + torch.argmax(x, dim=-1).float()
    h = torch.full_like(b, 0.5) + torch.arange(x.shape[0]).float() + torch.isfinite(x).all(-1).float()
    total = a.sum(-1) + b + c + d + e + f + g + h + torch.nan_to_num(x).sum(-1) + torch.sign(x).sum(-1)
    return total, {"all": total, "a": a[:, 0]}
"""


def _warm_up(shared: SharedState) -> None:
    """Once per process, in trusted code before the fork: run a reward that uses the common torch
    operations, so torch's lazy initialisation (CPU feature detection, lazily imported modules) and
    traceback formatting are done while files can still be read. The jail cannot read them later."""
    if _WARMED:
        return
    from rewardgen.contract.reward import check_output, load_reward

    with torch.no_grad():
        check_output(load_reward(_WARM_UP_REWARD, "<warm-up>")(shared.state(shared.capacity)), shared.capacity)
    try:
        raise ValueError("warm-up")
    except ValueError as exc:
        failure_record(exc, "runtime")
    component_name_error("warm-up \udcff")  # loads the codecs the messages use
    _valid_text("warm-up \udcff")
    _WARMED.append(True)


def _error_from(payload: bytes) -> JailError:
    record = _json_object(payload)
    stage = record.get("stage")
    stage = stage if stage in STAGES else "runtime"
    error = _valid_text(record.get("error") or "the reward failed")[:4000]
    return JailError(stage, error, _valid_text(record.get("traceback") or "")[:20000])


def _valid_text(value: Any) -> str:
    """``value`` as text that encodes as UTF-8: lone surrogates become visible ``\\udcff`` escapes (a
    reward's exception message is its own to choose)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _names_from(payload: bytes) -> tuple[str, ...]:
    names = json.loads(payload.decode("utf-8")) if payload else []
    if not isinstance(names, list) or len(names) > MAX_COMPONENTS:
        raise JailError("contract", f"a reward may return at most {MAX_COMPONENTS} components")
    for name in names:
        if (why := component_name_error(name)) is not None:
            raise JailError("contract", why)
    if len(set(names)) != len(names):
        raise JailError("contract", "component names repeat")
    return tuple(names)


def _json_object(payload: bytes) -> dict:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise JailError("runtime", "the reward process sent a message that is not JSON text") from None
    if not isinstance(value, dict):
        raise JailError("runtime", "the reward process sent a message that is not a JSON object")
    return value


def _read_exact(fd: int, n: int, timeout: float | None) -> bytes:
    """Up to ``n`` bytes from ``fd``: fewer only at end of file. TimeoutError after ``timeout`` s."""
    chunks, got = [], 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise JailError("runtime", f"the reward process did not answer within {timeout:.0f} s")
        chunk = os.read(fd, n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------
# the child side (runs only in the forked processes)
# ----------------------------------------------------------------------------------------------

def _intermediate(parent: int, source: str, options: JailOptions, filename: str, shared: SharedState,
                  req_r: int, rep_w: int, sync_w: int, go_r: int, counts: mmap.mmap) -> None:  # pragma: no cover
    """Make the namespaces, fork the jail into them, wait for it and exit as it did."""
    _libc("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(70)
    # the channel at fixed numbers, every other inherited descriptor closed (the worker's result
    # pipe among them)
    os.dup2(req_r, _REQ_FD)
    os.dup2(rep_w, _REP_FD)
    close_fds_except({1, 2, _REQ_FD, _REP_FD, sync_w, go_r})
    made = options.namespaces and _LIBC is not None and _LIBC.unshare(_NAMESPACES) == 0
    os.write(sync_w, b"N" if made else b"-")
    if os.read(go_r, 1) != b"G":
        os._exit(70)
    os.close(go_r)
    if made:  # become the namespace's root, i.e. nobody outside: mapping alone changes no credential
        for call in (lambda: os.setgroups([]), lambda: os.setresgid(0, 0, 0), lambda: os.setresuid(0, 0, 0)):
            try:
                call()
            except OSError:
                pass
    handoff, handoff_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        os.close(sync_w)
        counts.close()  # the counters are the supervisor's: the jail keeps no mapping of them
        mine = os.dup(handoff_child.fileno())  # apart from both ends' numbers, which may be 5 themselves
        handoff.close()
        handoff_child.close()
        if mine != _HANDOFF_FD:
            os.dup2(mine, _HANDOFF_FD)
            os.close(mine)
        code = 70
        try:
            _jail_main(source, options, filename, shared, made)
            code = 0
        except BaseException:  # the trusted side reads EOF and reports the death
            traceback.print_exc()
        finally:
            os._exit(code)
    os.write(sync_w, struct.pack("<q", pid))
    os.close(sync_w)
    for fd in (_REQ_FD, _REP_FD):
        os.close(fd)
    handoff_child.close()
    status = _supervise(pid, handoff, counts)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70)


def _supervise(pid: int, handoff: socket.socket, counts: mmap.mmap) -> int:  # pragma: no cover
    """In the namespace parent: take the jail's seccomp listener (if it sends one) and answer every
    refused call (counted into ``counts``) until the jail exits; its wait status."""
    from rewardgen.sandbox.seccomp import Supervisor

    listener = None
    try:
        _, fds, _, _ = socket.recv_fds(handoff, 16, 1)
        listener = fds[0] if fds else None
    except OSError:
        pass
    handoff.close()
    poller = select.poll()
    if listener is not None:
        poller.register(listener, select.POLLIN)
        supervisor = Supervisor(listener, counts)
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG if listener is not None else 0)
        except InterruptedError:
            continue
        if done:
            return status
        for _, events in poller.poll(100):
            if events & select.POLLIN:
                supervisor.serve_one()
            elif listener is not None and events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                poller.unregister(listener)
                os.close(listener)
                listener = None


def _jail_main(source: str, options: JailOptions, filename: str, shared: SharedState,
               namespaced: bool) -> None:  # pragma: no cover
    """Lock this process, then load and serve the candidate. Never returns normally before STOP."""
    from rewardgen.contract.reward import ContractError, check_output
    from rewardgen.sandbox import seccomp
    from rewardgen.sandbox.guard import Guard, load_candidate

    _libc("prctl", _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    layers: list[str] = []
    warnings: list[str] = []
    os.setsid()  # its own session and process group: kill(0, ...) names nothing trusted
    if namespaced:
        why = _empty_root()
        if why is None:
            layers.append("empty-root")
        else:
            warnings.append(f"the reward process still sees the host's files by path ({why})")
    # PID 1 of a namespace ignores signals it has no handler for, the CPU limit's SIGXCPU too: say so
    signal.signal(signal.SIGXCPU, lambda *_: os._exit(128 + signal.SIGXCPU))
    _set_limits(options)
    layers.append("rlimits")
    _drop_capabilities()
    torch.set_num_threads(1)
    _quiet_source_lookups(source, filename)
    handoff = socket.socket(fileno=_HANDOFF_FD)
    listener = None
    if options.seccomp:
        try:
            listener = seccomp.load_allowlist(read_fds=(_REQ_FD,), write_fds=(1, 2, _REP_FD), handoff_fd=_HANDOFF_FD)
        except seccomp.SeccompUnavailable as exc:
            warnings.append(f"seccomp filter not active: {exc}")
        if listener is None and not any(w.startswith("seccomp filter not active") for w in warnings):
            warnings.append("refused system calls are not counted here (seccomp user notification unavailable)")
    else:
        warnings.append("seccomp disabled by the job (tests only)")
    try:  # the listener goes to the supervisor (sendmsg is allowed on this socket alone), then away
        handoff.sendmsg([b"L"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", listener))]
                        if listener is not None else [])
    except OSError:
        pass
    handoff.close()
    if listener is not None:
        os.close(listener)
    guard = None
    if options.audit:
        guard = Guard(read_roots=[])
        guard.install()
        layers.append("audit-hook")
    else:
        warnings.append("audit hook disabled by the job (tests only)")
    layers.append("restricted-builtins")
    _reply(_HELLO, 0, json.dumps({"layers": layers, "warnings": warnings}).encode())
    try:
        fn = load_candidate(source, guard, filename)
    except BaseException as exc:
        _reply_error(failure_record(exc, "load", filename))
        fn = None
    else:
        _reply(_OK, 0, b"")
    sent: tuple[str, ...] | None = None
    while True:
        head = _read_exact(_REQ_FD, _REQUEST.size, None)
        if len(head) < _REQUEST.size:
            return
        op, n = _REQUEST.unpack(head)
        if op == _OP_STOP:
            return
        if fn is None:
            _reply_error({"stage": "load", "error": "the reward did not load", "traceback": ""})
            continue
        try:
            if op == _OP_VERIFY:
                fn.verify()
                armed = guard is None or guard.armed
                _reply(_OK, 0, json.dumps({"guard": "armed" if armed else "off"}).encode())
                continue
            with torch.no_grad():
                total, components = check_output(fn(shared.state(n)), n, finite=False)
            names = tuple(components)
            if names != sent:  # (checked again, for security, by the trusted side)
                if len(names) > MAX_COMPONENTS:
                    raise ContractError(f"a reward may return at most {MAX_COMPONENTS} components, got {len(names)}")
                for name in names:
                    if (why := component_name_error(name)) is not None:
                        raise ContractError(why)
            shared.outputs[0, :n] = total.numpy()
            for k, value in enumerate(components.values()):
                shared.outputs[1 + k, :n] = value.numpy()
            payload = b"" if names == sent else json.dumps(list(names)).encode()
            sent = names
            _reply(_OK, len(names), payload)
        except BaseException as exc:  # every failure is reported, the loop goes on
            _reply_error(failure_record(exc, "runtime", filename))
        finally:
            try:
                sys.stdout.flush()
            except (OSError, ValueError):
                pass


def _quiet_source_lookups(source: str, filename: str) -> None:  # pragma: no cover
    """Before the filter: tracebacks and warnings in the jail would look source lines up on disk (a
    ``stat`` and an ``open`` per frame, refused and counted as if the reward had tried them). The
    reward's own lines are put in ``linecache``; a warning is shown without its source line."""
    import linecache
    import warnings as warnings_module

    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    warnings_module.formatwarning = lambda message, category, filename, lineno, line=None: \
        f"{filename}:{lineno}: {category.__name__}: {message}\n"


def _reply(kind: int, count: int, payload: bytes) -> None:  # pragma: no cover
    data = _REPLY.pack(kind, count, len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(_REP_FD, view):]


def _reply_error(record: dict) -> None:  # pragma: no cover
    record = {k: str(record.get(k, ""))[:limit] for k, limit in (("stage", 20), ("error", 4000),
                                                                    ("traceback", 20000))}
    _reply(_ERROR, 0, json.dumps(record).encode("utf-8", "backslashreplace")[:MAX_MESSAGE_BYTES])


def _libc(name: str, *args: Any) -> int:
    if _LIBC is None:
        return -1
    return int(getattr(_LIBC, name)(*args))


def _empty_root() -> str | None:  # pragma: no cover
    """Pivot into an empty read-only tmpfs and detach the host's tree; None on success, else why not."""
    libc = _LIBC
    if libc is None:
        return "no C library"
    c = ctypes.c_char_p
    steps = (
        ("make mounts private", lambda: libc.mount(None, c(b"/"), None, _MS_REC | _MS_PRIVATE, None)),
        ("mount tmpfs", lambda: libc.mount(c(b"none"), c(b"/tmp"), c(b"tmpfs"),
                                           _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, c(b"size=64k,mode=0755"))),
    )
    for what, call in steps:
        if call() != 0:
            return f"{what}: {os.strerror(ctypes.get_errno())}"
    try:
        os.mkdir("/tmp/old", 0o000)
        os.chdir("/tmp")
    except OSError as exc:
        return f"prepare the new root: {exc.strerror}"
    if libc.syscall(_PIVOT_ROOT, c(b"."), c(b"old")) != 0:
        return f"pivot_root: {os.strerror(ctypes.get_errno())}"
    os.chdir("/")
    if libc.umount2(c(b"/old"), _MNT_DETACH) != 0:
        return f"detach the old root: {os.strerror(ctypes.get_errno())}"
    os.rmdir("/old")
    if libc.mount(None, c(b"/"), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                  None) != 0:
        return f"make the new root read-only: {os.strerror(ctypes.get_errno())}"
    return None


def _set_limits(options: JailOptions) -> None:  # pragma: no cover
    def cap(limit: int, value: int, grace: int = 0) -> None:
        """Lower ``limit`` to ``value`` (never raise it); the hard limit ``grace`` above the soft one."""
        try:
            hard = resource.getrlimit(limit)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            new_hard = value + grace if hard == resource.RLIM_INFINITY else min(value + grace, hard)
            resource.setrlimit(limit, (value, new_hard))
        except (ValueError, OSError):
            pass

    if options.memory_bytes:
        cap(resource.RLIMIT_AS, int(options.memory_bytes))
    if options.cpu_seconds:  # SIGXCPU at the soft limit (a clear verdict), SIGKILL a second later
        cap(resource.RLIMIT_CPU, int(options.cpu_seconds), grace=1)
    for limit in (resource.RLIMIT_FSIZE, resource.RLIMIT_CORE, resource.RLIMIT_NPROC, resource.RLIMIT_MEMLOCK,
                  resource.RLIMIT_MSGQUEUE, resource.RLIMIT_RTPRIO, resource.RLIMIT_NICE):
        cap(limit, 0)
    cap(resource.RLIMIT_NOFILE, 8)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:  # pragma: no cover
    """Empty the bounding set, then every capability set; no new privileges from here on."""
    if _LIBC is None:
        return
    for cap in range(64):
        _LIBC.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _LIBC.capset(ctypes.byref(header), data)
    _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
