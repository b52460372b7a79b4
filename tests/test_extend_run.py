"""``rewardgen resume RUN --generations N``: a finished run gets more generations (N is the new total).

One real run (inverted pendulum, 2 candidates, 1 generation, 2048 env-steps, no videos), then extended
to 2 generations with ``kill -9`` in the middle of the new one, then resumed plainly; bad totals are
one line, exit 2, with run.json untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, kill_9_when, last_json

SMALL = ["--task", "inverted-pendulum-balance", "--samples", "2", "--steps", "2048", "--no-video",
         "--workers", "1", "--llm", "offline"]


def _usage_error(res, *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.slow
def test_resume_with_more_generations_extends_a_finished_run(runs_dir: Path) -> None:
    res = cli("evolve", *SMALL, "--generations", "1", "--runs-dir", str(runs_dir), "--json", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = Path(last_json(res.stdout)["run_dir"])
    first = {p: p.read_bytes() for p in run_dir.glob("gen-000/cand-*/*") if p.is_file()}
    assert any(p.name == "metrics.json" for p in first)

    # the total must grow: the same count (or fewer) is one line, and nothing changes
    before = (run_dir / "run.json").read_bytes()
    _usage_error(cli("resume", str(run_dir), "--generations", "1"), "already has 1 generation(s)",
                 "new total", "--generations 2")
    _usage_error(cli("resume", str(run_dir), "--generations", "0"), "positive integer")
    assert (run_dir / "run.json").read_bytes() == before

    # extend to 2 and kill -9 once the new generation is proposed and its first candidate trains
    kill_9_when(["resume", str(run_dir), "--generations", "2"], "gen-001/cand-00/train.log", run_dir, timeout=300)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["config"]["generations"] == 2 and run["status"] == "running"

    res = cli("resume", str(run_dir), "--json", timeout=300)  # a plain resume finishes what was planned
    assert res.returncode == 0, res.stderr[-3000:]
    assert "estimated" in res.stderr, res.stderr[-2000:]  # the same time estimate as any run
    summary = last_json(res.stdout)
    assert [g["generation"] for g in summary["generations"]] == [0, 1]
    assert all(c["status"] == "ok" for g in summary["generations"] for c in g["candidates"]), summary
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["config"]["generations"] == 2
    # generation 0 was not retrained, and generation 1 grew from it (the offline proposer's parents)
    for path, content in first.items():
        assert path.read_bytes() == content, f"{path} changed"
    parents = [json.loads((run_dir / f"gen-001/cand-0{c}/proposal.json").read_text()).get("parent") for c in (0, 1)]
    assert any(p and str(p).startswith(("0/", "g0c")) for p in parents), parents


@pytest.mark.slow
def test_a_train_run_has_no_generations_to_add(runs_dir: Path, tmp_path: Path) -> None:
    from conftest import GOOD_PENDULUM_REWARD

    reward = tmp_path / "r.py"
    reward.write_text(GOOD_PENDULUM_REWARD)
    res = cli("train", str(reward), "--task", "inverted-pendulum-balance", "--steps", "1024",
              "--runs-dir", str(runs_dir), "--json", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = Path(last_json(res.stdout)["run_dir"])
    before = (run_dir / "run.json").read_bytes()
    _usage_error(cli("resume", str(run_dir), "--generations", "3"), "rewardgen train", "no generations to add")
    assert (run_dir / "run.json").read_bytes() == before
