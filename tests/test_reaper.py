"""A command returns after every process it started is gone (issue 31, item 5).

The command runs under a harness that is itself a child subreaper: a process of the command still
alive when the command exits is reparented to the harness, which lists its living children the
moment the command has returned. Cases: ``check`` and ``debug`` of an honest reward, ``train``, and
``check`` of a reward that loops forever (its worker killed at the check's wall-clock limit, the jail
behind it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GOOD_PENDULUM_REWARD, ROOT

HARNESS = r'''
import ctypes, json, os, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
proc = subprocess.run([sys.executable, "-m", "rewardgen", *sys.argv[1:]], capture_output=True, text=True,
                      stdin=subprocess.DEVNULL)
alive = []
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            alive.append({"pid": int(entry), "state": fields[0], "cmd": cmd[:200]})
for p in alive:  # leave nothing behind either
    try:
        os.kill(p["pid"], 9)
    except ProcessLookupError:
        pass
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
print(json.dumps({"rc": proc.returncode, "alive": alive, "stderr": proc.stderr[-2000:], "stdout": proc.stdout[-2000:]}))
'''


def _run(tmp_path: Path, *args: str, timeout: float = 600) -> dict:
    script = tmp_path / "harness.py"
    script.write_text(HARNESS)
    res = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                         cwd=ROOT)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_check_debug_and_train_leave_no_process(tmp_path: Path):
    reward = tmp_path / "reward.py"
    reward.write_text(GOOD_PENDULUM_REWARD)
    for args in (["check", str(reward), "--task", "inverted-pendulum-balance"],
                 ["debug", str(reward), "--task", "inverted-pendulum-balance", "--episodes", "1"],
                 ["train", str(reward), "--task", "inverted-pendulum-balance", "--steps", "512", "--runs-dir",
                  str(tmp_path / "runs")]):
        out = _run(tmp_path, *args)
        assert out["rc"] == 0, out["stderr"]
        assert out["alive"] == [], (args[0], out["alive"])


@pytest.mark.slow
def test_check_of_a_reward_that_loops_forever_leaves_no_process(tmp_path: Path):
    reward = tmp_path / "loop.py"
    reward.write_text("import torch\n\ndef compute_reward(s):\n    x = 0\n    while True:\n        x += 1\n")
    out = _run(tmp_path, "check", str(reward), "--task", "inverted-pendulum-balance", "--timeout", "5")
    assert out["rc"] == 1 and "wall-clock limit of 5 s" in out["stdout"], out
    assert out["alive"] == [], out["alive"]
