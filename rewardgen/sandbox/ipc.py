"""Length-prefixed frames on a pipe: how results leave a worker as data, never as objects.

A frame is one kind byte (``J`` JSON, ``B`` raw bytes), an 8-byte big-endian length, the payload.
The reader bounds every frame so a misbehaving worker cannot make the orchestrator allocate
without limit.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

_HEADER = struct.Struct(">cQ")
MAX_JSON = 64 * 1024 * 1024
MAX_BYTES = 256 * 1024 * 1024


class FrameError(ValueError):
    """The peer sent something that is not a well-formed frame."""


class FrameWriter:
    def __init__(self, fd: int):
        self._fd = fd

    def _write(self, kind: bytes, payload: bytes) -> None:
        view = memoryview(_HEADER.pack(kind, len(payload)) + payload)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def json(self, obj: Any) -> None:
        self._write(b"J", json.dumps(obj, allow_nan=True).encode())

    def bytes(self, payload: bytes) -> None:
        self._write(b"B", payload)


def read_frames(stream: BinaryIO) -> Iterator[tuple[str, Any]]:
    """Yield ``("json", obj)`` / ``("bytes", payload)`` until EOF; FrameError on garbage."""
    while True:
        header = stream.read(_HEADER.size)
        if not header:
            return
        if len(header) < _HEADER.size:
            raise FrameError("truncated frame header")
        kind, length = _HEADER.unpack(header)
        if kind not in (b"J", b"B") or length > (MAX_JSON if kind == b"J" else MAX_BYTES):
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
# what a worker may send: every frame is checked against this before the orchestrator uses it
# ----------------------------------------------------------------------------------------------

MAX_POLICY_BYTES = 64 * 1024 * 1024
MAX_RESUME_BYTES = 256 * 1024 * 1024
MAX_WORKER_BYTES = MAX_POLICY_BYTES + MAX_RESUME_BYTES + MAX_JSON  # everything one worker may send in all
ERROR_STAGES = frozenset({"static", "load", "runtime", "contract", "sandbox", "job"})
_NAME_CHARS = 100


class SchemaError(ValueError):
    """A well-formed frame whose content is not what a worker may send; the message says what."""


def _number(value: Any, what: str, *, integer: bool = False, low: float = 0.0) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise SchemaError(f"{what} is not {'an integer' if integer else 'a number'}")
    if integer and not (low <= value <= 2**53):
        raise SchemaError(f"{what} is out of range")
    if not integer and value == value and value != float("inf") and value < low:  # NaN/inf: only where allowed
        raise SchemaError(f"{what} is negative")
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


def _points(value: Any, what: str, keys: tuple[str, ...]) -> None:
    if not isinstance(value, list) or len(value) > 1000:
        raise SchemaError(f"{what} is not a list of at most 1000 points")
    for point in value:
        if not isinstance(point, dict):
            raise SchemaError(f"{what} holds a point that is not an object")
        for key in keys:
            if key in point:
                _number(point[key], f"{what}.{key}", low=-float("inf"))


def check_stats(stats: Any) -> None:
    """Training statistics (``TrainingStats.summary``): component names and the numbers reflection reads."""
    if not isinstance(stats, dict):
        raise SchemaError("stats is not an object")
    components = stats.get("components", {})
    if not isinstance(components, dict) or len(components) > 64:
        raise SchemaError("stats.components is not an object of at most 64 components")
    for name, points in components.items():
        _points(points, f"component {_name(name, 'a component name')!r}", ("step", "mean", "min", "max"))
    _points(stats.get("total_reward", []), "stats.total_reward", ("step", "mean", "min", "max"))
    _points(stats.get("episodes", []), "stats.episodes", ("step", "episodes", "length", "return", "fitness"))
    if "num_episodes" in stats:
        _number(stats["num_episodes"], "stats.num_episodes", integer=True)
    corr = stats.get("reward_fitness_correlation")
    if corr is not None:
        _number(corr, "stats.reward_fitness_correlation", low=-float("inf"))


def _check_debug_result(value: dict) -> None:
    names = value.get("components")
    if not isinstance(names, list) or len(names) > 64:
        raise SchemaError("result.components is not a list of at most 64 names")
    for name in names:
        _name(name, "a component name")
    episodes = value.get("episodes")
    if not isinstance(episodes, list) or len(episodes) > 10_000:
        raise SchemaError("result.episodes is not a list")
    for ep in episodes:
        if not isinstance(ep, dict):
            raise SchemaError("result.episodes holds an entry that is not an object")
        for key in ("episode", "seed", "length"):
            _number(ep.get(key), f"result.episodes.{key}", integer=True)
        _number(ep.get("fitness"), "result.episodes.fitness", low=-float("inf"))


def check_frame(value: Any, debug: bool = False) -> dict:
    """One JSON frame from a worker, checked: its type is known and every field downstream code
    reads has the right type and range. Returns it; SchemaError names the first problem.
    ``debug``: the frame comes from ``rewardgen.inspect.debug_worker`` (its result has another shape)."""
    if not isinstance(value, dict):
        raise SchemaError("a frame is not a JSON object")
    kind = value.get("type")
    if kind == "progress":
        _number(value.get("steps"), "progress.steps", integer=True)
        _number(value.get("total"), "progress.total", integer=True)
    elif kind == "isolation":
        for key in ("layers", "warnings"):
            items = value.get(key, [])
            if not isinstance(items, list) or len(items) > 40:
                raise SchemaError(f"isolation.{key} is not a list")
            for item in items:
                _text(item, f"isolation.{key} entry", 400)
    elif kind == "check":  # a train job's smoke check passed (job key "check")
        _number(value.get("env_steps"), "check.env_steps", integer=True)
        check_stats(value.get("stats", {}))
    elif kind == "jail":  # what the worker saw of its jail (refused system calls, guard switched off)
        _number(value.get("refused"), "jail.refused", integer=True)
        _number(value.get("calls"), "jail.calls", integer=True)
        if value.get("deadline") is not None:
            _number(value["deadline"], "jail.deadline")
        if not isinstance(value.get("guard_off"), bool):
            raise SchemaError("jail.guard_off is not true or false")
        calls = value.get("syscalls")
        if not isinstance(calls, dict) or len(calls) > 16:
            raise SchemaError("jail.syscalls is not an object of at most 16 system calls")
        for name, count in calls.items():
            _name(name, "jail.syscalls name")
            _number(count, f"jail.syscalls.{name}", integer=True)
    elif kind == "resume_state":
        _number(value.get("env_steps"), "resume_state.env_steps", integer=True)
        _number(value.get("bytes"), "resume_state.bytes", integer=True)
    elif kind == "result" and debug:
        _check_debug_result(value)
    elif kind == "result":
        _number(value.get("env_steps"), "result.env_steps", integer=True)
        if "seconds" in value:
            _number(value["seconds"], "result.seconds")
        if "trainer" in value:
            _name(value["trainer"], "result.trainer")
        check_stats(value.get("stats", {}))
        extra = value.get("extra", {})
        if not isinstance(extra, dict):
            raise SchemaError("result.extra is not an object")
        for key in ("slice_env_steps", "resumed_from", "num_envs"):
            if key in extra:
                _number(extra[key], f"result.extra.{key}", integer=True)
        if "env_steps_per_second" in extra:
            _number(extra["env_steps_per_second"], "result.extra.env_steps_per_second")
    elif kind == "error":
        if value.get("stage") not in ERROR_STAGES:
            raise SchemaError(f"error.stage {str(value.get('stage'))[:40]!r} is not a stage")
        _text(value.get("error", ""), "error.error", 4000)
        _text(value.get("traceback", ""), "error.traceback", 20000)
    else:
        raise SchemaError(f"unknown frame type {str(kind)[:40]!r}")
    return value
