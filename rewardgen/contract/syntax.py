"""Parsing Python source into an AST, safely from any thread.

CPython 3.11 keeps the AST constructor's recursion depth in per-interpreter state, not per thread, so
two threads in ``ast.parse`` at once can fail with ``SystemError: AST constructor recursion depth
mismatch`` (python/cpython#106905). Trusted code parses reward sources from executor threads (two
candidates validated at once), so every parse goes through one lock here. Parsing is fast (well under
a millisecond for a reward), so the lock costs nothing measurable.
"""

from __future__ import annotations

import ast
import threading
from typing import Literal, overload

_PARSE_LOCK = threading.Lock()


@overload
def parse(source: str, filename: str = "<unknown>", mode: Literal["exec"] = "exec") -> ast.Module: ...


@overload
def parse(source: str, filename: str = "<unknown>", *, mode: Literal["eval"]) -> ast.Expression: ...


def parse(source: str, filename: str = "<unknown>", mode: str = "exec") -> ast.AST:
    """``ast.parse(source, filename, mode)``, one thread at a time; raises what ``ast.parse`` raises
    (a Module for ``exec``, an Expression for ``eval``)."""
    with _PARSE_LOCK:
        return ast.parse(source, filename=filename, mode=mode)
