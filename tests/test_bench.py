"""The benchmark functions on a tiny budget, so they keep working (the numbers are in docs/benchmarks.md)."""

from __future__ import annotations

import warnings

import pytest

from rewardgen import bench

warnings.filterwarnings("ignore", message=".*precision lowered.*")


def test_throughput_through_the_worker_reports_every_column():
    r = bench.throughput("inverted-pendulum-balance", ppo_steps=2048, sb3_steps=2048, sim_seconds=0.1, repeats=1)
    assert r["b_mode"] == "worker"
    for key in ("a_raw_batchsim_env_steps_per_s", "a_raw_rollout_env_steps_per_s", "b_rewardgen_ppo_env_steps_per_s",
                "c_sb3_ppo_env_steps_per_s", "ratio_b_over_c", "ratio_b_over_a_batchsim", "ratio_b_over_a_rollout",
                "b_worker_wall_env_steps_per_s"):
        assert r[key] > 0, key
    # the worker's own rate excludes its start-up; the wall rate includes it
    assert r["b_rewardgen_ppo_env_steps_per_s"] > r["b_worker_wall_env_steps_per_s"]
    assert 50 < r["peak_rss_mb"] < 1536  # the worker's peak RSS, not this process's
    assert "seccomp" in r["b_worker_isolation"] or "audit-hook" in r["b_worker_isolation"]


def test_throughput_in_process_takes_overrides_and_the_worker_refuses_them():
    r = bench.throughput("inverted-pendulum-balance", ppo_steps=2048, sb3_steps=2048, sim_seconds=0.1, repeats=1,
                         num_worlds=16, in_process=True, rollout_steps=8, epochs=1)
    assert r["b_mode"] == "in-process" and r["num_worlds"] == 16 and r["ratio_b_over_c"] > 0
    with pytest.raises(ValueError):
        bench.throughput("inverted-pendulum-balance", repeats=1, epochs=1)


def test_learning_compares_both_trainers():
    r = bench.learning("inverted-pendulum-balance", 2048, seeds=(0,), episodes=1)
    for k in ("rewardgen_ppo", "sb3_ppo"):
        assert len(r[k]["runs"]) == 1 and r[k]["median_seconds"] > 0
        assert isinstance(r[k]["median_fitness"], float)
