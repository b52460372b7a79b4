"""The one base class of errors caused by the user's input.

Every ``UserError`` carries a message meant for the user (one line: what is wrong and what to do);
the command line prints it as ``rewardgen: error: MESSAGE`` and exits with code 2, in one place
(``rewardgen.cli.main.main``). Errors of reward code, of the sandbox or of an LLM endpoint during a run
are not user errors: they are recorded on the candidate and reported by the run.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user (a file, a setting, a run directory); the message is for the user."""


def flatten(text: object, limit: int = 400) -> str:
    """``text`` as one line: newlines and runs of whitespace become single spaces, cut at ``limit``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


__all__ = ["UserError", "flatten"]
