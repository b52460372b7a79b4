"""A jailed reward for code outside rewardgen: the sandboxed form of the file ``rewardgen export`` writes.

An exported reward used with ``RewardWrapper`` runs in the user's own process, with their files,
network and keys. Its sandboxed form (``SandboxedRewardWrapper``, ``make_vec_env(sandboxed=True)``)
calls ``JailedReward`` instead, which gives the reward the same isolation it had in rewardgen:

    user's process                 host (trusted, forked from rewardgen's zygote     jail
    JailedReward  -- pipes -->     or started fresh: scrubbed environment, own  --> (rewardgen.sandbox.jail:
    fill(i, data, ...)             session, network namespace, rlimits, output       namespaces, empty root,
    __call__(n) -> arrays          captured and bounded)                              seccomp, rlimits)

The host is ``rewardgen.procs.standalone`` started and held like a training worker
(``rewardgen.procs.launch`` with ``rewardgen.procs.process.worker_confinement``), so the jail is
forked from a process that holds nothing of the user's (no environment, no open file, no memory of
theirs). Per call the client writes the batch's State
fields (float32, ``field_shapes`` order) to the host's stdin; the host copies them into the jail's
shared memory, and answers on its result pipe with the total and the components, which the client
checks again (sizes, names, finite values). One call carries a whole batch, so a vectorised env pays
the round trip once per step, not once per world.

Wire format: the job (stdin, first): a ``Job`` frame (``rewardgen.procs.frames``) holding
``{"source", "schema", "capacity"}``. Then, for speed, a protocol of its own: requests ``<BI`` (op 1 =
call, worlds) + the fields' bytes; replies ``<BHI`` (kind, components, payload bytes) + payload
(JSON: the hello's layers, the component names when they change, or an error) + ``(1 + components)
* worlds`` float32 values (calls only).
"""

from __future__ import annotations

import json
import os
import select
import struct
import sys
import tempfile
from dataclasses import asdict, fields
from typing import Any

import numpy as np

from rewardgen.contract.schema import Schema, derive_schema
from rewardgen.contract.state import StateBuffers, field_shapes
from rewardgen.procs.frames import read_job
from rewardgen.procs.launch import Child
from rewardgen.sandbox.confined import Closing

_REQUEST = struct.Struct("<BI")
_REPLY = struct.Struct("<BHI")
_CALL = 1
_HELLO, _OK, _ERROR = 1, 2, 3
_MAX_JOB_BYTES = 4 * 1024 * 1024
_MAX_PAYLOAD = 256 * 1024
_MAX_COMPONENTS = 64
#: seconds the client waits for one answer (the host's jail has its own, shorter, per-call deadline)
CALL_TIMEOUT = 120.0
START_TIMEOUT = 300.0


class JailedRewardError(RuntimeError):
    """The jailed reward failed (its error, as the jail reported it) or the host went away."""


class JailedReward(Closing):
    """``source``'s ``compute_reward`` in rewardgen's jail, for a model's worlds filled here.

    :param source: the reward's code (checked by rewardgen's static validator first).
    :param model: the MjModel of the env (the State's names and layout come from it).
    :param frame_skip: physics steps per env step (the State's ``dt``).
    :param capacity: the most worlds one call evaluates.
    :param validate: run the static check first (False only in the tests of the jail itself).
    Fill world ``i`` with ``fill(i, data, action, step)`` (derived quantities current), then
    ``total, components = reward(n)``: float32 arrays of the first ``n`` worlds. ``close()`` stops it.
    """

    def __init__(self, source: str, model: Any, frame_skip: int, capacity: int = 1, validate: bool = True):
        from rewardgen.procs.frames import FrameWriter, Job
        from rewardgen.procs.launch import launch
        from rewardgen.procs.process import WorkerLimits, worker_confinement
        from rewardgen.sandbox.validate import ValidationError, ensure_valid

        try:
            if validate:  # off only in the tests that prove the jail contains what the check would refuse
                ensure_valid(source)
        except ValidationError as exc:
            raise JailedRewardError(f"rewardgen's static check refuses this reward: {exc}") from None
        self.schema = derive_schema(model, model_name="exported", frame_skip=int(frame_skip))
        self.capacity = int(capacity)
        self.buffers = StateBuffers(self.schema, model, self.capacity)
        self._fields = list(field_shapes(self.schema))
        self._names: tuple[str, ...] = ()
        self._scratch = tempfile.TemporaryDirectory(prefix="rewardgen-jailed-")
        limits = WorkerLimits(wall_seconds=START_TIMEOUT, memory_bytes=4 * 1024**3, cpu_seconds=2**31 - 1)
        self._proc: Child | None = launch("rewardgen.procs.standalone", worker_confinement(limits),
                                          home=self._scratch.name, output_bytes=64 * 1024, what="jail host")
        self._stdin, self._result, self.started = self._proc.stdin, self._proc.results, self._proc.started
        self.log = self._proc.log
        schema = {k: v for k, v in asdict(self.schema).items() if k != "description"}
        try:
            FrameWriter(self._stdin.fileno()).send(Job({"source": source, "schema": schema, "capacity": self.capacity}))
        except OSError:
            raise JailedRewardError(f"the jail's host went away: {self._tail()}") from None
        kind, _, payload = self._read_reply(START_TIMEOUT)
        hello = _json(payload)
        if kind == _ERROR:
            self.close()
            raise JailedRewardError(f"the reward could not be loaded in the jail: {hello.get('error', '?')}")
        self.layers = [str(x) for x in hello.get("layers", [])][:40]
        self.warnings = [str(x) for x in hello.get("warnings", [])][:40]

    def fill(self, i: int, data: Any, action: Any, step: int) -> None:
        """Copy world ``i``'s state from ``data`` (an MjData whose derived quantities are current)."""
        self.buffers.fill(i, data, action, step)

    def __call__(self, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The reward of the first ``n`` filled worlds: ``(total, {name: values})``, float32 (n,)."""
        if not 0 < n <= self.capacity:
            raise ValueError(f"{n} worlds do not fit a JailedReward made for {self.capacity}")
        b = self.buffers
        self._write(_REQUEST.pack(_CALL, n) + b"".join(getattr(b, f)[:n].tobytes() for f in self._fields))
        kind, count, payload = self._read_reply(CALL_TIMEOUT)
        if kind == _ERROR:
            raise JailedRewardError(f"the reward failed in the jail: {_json(payload).get('error', '?')}")
        if kind != _OK or count > _MAX_COMPONENTS:
            raise JailedRewardError("the jail's host sent a malformed answer")
        if payload:
            names = _json(payload).get("names")
            from rewardgen.sandbox.jail import component_name_error

            if not isinstance(names, list) or len(names) != count or len(set(names)) != count \
                    or any(component_name_error(x) for x in names):
                raise JailedRewardError("the jail's host sent bad component names")
            self._names = tuple(names)
        if count != len(self._names):
            raise JailedRewardError("the jail's host sent a count that does not match its names")
        values = np.frombuffer(self._read_exact((1 + count) * n * 4, CALL_TIMEOUT), np.float32).reshape(1 + count, n)
        if not np.isfinite(values).all():
            raise JailedRewardError("the reward returned NaN or inf")
        return values[0].copy(), {name: values[1 + k].copy() for k, name in enumerate(self._names)}

    def close(self) -> None:
        """Stop the host (its jail dies with it) and wait for it."""
        if self._proc is None:
            return
        try:
            self._stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(5)
        except Exception:  # it is killed below
            pass
        self._proc.kill_group()
        self._proc.finish()
        self._proc = None
        self._scratch.cleanup()

    # ----- the pipes
    def _write(self, data: bytes) -> None:
        try:
            self._stdin.write(data)
            self._stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise JailedRewardError(f"the jail's host went away: {self._tail()}") from None

    def _read_exact(self, n: int, timeout: float) -> bytes:
        chunks, got = [], 0
        while got < n:
            if not select.select([self._result], [], [], timeout)[0]:
                raise JailedRewardError(f"the jail's host did not answer within {timeout:.0f} s")
            chunk = os.read(self._result, n - got)
            if not chunk:
                raise JailedRewardError(f"the jail's host went away: {self._tail()}")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _read_reply(self, timeout: float) -> tuple[int, int, bytes]:
        kind, count, length = _REPLY.unpack(self._read_exact(_REPLY.size, timeout))
        if kind not in (_HELLO, _OK, _ERROR) or length > _MAX_PAYLOAD:
            raise JailedRewardError("the jail's host sent a malformed answer")
        return kind, count, self._read_exact(length, timeout) if length else b""

    def _tail(self) -> str:
        lines = self.log.text().strip().splitlines()
        return lines[-1][:300] if lines else "no output"


def _json(payload: bytes) -> dict:
    try:
        value = json.loads(payload.decode("utf-8")) if payload else {}
    except (ValueError, UnicodeDecodeError):
        raise JailedRewardError("the jail's host sent a message that is not JSON") from None
    if not isinstance(value, dict):
        raise JailedRewardError("the jail's host sent a message that is not a JSON object")
    return value


# ----------------------------------------------------------------------------------------------
# the host (trusted rewardgen code in its own confined process)
# ----------------------------------------------------------------------------------------------

def _schema(raw: Any) -> Schema:
    """A Schema from the job's JSON, each field of the type the dataclass holds (tuples, ints, text)."""
    if not isinstance(raw, dict):
        raise ValueError("schema is not an object")
    values: dict[str, Any] = {}
    for f in fields(Schema):
        if f.name == "description":
            continue
        v = raw[f.name]
        values[f.name] = tuple(v) if isinstance(v, list) else v
    schema = Schema(**values)
    if not all(isinstance(x, int) and 0 <= x < 100_000 for x in (schema.nq, schema.nv, schema.nu)):
        raise ValueError("schema sizes out of range")
    return schema


def serve(stdin, out_fd: int) -> None:  # pragma: no cover - runs in the host process
    from rewardgen.sandbox.jail import Jail, JailError

    def reply(kind: int, count: int, payload: bytes, values: bytes = b"") -> None:
        data = memoryview(_REPLY.pack(kind, count, len(payload)) + payload + values)
        while data:
            data = data[os.write(out_fd, data):]

    def read(n: int) -> bytes:
        data = stdin.read(n)
        return data if len(data) == n else b""

    job = read_job(stdin, _MAX_JOB_BYTES)
    schema, capacity = _schema(job["schema"]), int(job["capacity"])
    try:
        jail = Jail(str(job["source"]), schema, capacity)
    except JailError as exc:
        reply(_ERROR, 0, json.dumps({"error": exc.error}).encode())
        return
    if jail.load_error is not None:
        reply(_ERROR, 0, json.dumps({"error": jail.load_error.error}).encode())
        jail.close()
        return
    reply(_HELLO, 0, json.dumps({"layers": jail.layers, "warnings": jail.warnings}).encode())
    shapes = field_shapes(schema)
    sizes = {name: int(np.prod(shape, dtype=np.int64)) for name, shape in shapes.items()}
    sent: tuple[str, ...] = ()
    try:
        while True:
            head = read(_REQUEST.size)
            if not head:
                return
            op, n = _REQUEST.unpack(head)
            if op != _CALL or not 0 < n <= capacity:
                return
            raw = read(4 * n * sum(sizes.values()))
            if not raw:
                return
            offset = 0
            for name, shape in shapes.items():
                count = n * sizes[name]
                jail.shared.inputs[name][:n] = np.frombuffer(raw, np.float32, count, offset).reshape((n, *shape))
                offset += 4 * count
            try:
                jail.submit_shared(n)
                total, components = jail.collect()
            except JailError as exc:
                reply(_ERROR, 0, json.dumps({"error": exc.error, "stage": exc.stage}).encode())
                if jail._pid is None:  # it was stopped (a deadline): nothing more to serve
                    return
                continue
            names = tuple(components)
            payload = json.dumps({"names": list(names)}).encode() if names != sent else b""
            sent = names
            values = np.stack([total.numpy(), *(v.numpy() for v in components.values())]).astype(np.float32)
            reply(_OK, len(names), payload, values.tobytes())
    finally:
        jail.close()


def main() -> None:  # pragma: no cover
    import argparse

    parser = argparse.ArgumentParser(prog="rewardgen.procs.standalone")
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args()
    os.set_inheritable(args.result_fd, False)
    serve(sys.stdin.buffer, args.result_fd)


if __name__ == "__main__":  # pragma: no cover
    main()
