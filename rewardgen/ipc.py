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
MAX_BYTES = 512 * 1024 * 1024


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
