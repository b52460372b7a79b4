"""`rewardgen bench evolve` on a tiny budget, so it keeps working (the numbers are in docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_evolve_quick_reports_every_row(tmp_path):
    """`rewardgen bench evolve --quick`: the trainer alone and the three evolve rows, each with its
    efficiency and per-candidate overhead; videos only in the rows that render them."""
    from conftest import cli, last_json

    res = cli("bench", "evolve", "--task", "inverted-pendulum-balance", "--quick", "--json", cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = last_json(res.stdout)
    assert out["samples"] == 2 and out["steps"] == 4096 and out["workers"] == 1 and len(out["repeat"]) == 1
    assert out["trainer_alone_env_steps_per_s"] > 0 and out["load_before"]
    run = out["repeat"][0]
    for row in ("full", "full+video", "halving"):
        r = out[row]
        assert r["env_steps_per_s"] > 0 and 0 < r["efficiency"] < 5, (row, r)
        assert r["env_steps_per_s"] == run[row]["env_steps"] / run[row]["wall_seconds"]
        assert run[row]["failed"] == []
    assert run["full"]["env_steps"] == 2 * 4096 and run["full"]["videos"] == 0
    assert run["full+video"]["videos"] == 2
    assert run["halving"]["env_steps"] < run["full"]["env_steps"]  # the halving row cut one candidate
    assert "efficiency" in res.stderr  # the per-run lines, on stderr with --json
    # the `rewardgen train` command, timed whole, beside SB3's training-only rate on the same reward
    cmd = run["train_command"]
    assert cmd["env_steps"] >= 4096 and cmd["wall_seconds"] > 0 and cmd["sb3_env_steps_per_s"] > 0
    rate = cmd["env_steps"] / cmd["wall_seconds"]
    assert cmd["train_vs_sb3"] == pytest.approx(rate / cmd["sb3_env_steps_per_s"], rel=1e-3)
    assert (Path(cmd["run_dir"]) / "gen-000" / "cand-00" / "video.mp4").is_file()


def test_bench_evolve_refuses_bad_input(tmp_path):
    from conftest import cli

    res = cli("bench", "evolve", "--task", "inverted-pendulum-balance", "--workers", "0", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--workers" in res.stderr
