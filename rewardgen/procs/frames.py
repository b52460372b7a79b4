"""The one protocol between the orchestrator and the processes it starts: typed frames on pipes.

On the wire a frame is one kind byte (``J`` JSON, ``B`` raw bytes), an 8-byte big-endian length and
the payload. The orchestrator sends a child its job as a ``Job`` frame on the child's standard input;
the child answers with frames on its result pipe (``--result-fd N``). Every JSON frame is one of
the dataclasses below, shared by the sender (``FrameWriter.send``), the checker (``parse``: each
frame class checks every field it holds, sizes, types and ranges, and refuses any other field) and
the receiver (which matches on the class). The reader bounds every frame, and a receiver bounds
what one process may send in all, so a misbehaving worker cannot make the orchestrator allocate
without limit.

What a training worker sends (``WORKER_FRAMES``): ``Isolation`` (its jail's layers, before any
candidate code runs), ``Progress``, ``Check`` (a train job's folded smoke check passed),
``ResumeHeader`` then a bytes frame (the trainer's resume state), ``TrainResult`` then a bytes frame
(the policy), or ``Error``; ``JailReport`` once its jail has closed. A debug worker
(``DEBUG_FRAMES``) sends ``DebugResult`` instead of ``TrainResult``. A trusted child (the evaluator,
the video renderer, the viewer window: ``rewardgen.procs.child``) sends one ``Answer``.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

_HEADER = struct.Struct(">cQ")
MAX_JSON = 64 * 1024 * 1024
MAX_BYTES = 256 * 1024 * 1024
MAX_POLICY_BYTES = 64 * 1024 * 1024
MAX_RESUME_BYTES = 256 * 1024 * 1024
MAX_WORKER_BYTES = MAX_POLICY_BYTES + MAX_RESUME_BYTES + MAX_JSON  # everything one worker may send in all
ERROR_STAGES = frozenset({"static", "load", "runtime", "contract", "sandbox", "job"})
_NAME_CHARS = 100
_ANY = -math.inf  # a lower bound that admits every number, NaN and inf included


class FrameError(ValueError):
    """The peer sent something that is not a well-formed frame."""


class SchemaError(ValueError):
    """A well-formed frame whose content is not what its sender may send; the message says what."""


# ----------------------------------------------------------------------------------------------
# the wire
# ----------------------------------------------------------------------------------------------

class FrameWriter:
    """Writes frames on a descriptor (a child's result pipe, or the orchestrator's end of its stdin)."""

    def __init__(self, fd: int):
        self._fd = fd

    def _write(self, kind: bytes, payload: bytes) -> None:
        view = memoryview(_HEADER.pack(kind, len(payload)) + payload)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def send(self, frame: Frame) -> None:
        """One typed frame."""
        self.json(frame.to_json())

    def json(self, obj: Any) -> None:
        """Any JSON value as a frame (``send`` is how rewardgen's own code writes; a test's lying
        worker writes wrong shapes with this)."""
        self._write(b"J", json.dumps(obj, allow_nan=True).encode())

    def bytes(self, payload: bytes) -> None:
        self._write(b"B", payload)


def read_frames(stream: BinaryIO, max_json: int = MAX_JSON) -> Iterator[tuple[str, Any]]:
    """Yield ``("json", value)`` / ``("bytes", payload)`` until EOF; FrameError on garbage."""
    while True:
        header = stream.read(_HEADER.size)
        if not header:
            return
        if len(header) < _HEADER.size:
            raise FrameError("truncated frame header")
        kind, length = _HEADER.unpack(header)
        if kind not in (b"J", b"B") or length > (max_json if kind == b"J" else MAX_BYTES):
            raise FrameError(f"bad frame (kind {kind!r}, length {length})")
        payload = stream.read(length)
        if len(payload) < length:
            raise FrameError("truncated frame payload")
        if kind == b"J":
            try:
                yield "json", json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                raise FrameError("frame is not valid JSON") from None
        else:
            yield "bytes", payload


# ----------------------------------------------------------------------------------------------
# field checks: each frame class's ``parse`` is made of these
# ----------------------------------------------------------------------------------------------

def _integer(value: Any, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"{what} is not an integer")
    if not low <= value <= 2**53:
        raise SchemaError(f"{what} is out of range")
    return value


def _real(value: Any, what: str, low: float = 0.0) -> float:
    """A number; finite and at least ``low`` unless ``low`` is ``_ANY`` (statistics keep NaN and inf).
    Returned as sent (an integer stays one: the run store keeps what the worker sent)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{what} is not a number")
    if low != _ANY and not (math.isfinite(value) and value >= low):
        raise SchemaError(f"{what} is not a finite number of at least {low:g}")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise SchemaError(f"{what} is not true or false")
    return value


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise SchemaError(f"{what} is not text of at most {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SchemaError(f"{what} is not valid Unicode text") from None
    return value


def _name(value: Any, what: str) -> str:
    name = _text(value, what, _NAME_CHARS)
    if not name or not name.isprintable():
        raise SchemaError(f"{what} is empty or has unprintable characters")
    return name


def _object(value: Any, what: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object with only the ``allowed`` keys, and all the ``required`` ones."""
    if not isinstance(value, dict):
        raise SchemaError(f"{what} is not an object")
    unknown = sorted(str(k)[:40] for k in value if k not in allowed)
    if unknown:
        raise SchemaError(f"{what} has a field it may not have: {unknown[0]!r}")
    missing = [k for k in required if k not in value]
    if missing:
        raise SchemaError(f"{what} lacks {missing[0]!r}")
    return value


def _list(value: Any, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise SchemaError(f"{what} is not a list of at most {limit} entries")
    return value


def _texts(value: Any, what: str, limit: int = 40, chars: int = 400) -> list[str]:
    return [_text(item, f"{what} entry", chars) for item in _list(value, what, limit)]


def _numbers(value: Any, what: str, limit: int = 32) -> dict[str, float]:
    """An object of at most ``limit`` named numbers (losses, timings: NaN and inf kept)."""
    if not isinstance(value, dict) or len(value) > limit:
        raise SchemaError(f"{what} is not an object of at most {limit} numbers")
    return {_name(k, f"{what} name"): _real(v, f"{what}.{k}", _ANY) for k, v in value.items()}


_COMPONENT_POINT = ("step", "mean", "min", "max")
_EPISODE_POINT = ("step", "episodes", "length", "return", "fitness", "ended_early")


def _points(value: Any, what: str, keys: tuple[str, ...]) -> list[dict[str, float]]:
    return [{k: _real(v, f"{what}.{k}", _ANY) for k, v in _object(p, f"{what} point", keys).items()}
            for p in _list(value, what, 1000)]


def parse_stats(value: Any) -> dict[str, Any]:
    """Training statistics (``TrainingStats.summary``): component names and the numbers reflection reads."""
    stats = _object(value, "stats", ("components", "total_reward", "episodes", "num_episodes",
                                     "reward_fitness_correlation"))
    out: dict[str, Any] = {}  # the keys the worker sent, in its order, each checked (the run store keeps them)
    for key, item in stats.items():
        if key == "components":
            if not isinstance(item, dict) or len(item) > 64:
                raise SchemaError("stats.components is not an object of at most 64 components")
            out[key] = {_name(name, "a component name"): _points(points, f"component {name!r}", _COMPONENT_POINT)
                        for name, points in item.items()}
        elif key == "total_reward":
            out[key] = _points(item, "stats.total_reward", _COMPONENT_POINT)
        elif key == "episodes":
            out[key] = _points(item, "stats.episodes", _EPISODE_POINT)
        elif key == "num_episodes":
            out[key] = _integer(item, "stats.num_episodes")
        else:
            out[key] = None if item is None else _real(item, "stats.reward_fitness_correlation", _ANY)
    return out


# ----------------------------------------------------------------------------------------------
# the frames
# ----------------------------------------------------------------------------------------------

class Frame:
    """A JSON frame: ``TYPE`` on the wire, ``to_json`` to send, ``parse`` to receive (checked)."""

    TYPE: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, **self.fields()}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> Frame:
        raise NotImplementedError


@dataclass(frozen=True)
class Job(Frame):
    """Orchestrator -> child: the job (a ``WorkerJob``'s dict, or a trusted child's job)."""

    TYPE: ClassVar[str] = "job"
    job: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        return {"job": self.job}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> Job:
        job = _object(value, "job frame", ("type", "job"), ("job",))["job"]
        if not isinstance(job, dict):
            raise SchemaError("job frame's job is not an object")
        return cls(job)


@dataclass(frozen=True)
class Progress(Frame):
    """Env-steps trained so far, of ``total``."""

    TYPE: ClassVar[str] = "progress"
    steps: int
    total: int

    def fields(self) -> dict[str, Any]:
        return {"steps": self.steps, "total": self.total}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> Progress:
        v = _object(value, "progress", ("type", "steps", "total"), ("steps", "total"))
        return cls(_integer(v["steps"], "progress.steps"), _integer(v["total"], "progress.total"))


@dataclass(frozen=True)
class Isolation(Frame):
    """The layers the worker observed around its jail (before any candidate code ran), and the missing ones."""

    TYPE: ClassVar[str] = "isolation"
    layers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "warnings": list(self.warnings)}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> Isolation:
        v = _object(value, "isolation", ("type", "layers", "warnings"))
        return cls(_texts(v.get("layers", []), "isolation.layers"), _texts(v.get("warnings", []), "isolation.warnings"))


@dataclass(frozen=True)
class Check(Frame):
    """A train job's folded smoke check passed (job key ``check``): its env-steps and statistics."""

    TYPE: ClassVar[str] = "check"
    env_steps: int
    stats: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        return {"stats": self.stats, "env_steps": self.env_steps}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> Check:
        v = _object(value, "check", ("type", "env_steps", "stats"), ("env_steps",))
        return cls(_integer(v["env_steps"], "check.env_steps"), parse_stats(v.get("stats", {})))


@dataclass(frozen=True)
class JailReport(Frame):
    """What the worker saw of its jail once it closed: system calls its seccomp filter refused
    (counted outside the jail), whether the jail said its guard was off, the last call deadline."""

    TYPE: ClassVar[str] = "jail"
    refused: int
    syscalls: dict[str, int]
    guard_off: bool
    calls: int
    deadline: float | None = None

    def fields(self) -> dict[str, Any]:
        return {"refused": self.refused, "syscalls": dict(self.syscalls), "guard_off": self.guard_off,
                "deadline": self.deadline, "calls": self.calls}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> JailReport:
        v = _object(value, "jail", ("type", "refused", "syscalls", "guard_off", "calls", "deadline"),
                    ("refused", "syscalls", "guard_off", "calls"))
        calls = v["syscalls"]
        if not isinstance(calls, dict) or len(calls) > 16:
            raise SchemaError("jail.syscalls is not an object of at most 16 system calls")
        deadline = v.get("deadline")
        return cls(_integer(v["refused"], "jail.refused"),
                   {_name(k, "jail.syscalls name"): _integer(n, f"jail.syscalls.{k}") for k, n in calls.items()},
                   _bool(v["guard_off"], "jail.guard_off"), _integer(v["calls"], "jail.calls"),
                   None if deadline is None else _real(deadline, "jail.deadline"))


@dataclass(frozen=True)
class ResumeHeader(Frame):
    """The next bytes frame is the trainer's resume state, of ``bytes`` bytes, at ``env_steps``."""

    TYPE: ClassVar[str] = "resume_state"
    env_steps: int
    bytes: int

    def fields(self) -> dict[str, Any]:
        return {"env_steps": self.env_steps, "bytes": self.bytes}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> ResumeHeader:
        v = _object(value, "resume_state", ("type", "env_steps", "bytes"), ("env_steps", "bytes"))
        return cls(_integer(v["env_steps"], "resume_state.env_steps"), _integer(v["bytes"], "resume_state.bytes"))


_EXTRA_INTEGERS = ("slice_env_steps", "resumed_from", "num_envs")


def _parse_extra(value: Any) -> dict[str, Any]:
    """A trainer's report (``TrainResult.report``: ``result.extra`` on the wire), in the order sent."""
    v = _object(value, "result.extra", (*_EXTRA_INTEGERS, "env_steps_per_second", "losses", "timing", "env_reward"))
    out: dict[str, Any] = {}
    for key, item in v.items():
        what = f"result.extra.{key}"
        if key in _EXTRA_INTEGERS:
            out[key] = _integer(item, what)
        elif key == "env_steps_per_second":
            out[key] = _real(item, what)
        elif key in ("losses", "timing"):
            out[key] = _numbers(item, what)
        else:
            out[key] = _bool(item, what)
    return out


@dataclass(frozen=True)
class TrainResult(Frame):
    """A training's result (the policy follows as a bytes frame), or a check job's (no ``extra``)."""

    TYPE: ClassVar[str] = "result"
    env_steps: int
    stats: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    trainer: str | None = None
    extra: dict[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stats": self.stats, "env_steps": self.env_steps}
        if self.seconds is not None:
            out["seconds"] = self.seconds
        if self.trainer is not None:
            out["trainer"] = self.trainer
        if self.extra is not None:
            out["extra"] = self.extra
        return out

    @classmethod
    def parse(cls, value: dict[str, Any]) -> TrainResult:
        v = _object(value, "result", ("type", "env_steps", "stats", "seconds", "trainer", "extra"), ("env_steps",))
        return cls(_integer(v["env_steps"], "result.env_steps"), parse_stats(v.get("stats", {})),
                   _real(v["seconds"], "result.seconds") if "seconds" in v else None,
                   _name(v["trainer"], "result.trainer") if "trainer" in v else None,
                   _parse_extra(v["extra"]) if "extra" in v else None)


_DEBUG_EPISODE = ("kind", "episode", "seed", "length", "terminated", "fitness")


@dataclass(frozen=True)
class DebugResult(Frame):
    """A debug worker's result: component names and one entry per episode (the arrays follow as a
    bytes frame)."""

    TYPE: ClassVar[str] = "result"
    components: list[str]
    episodes: list[dict[str, Any]]
    fitness_name: str = ""
    fitness_aggregate: str = ""

    def fields(self) -> dict[str, Any]:
        return {"components": list(self.components), "episodes": list(self.episodes),
                "fitness_name": self.fitness_name, "fitness_aggregate": self.fitness_aggregate}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> DebugResult:
        v = _object(value, "result", ("type", "components", "episodes", "fitness_name", "fitness_aggregate"),
                    ("components", "episodes"))
        names = [_name(n, "a component name") for n in _list(v["components"], "result.components", 64)]
        episodes = []
        for ep in _list(v["episodes"], "result.episodes", 10_000):
            e = _object(ep, "result.episodes entry", _DEBUG_EPISODE, ("episode", "seed", "length", "fitness"))
            checked: dict[str, Any] = {}  # in the order sent
            for key, item in e.items():
                what = f"result.episodes.{key}"
                if key in ("episode", "seed", "length"):
                    checked[key] = _integer(item, what)
                elif key == "fitness":
                    checked[key] = _real(item, what, _ANY)
                elif key == "terminated":
                    checked[key] = _bool(item, what)
                elif item in ("random", "policy"):
                    checked[key] = item
                else:
                    raise SchemaError("result.episodes.kind is not 'random' or 'policy'")
            episodes.append(checked)
        return cls(names, episodes, _text(v.get("fitness_name", ""), "result.fitness_name", 200),
                   _text(v.get("fitness_aggregate", ""), "result.fitness_aggregate", 200))


@dataclass(frozen=True)
class Error(Frame):
    """The job failed at ``stage`` (one a worker may report), with a message and a traceback."""

    TYPE: ClassVar[str] = "error"
    stage: str
    error: str = ""
    traceback: str = ""

    def fields(self) -> dict[str, Any]:
        return {"stage": self.stage, "error": self.error, "traceback": self.traceback}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> Error:
        v = _object(value, "error", ("type", "stage", "error", "traceback"), ("stage",))
        if v["stage"] not in ERROR_STAGES:
            raise SchemaError(f"error.stage {str(v['stage'])[:40]!r} is not a stage")
        return cls(v["stage"], _text(v.get("error", ""), "error.error", 4000),
                   _text(v.get("traceback", ""), "error.traceback", 20000))


@dataclass(frozen=True)
class Answer(Frame):
    """A trusted child's answer (the evaluator's fitness, the renderer's video facts): one object."""

    TYPE: ClassVar[str] = "answer"
    value: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        return {"value": self.value}

    @classmethod
    def parse(cls, value: dict[str, Any]) -> Answer:
        answer = _object(value, "answer", ("type", "value"), ("value",))["value"]
        if not isinstance(answer, dict):
            raise SchemaError("answer.value is not an object")
        return cls(answer)


def _by_type(*classes: type[Frame]) -> dict[str, type[Frame]]:
    return {c.TYPE: c for c in classes}


#: what each kind of process may send, by the ``type`` on the wire
WORKER_FRAMES = _by_type(Progress, Isolation, Check, JailReport, ResumeHeader, TrainResult, Error)
DEBUG_FRAMES = _by_type(Progress, Isolation, Check, JailReport, ResumeHeader, DebugResult, Error)
CHILD_FRAMES = _by_type(Answer)
JOB_FRAMES = _by_type(Job)


def parse_frame(value: Any, accepted: Mapping[str, type[Frame]] = WORKER_FRAMES) -> Frame:
    """One JSON frame, checked: its type is one of ``accepted`` and its every field has the right
    type, size and range. SchemaError names the first problem."""
    if not isinstance(value, dict):
        raise SchemaError("a frame is not a JSON object")
    kind = value.get("type")
    cls = accepted.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SchemaError(f"unknown frame type {str(kind)[:40]!r}")
    return cls.parse(value)


def read_job(stream: BinaryIO, limit: int = MAX_JSON) -> dict[str, Any]:
    """A child's job: the first frame on its standard input, a ``Job`` of at most ``limit`` bytes.
    FrameError or SchemaError when it is not."""
    for kind, value in read_frames(stream, limit):
        if kind != "json":
            raise FrameError("the job is not a JSON frame")
        frame = parse_frame(value, JOB_FRAMES)
        assert isinstance(frame, Job)
        return frame.job
    raise FrameError("no job frame")
