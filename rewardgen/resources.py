"""Where the design card's data lives: the task specs (``environments/``) and prompt templates (``prompts/``).

In the source tree they sit at the top level, beside the package; a built wheel ships them inside it
as ``rewardgen._environments`` and ``rewardgen._prompts`` (``pyproject.toml`` maps the folders). Both
are read through :mod:`importlib.resources`; the source-tree folders are the fallback for a checkout
run without installing, and for editable installs, whose finders do not map data-only folders.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

_SOURCE_TREE = Path(__file__).resolve().parent.parent

PACKAGE_PARENT = str(_SOURCE_TREE)
"""The folder holding the ``rewardgen`` package: put on ``PYTHONPATH`` of the child processes that
run rewardgen modules, so they import this copy of it (a checkout, or site-packages)."""


def _folder(name: str) -> Path:
    try:
        found = importlib.resources.files("rewardgen") / f"_{name}"  # a namespace package's files() is no Path
        path = Path(str(found))
        if path.is_dir():
            return path
    except (ModuleNotFoundError, TypeError, ValueError):
        pass
    return _SOURCE_TREE / name


ENVIRONMENTS_DIR = _folder("environments")
"""The task specs, one ``<task-id>.yaml`` each."""

PROMPTS_DIR = _folder("prompts")
"""The proposer's Jinja2 prompt templates, one ``<name>.j2`` each."""
