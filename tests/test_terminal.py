"""What a person sees in the terminal: safe untrusted text, MuJoCo's noise silenced, `rewardgen tasks`
readable, progress bars that tell the truth (own budgets, queued, time left), train/check/resume/Ctrl-C
messages. Runs the real CLI and a real small evolve (``small_real_run`` in conftest)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GOOD_PENDULUM_REWARD, ROOT, cli, last_json

from rewardgen.envsteps import fmt
from rewardgen.safetext import html, one_line, term

HOSTILE = "\x1b[2J\x1b[H\x1b[32maccepted: the reward ran\x1b[0m [link=https://evil.example]click[/link] \udcff"


# ------------------------------------------------------------------------------------------------
# one sanitiser for the terminal, one escaper for HTML
# ------------------------------------------------------------------------------------------------

def test_term_shows_control_characters_and_markup_as_visible_text():
    out = term(HOSTILE)
    assert "\x1b" not in out and "\\x1b[2J" in out
    assert "\\[link=https://evil.example]" in out  # Rich markup escaped
    assert "\\udcff" in out
    out.encode("utf-8")  # a lone surrogate no longer makes printing raise UnicodeEncodeError
    assert term("a\rb\bc\x7fd\x9be\u202eg", markup=False) == "a\\x0db\\x08c\\x7fd\\x9be\\u202eg"
    assert term("line 1\n\tline 2", markup=False) == "line 1\n\tline 2"
    assert one_line("a\nb" * 50, 10, markup=False) == "a\\nba\\nba\\nb…"
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=200, color_system=None)
    console.print("cause: " + term(HOSTILE))
    shown = console.export_text()
    assert "[link=https://evil.example]click[/link]" in shown and "\\x1b[2J" in shown
    assert Text.from_markup("x " + term("[bold]b[/]")).plain == "x [bold]b[/]"


def test_html_escapes_and_survives_surrogates():
    assert str(html("<b a='1'>&\udcff")) == "&lt;b a=&#39;1&#39;&gt;&amp;\\udcff"
    assert str(html(None)) == "" and str(html(html("<i>"))) == "&lt;i&gt;"  # escaped once, not twice


# ------------------------------------------------------------------------------------------------
# rewardgen check / train on hostile and broken rewards
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_check_shows_a_hostile_exception_message_as_text(tmp_path):
    bad = tmp_path / "reward.py"
    bad.write_text("import torch\n\ndef compute_reward(s):\n"
                   "    raise ValueError('\\x1b[2J\\x1b[H\\x1b[32maccepted: the reward ran\\x1b[0m \\udcff')\n")
    res = cli("check", str(bad), "--task", "inverted-pendulum-balance", "--steps", "16")
    assert res.returncode == 1, res.stderr
    assert "\x1b" not in res.stdout and "\\x1b[2J" in res.stdout and "\\udcff" in res.stdout
    assert res.stdout.startswith("rejected")
    assert "UnicodeEncodeError" not in res.stderr and "Traceback" not in res.stderr
    assert "sandbox notes" not in res.stdout and "RLIMIT_NPROC" not in res.stdout


@pytest.mark.slow
def test_check_prints_component_names_with_surrogates(tmp_path):
    """A name that is not valid text is refused by the jail's contract (it never reaches the run store
    or a page), and said readably; a name that looks like markup is shown as typed."""
    odd = tmp_path / "reward.py"
    odd.write_text("import torch\n\ndef compute_reward(s):\n    a = torch.ones_like(s.step)\n"
                   "    return a, {'bad\\udcffname': a, '[red]x[/red]': a}\n")
    res = cli("check", str(odd), "--task", "inverted-pendulum-balance", "--steps", "16")
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stdout.startswith("rejected") and "bad\\udcffname" in res.stdout and "Traceback" not in res.stderr
    markup = tmp_path / "markup.py"
    markup.write_text("import torch\n\ndef compute_reward(s):\n    a = torch.ones_like(s.step)\n"
                      "    return a, {'[red]x[/red]': a}\n")
    res = cli("check", str(markup), "--task", "inverted-pendulum-balance", "--steps", "16")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("accepted") and "[red]x[/red]" in res.stdout


@pytest.mark.slow
def test_mujoco_deprecation_warning_and_log_file_are_gone(tmp_path):
    """HalfCheetah's gymnasium model uses `settotalmass`, deprecated in MuJoCo 3.3+: its warning used
    to be printed ~27 times per run and MUJOCO_LOG.TXT appeared in the current directory."""
    good = tmp_path / "reward.py"
    good.write_text("import torch\n\ndef compute_reward(s):\n    a = torch.ones_like(s.step)\n"
                    "    return a, {'alive': a}\n")
    work = tmp_path / "cwd"
    work.mkdir()
    res = cli("check", str(good), "--task", "halfcheetah-run", "--steps", "32", cwd=work,
              env={"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "settotalmass" not in res.stdout + res.stderr and "WARNING" not in res.stdout + res.stderr
    assert list(work.iterdir()) == []  # no MUJOCO_LOG.TXT


def test_other_mujoco_warnings_still_reach_the_user_once():
    import warnings

    import mujoco

    import rewardgen  # noqa: F401 - installs the handler
    from rewardgen.mjlog import MujocoWarning, on_warning

    assert mujoco.get_mju_user_warning() is on_warning
    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><joint type='slide'/><geom size='0.1'/></body></worldbody></mujoco>")
    data = mujoco.MjData(model)
    data.qvel[0] = float("nan")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mujoco.mj_step(model, data)
    assert any(issubclass(w.category, MujocoWarning) and "unstable" in str(w.message) for w in caught)


@pytest.mark.slow
def test_train_refuses_a_file_that_fails_static_checks_without_a_run_directory(tmp_path, runs_dir):
    bad = tmp_path / "reward.py"
    bad.write_text("import os\n\ndef compute_reward(s)\n    return s.step, {}\n")
    res = cli("train", str(bad), "--task", "inverted-pendulum-balance", "--runs-dir", str(runs_dir))
    assert res.returncode == 1
    assert list(runs_dir.iterdir()) == []
    assert "rejected before training" in res.stderr
    assert res.stderr.lower().count("syntax") == 1, res.stderr  # said once, not three times
    res = cli("train", str(bad), "--task", "inverted-pendulum-balance", "--runs-dir", str(runs_dir), "--json")
    assert res.returncode == 1 and last_json(res.stdout)["status"] == "static"


@pytest.mark.slow
def test_train_says_what_it_does_and_gives_the_threshold(tmp_path, runs_dir):
    good = tmp_path / "reward.py"
    good.write_text(GOOD_PENDULUM_REWARD)
    res = cli("train", str(good), "--task", "inverted-pendulum-balance", "--steps", "2048", "--runs-dir",
              str(runs_dir), env={"COLUMNS": "100"})
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "rewardgen train" in out and "rewardgen evolve" not in out and "1 candidates" not in out
    assert "success threshold 0.95" in out
    assert "share at end" in out and "upright" in out and "alive" in out
    # nothing wraps into unreadable rows at 100 columns (a path is printed whole, to be copied)
    assert max(len(line) for line in out.splitlines() if str(runs_dir) not in line) <= 100, out
    assert "sandbox notes" not in out and "RLIMIT_NPROC" not in out


# ------------------------------------------------------------------------------------------------
# rewardgen tasks
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("columns", ["80", "120"])
def test_tasks_is_readable_piped_and_at_80_columns(columns):
    res = cli("tasks", env={"COLUMNS": columns})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    tasks = last_json(cli("tasks", "--json").stdout)
    assert max(len(line) for line in lines) <= min(int(columns), 100)
    assert "…" not in res.stdout and "\x1b" not in res.stdout  # nothing cut, no colour codes in a pipe
    text = " ".join(res.stdout.split())
    for t in tasks:
        assert any(line.startswith(t["id"] + "  ·  ") for line in lines), t["id"]
        assert " ".join(t["description"].split()) in text  # the whole description, wrapped not cut
    assert res.stdout.count("baseline: ") == len(tasks)  # the column the README promises
    assert "baseline: the env's own reward" in res.stdout and "baseline: a sparse success reward" in res.stdout
    assert "1M steps" in res.stdout and "10000…" not in res.stdout
    words = [len(line.split()) for line in lines if line.startswith("  ") and not line.startswith("    ")]
    assert min(words) >= 2 or sum(w == 1 for w in words) <= 2  # never one word per line


# ------------------------------------------------------------------------------------------------
# the live progress display, on a real run
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_progress_bars_never_overshoot_and_show_own_budgets(small_real_run):
    run_dir, progress = small_real_run
    for frame in progress.frames:
        for row in frame:
            assert row["completed"] <= row["total"], row
    metrics = {(m["generation"], m["candidate"]): m for m in
               (json.loads(p.read_text()) for p in run_dir.glob("gen-*/cand-*/metrics.json"))}
    last = progress.frames[-1]
    cut = [m for m in metrics.values() if m["fate"] == "eliminated"]
    assert cut
    for m in cut:
        [row] = [r for r in last if r["description"].startswith(f"g{m['generation']}c{m['candidate']} ")]
        assert row["total"] == m["env_steps"] < 3000 and "cut early" in row["description"], row
        assert row["count"] == f"{fmt(m['env_steps'])}/3k"  # its own budget, of the full one
    for m in metrics.values():
        if m["fate"] == "final":
            assert m["env_steps"] >= 3000  # PPO trains whole batches: 3072 for 3000, shown as trained


@pytest.mark.slow
def test_progress_says_queued_until_a_candidate_starts_and_estimates_time_left(small_real_run):
    _, progress = small_real_run
    started: set[tuple[int, int]] = set()
    saw_queued_while_other_ran = saw_eta = False
    first_slice_done = False
    for (kind, data), frame in zip(progress.events, progress.frames):
        if kind == "candidate_started" and data.get("rung", 0) == 0:
            started.add((data["generation"], data["candidate"]))
        if kind == "candidate_progress" and data["steps"] >= data["total"]:
            first_slice_done = True  # a candidate has trained its first slice
        for row in frame:
            desc = row["description"]
            label = re.match(r"g(\d+)c(\d+) ", desc)
            if label:
                g, c = int(label.group(1)), int(label.group(2))
                if (g, c) not in started:
                    assert desc.endswith("queued"), desc  # not "checking" before it has started
                    saw_queued_while_other_ran |= bool(started)
            elif "overall" in desc and row["eta"]:
                assert first_slice_done, "no estimate before any training slice is done"
                assert row["eta"].startswith("~") and row["eta"].endswith(" left")
                saw_eta = True
    assert saw_queued_while_other_ran and saw_eta
    assert any("queued for rung 2/3" in r["description"] for f in progress.frames for r in f)
    out = progress.file.getvalue()
    assert out.count("generation 0 done") == 1 and out.count("generation 1 done") == 1


def test_progress_display_escapes_untrusted_text():
    import io

    from rich.console import Console

    from rewardgen.cli.display import RichProgress
    from rewardgen.run.events import CandidateFinished, GenerationStarted, RunStarted, RunWarning

    buf = io.StringIO()
    display = RichProgress(Console(file=buf, force_terminal=False, width=200))
    with display:
        display.event(RunStarted(run_dir="/tmp/x", task="t", proposer="p[bold]x[/bold]", config={}))
        display.event(GenerationStarted(generation=0, candidates=1, pending=[0], steps=100))
        display.event(CandidateFinished(generation=0, candidate=0, status="runtime", fitness=None,
                                        error=HOSTILE, success=False))
        display.event(RunWarning(message=HOSTILE))
    out = buf.getvalue()
    assert "\x1b" not in out and "\\x1b[2J" in out and "[link=https://evil.example]click[/link]" in out
    assert "p[bold]x[/bold]" in out


# ------------------------------------------------------------------------------------------------
# resume and Ctrl-C
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_resume_of_a_finished_run_says_so(small_real_run):
    run_dir, _ = small_real_run
    res = cli("resume", str(run_dir))
    assert res.returncode == 0
    assert "already finished all 2 generation(s); nothing to do" in res.stderr


@pytest.mark.slow
def test_ctrl_c_names_the_real_run_directory(runs_dir):
    proc = subprocess.Popen([sys.executable, "-m", "rewardgen", "evolve", "--task", "inverted-pendulum-balance",
                             "--samples", "2", "--generations", "1", "--steps", "200000", "--runs-dir",
                             str(runs_dir)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        run_line = ""
        for line in proc.stdout:
            if line.startswith("run directory:"):
                run_line = line.split(":", 1)[1].strip()
            if "candidates, budget" in line:
                break
        assert run_line, "no run directory printed"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert f"continue with `rewardgen resume {run_line}`" in err, err[-2000:]
    assert "RUN_DIR" not in err
    assert json.loads((Path(run_line) / "run.json").read_text())["status"] == "interrupted"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed interrupt, on purpose
def test_ctrl_c_swallowed_by_a_finalizer_still_stops_the_wait():
    """Python prints a KeyboardInterrupt raised inside a ``__del__`` as "ignored" and goes on; the
    CLI's SIGINT handler also sets a flag that every wait of the main thread polls, so the run stops."""
    import gc
    import os
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from rewardgen import interrupt

    class SlowFinalizer:
        def __del__(self):
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:  # SIGINT arrives while this runs
                pass

    previous = signal.getsignal(signal.SIGINT)
    interrupt.install()
    try:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        obj = SlowFinalizer()
        del obj  # the finalizer swallows the KeyboardInterrupt ("Exception ignored in ...")
        gc.collect()
        assert interrupt.interrupted()
        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(time.sleep, 3)
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                interrupt.wait(fut)
            assert time.monotonic() - started < 2  # at once, not when the work ends
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupt._INTERRUPTED.clear()
