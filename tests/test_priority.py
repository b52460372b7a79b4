"""A nice command stays nice against the rest of the machine.

Every process rewardgen starts (the zygote, each worker, each reward jail, the trusted evaluator and
renderer) runs in a session of its own. Where the kernel schedules by session (autogroup), niceness
only orders processes within a session, so each of those would otherwise compete with the user's
other work as an equal: ``nice -n 19 rewardgen evolve`` would not yield. These tests read the
kernel's own record (``/proc/PID/autogroup``) of real processes: a confined child's, and every
session a real niced ``rewardgen train`` starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _autogroups_on() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1" and \
            Path("/proc/self/autogroup").exists()
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _autogroups_on(), reason="the kernel does not group processes by session here")


def _facts(pid: int) -> dict | None:
    """``pid``'s parent, session, niceness and its session group's niceness; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        group = Path(f"/proc/{pid}/autogroup").read_text().split()
    except OSError:
        return None
    if len(stat) < 17 or len(group) < 3:  # exiting: nothing left to read
        return None
    return {"ppid": int(stat[1]), "sid": int(stat[3]), "nice": int(stat[16]), "group_nice": int(group[-1])}


def test_a_confined_child_in_a_session_of_its_own_is_as_nice_there_as_its_command():
    """A child of a command run with ``nice -n 6``, under the renderer's confinement (nice 19 more,
    SCHED_IDLE): its new session's group is nice 6, the command's, where it would be 0 (an equal of
    every other session) without the fix; its own niceness is 19 within it."""
    script = ("import subprocess\nfrom rewardgen.procs.confine import Confinement\n"
              "p = subprocess.Popen(['sleep', '30'], start_new_session=True,"
              " preexec_fn=Confinement(nice=19, idle=True).apply)\nprint(p.pid, flush=True)\np.wait()\n")
    parent = subprocess.Popen(["nice", "-n", "6", sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/cmdline").read_bytes() != b"sleep\x0030\x00":  # exec'd: apply has run
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.01)
        facts = _facts(pid)
        os.kill(pid, 9)
    finally:
        parent.wait(10)
    assert facts is not None and facts["sid"] == pid
    assert facts["nice"] == 19 and facts["group_nice"] == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 6), facts


@pytest.mark.slow
def test_every_session_a_nice_train_starts_is_as_nice(tmp_path):
    """``nice -n 7 rewardgen train`` (a real worker forked from the zygote, a real reward jail, the
    trusted evaluator and renderer): every process it starts that leads a session of its own has a
    session group as nice as the command. Watched from outside while the command runs."""
    reward = tmp_path / "r.py"
    reward.write_text("def compute_reward(s):\n    up = s.qpos[:, 1] * 0.0 + 1.0\n    return up, {'up': up}\n")
    cmd = ["nice", "-n", "7", sys.executable, "-m", "rewardgen", "train", str(reward), "--task",
           "inverted-pendulum-balance", "--steps", "60000", "--runs-dir", str(tmp_path / "runs"), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "REWARDGEN_ZYGOTE": "1"})
    nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7)  # the command's (this test may run niced itself)
    known: dict[int, dict] = {}  # every process of the command's family, as last read
    family = {proc.pid}
    while proc.poll() is None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) not in family:
                facts = _facts(int(entry.name))
                if facts and facts["ppid"] in family:
                    family.add(int(entry.name))
        for pid in list(family - {proc.pid}):
            facts = _facts(pid)
            if facts and (pid not in known or facts["nice"] >= nice):  # its last facts once it was niced
                known[pid] = facts
        time.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["fitness"] is not None
    leaders = {pid: f for pid, f in known.items() if f["sid"] == pid}
    # a reward jail: a session of its own under its namespace parent, which is in its worker's session
    jails = [pid for pid, f in leaders.items() if f["ppid"] in known and f["ppid"] not in leaders
             and known[f["ppid"]]["sid"] in leaders]
    assert jails and len(leaders) >= 3, f"the zygote, a worker and its jail were not all seen: {known}"
    wrong = {pid: f for pid, f in leaders.items() if f["group_nice"] != nice or f["nice"] < nice}
    assert not wrong, f"sessions not as nice as the command (nice / group nice): {wrong}"
