"""Ctrl-C for a long command: a flag that the library's waits poll, so that an interrupt is never lost.

Python raises ``KeyboardInterrupt`` in whatever the main thread is running when SIGINT arrives. When
that is a ``__del__`` method or a weakref callback (a finalizer of a pipe, a thread pool or a temp
file, run by the garbage collector at any moment), the exception is printed as "ignored" and the run
goes on to the end as if nothing had happened. ``install`` (called by the CLI) makes SIGINT also set a
flag; ``wait`` (used wherever the main thread waits for training or rendering) polls that flag and
raises ``KeyboardInterrupt`` again where it propagates. A program that never calls ``install`` (the
library used from Python) sees exactly Python's default behaviour.
"""

from __future__ import annotations

import signal
import threading
from concurrent import futures
from typing import Any

_INTERRUPTED = threading.Event()
#: seconds between two looks at the flag while waiting
POLL_SECONDS = 0.25


def install() -> None:
    """SIGINT sets the flag, then raises ``KeyboardInterrupt`` as Python's own handler does (main thread)."""
    _INTERRUPTED.clear()

    def on_sigint(signum: int, frame: Any) -> None:
        _INTERRUPTED.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


def interrupted() -> bool:
    """Whether SIGINT arrived since ``install``."""
    return _INTERRUPTED.is_set()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if SIGINT arrived (even if its first ``KeyboardInterrupt`` was swallowed)."""
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


def wait(future: futures.Future) -> Any:
    """``future.result()``, looking at the flag first and every ``POLL_SECONDS`` meanwhile."""
    check()
    while not future.done():
        check()
        futures.wait([future], timeout=POLL_SECONDS)
    return future.result()
