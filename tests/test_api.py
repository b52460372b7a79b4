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


def test_dir_lists_the_public_api():
    assert set(rewardgen.__all__) <= set(dir(rewardgen))
    assert {"evolve", "check", "train", "resume"} <= set(dir(rewardgen))


@pytest.mark.slow
def test_evolve_with_progress_true_shows_the_terminal_display(tmp_path):
    """``rewardgen.evolve(..., progress=True)`` shows what ``rewardgen evolve`` shows: the run, the
    estimate, each candidate's verdict, the generation's end (piped: one line per event)."""
    code = ("import sys, rewardgen\n"
            "s = rewardgen.evolve('inverted-pendulum-balance', samples=2, generations=1, steps=2048, "
            "runs_dir=sys.argv[1], progress=True, llm='offline', video=False, eval_episodes=1)\n"
            "print('RESULT', s['best']['label'])\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    for line in ("rewardgen evolve: task inverted-pendulum-balance", "estimated duration", "g0c0 ", "g0c1 ",
                 "generation 0 done: best g0c"):
        assert line in out.stdout, (line, out.stdout)
    assert out.stdout.splitlines()[-1].startswith("RESULT g0c")
    silent = subprocess.run([sys.executable, "-c", code.replace("progress=True", "progress=False"), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert silent.returncode == 0 and silent.stdout.splitlines() == [silent.stdout.splitlines()[-1]]
