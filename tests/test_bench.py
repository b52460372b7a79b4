"""The benchmark functions on a tiny budget, so they keep working (the numbers are in docs/benchmarks.md)."""

from __future__ import annotations

import warnings

import pytest

from rewardgen.bench import train as bench

warnings.filterwarnings("ignore", message=".*precision lowered.*")


@pytest.mark.slow
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
    assert {"seccomp", "audit-hook"} <= set(r["b_worker_isolation"]), r["b_worker_isolation"]


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


def test_bench_throughput_tables_a_b_c_and_the_ratios_of_two_envs():
    """`bench throughput --tasks` over two small envs in one run: a row per task with a (bare rollout),
    b (rewardgen PPO in its worker), c (SB3 PPO), b/a and b/c in the table, and every figure positive in
    --json. Not a timed test: the numbers are measured by the bench and recorded in docs/benchmarks.md."""
    import json

    from conftest import cli

    tasks = ["inverted-pendulum-balance", "reacher-reach"]
    proc = cli("bench", "throughput", "--tasks", ",".join(tasks), "--steps", "2048", "--sb3-steps", "2048",
               "--sim-seconds", "0.1", "--repeats", "1", "--json", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["task"] for r in result["rows"]] == tasks
    assert [r["env"] for r in result["rows"]] == ["InvertedPendulum-v5", "Reacher-v5"]
    for r in result["rows"]:
        for key in ("a_raw_rollout_env_steps_per_s", "a_raw_batchsim_env_steps_per_s", "b_rewardgen_ppo_env_steps_per_s",
                    "c_sb3_ppo_env_steps_per_s", "ratio_b_over_a_rollout", "ratio_b_over_c"):
            assert r[key] > 0, (r["task"], key)
        assert r["ratio_b_over_a_rollout"] == r["b_rewardgen_ppo_env_steps_per_s"] / r["a_raw_rollout_env_steps_per_s"]
        assert r["b_mode"] == "worker" and r["repeats"] == 1
        split = r["b_split"]  # where b's time went, from the worker's own timing
        assert set(split) == {"physics", "rules", "policy", "reward", "update", "setup"}
        assert all(v >= 0 for v in split.values()) and split["physics"] > 0 and split["update"] > 0
    assert result["load"]["before"] and result["load"]["after"]
    # the table, on stderr beside the progress with --json
    header = next(line for line in proc.stderr.splitlines() if "a rollout" in line)
    for col in ("task", "a rollout", "b PPO", "c SB3", "b/a", "b/c", "b's time"):
        assert col in header, col
    for task in tasks:
        assert any(line.startswith("│ " + task) for line in proc.stderr.splitlines()), task


def test_bench_throughput_refuses_bad_tasks():
    from conftest import cli

    for args in (["--tasks", "inverted-pendulum-balance,no-such-task"], ["--task", "ant-run", "--tasks", "all"]):
        proc = cli("bench", "throughput", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
