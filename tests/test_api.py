"""The public Python API: a small documented surface, cheap to import, one exception base."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rewardgen
from rewardgen.errors import UserError


def test_every_public_name_resolves_and_is_documented():
    for name in rewardgen.__all__:
        obj = getattr(rewardgen, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
    assert set(rewardgen.__all__) >= {"evolve", "resume", "train", "check", "debug", "export", "report", "list_tasks",
                                      "get_task", "UserError"}


def test_import_is_cheap():
    """``import rewardgen`` loads neither torch nor gymnasium (the CLI starts its zygote before they load)."""
    code = "import sys, rewardgen; print(sorted(m for m in ('torch', 'gymnasium') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_user_mistakes_raise_the_one_base():
    with pytest.raises(UserError, match="unknown task 'no-such-task'"):
        rewardgen.get_task("no-such-task")
    with pytest.raises(UserError, match="no run directory"):
        rewardgen.report("/nonexistent/run")
    with pytest.raises(UserError):
        rewardgen.evolve("inverted-pendulum-balance", samples=0, runs_dir="/nonexistent/runs")
    with pytest.raises(AttributeError):
        rewardgen.no_such_name  # noqa: B018


def test_tasks_lists_the_suite():
    ids = [t.id for t in rewardgen.list_tasks()]
    assert ids == sorted(ids) and "halfcheetah-run" in ids and len(ids) >= 16
