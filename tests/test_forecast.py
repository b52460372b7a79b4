"""The first time estimate's arithmetic and memory (``rewardgen.run.forecast``); the estimate against
real runs is ``tests/test_speed.py::test_the_first_estimate_is_within_2x_of_the_real_duration``."""

from __future__ import annotations

import json
import time

import pytest

from rewardgen.run import forecast
from rewardgen.run.forecast import BOOK_MAX_AGE_S, Costs, OtherDemand, RateBook, calibration_steps, forecast_seconds

COSTS = Costs(job_s=1.0, step_s=0.001, eval_fixed_s=0.5, eval_step_s=0.0001, load=0.0, cores=2,
              measured_at=time.time())


def test_every_planned_slice_is_a_job_plus_an_evaluation_spread_over_the_workers():
    # halving, K=4 at 10k: 4 x 2k, then 2 x 3k more, then 1 x 5k more; evaluations of 5 x 1000 steps
    plan = [{"target": 2000, "candidates": 4}, {"target": 5000, "candidates": 2}, {"target": 10_000, "candidates": 1}]
    evaluation = 0.5 + 0.0001 * 5 * 1000
    def one(steps):
        return 1.0 + steps * 0.001 + evaluation
    # two workers on two idle cores: no slowdown; rung 0 is two rounds, rung 1 one, rung 2 one
    assert forecast_seconds(COSTS, [plan], 2, 5, 1000, load_now=0.0) == pytest.approx(
        2 * one(2000) + one(3000) + one(5000))
    assert forecast_seconds(COSTS, [plan, plan], 2, 5, 1000, load_now=0.0) == pytest.approx(
        2 * (2 * one(2000) + one(3000) + one(5000)))
    # one worker: every slice in turn
    assert forecast_seconds(COSTS, [plan], 1, 5, 1000, load_now=0.0) == pytest.approx(
        4 * one(2000) + 2 * one(3000) + one(5000))


def test_a_busier_machine_makes_the_forecast_longer():
    plan = [{"target": 4000, "candidates": 2}]
    quiet = forecast_seconds(COSTS, [plan], 2, 1, 100, load_now=0.0)
    busy = forecast_seconds(COSTS, [plan], 2, 1, 100, load_now=6.0)
    assert busy == pytest.approx(quiet * (6 + 2) / 2)  # two jobs beside six others on two cores
    measured_busy = Costs(**{**COSTS.__dict__, "load": 6.0})  # without a load now: the load it was measured at
    assert forecast_seconds(measured_busy, [plan], 2, 1, 100) == pytest.approx(busy)


def test_a_measurement_is_made_uncontended_by_its_load_and_never_costs_more_than_its_cpu_time():
    """Costs are kept as on an idle machine: a job timed beside other work is scaled down by the share
    of the cores the others wanted; where the kernel says the job ran for less CPU time than that (a
    burst of load the sampling missed, another guest on the host), its CPU time is what it costs."""
    assert forecast.uncontended(10.0, None, 0.0, 2) == 10.0  # idle: the wall time stands
    assert forecast.uncontended(10.0, 14.0, 0.0, 2) == 10.0  # two threads overlapping: still the wall time
    assert forecast.uncontended(10.0, None, 3.0, 2) == pytest.approx(5.0)  # 4 wanting 2 cores: half its time
    assert forecast.uncontended(10.0, 3.0, 1.0, 2) == 3.0  # busier than it looked: its CPU time


def test_evaluations_grow_from_the_calibrations_episode_length_to_full_length():
    """A terminating task's first rung ends its episodes early, as the calibration's policy did (trained
    as long); a candidate trained to the whole budget runs them to full length."""
    short = Costs(**{**COSTS.__dict__, "eval_length": 0.1, "trained": 2000})
    assert short.episode_share(2000, 10_000) == pytest.approx(0.1)
    assert short.episode_share(6000, 10_000) == pytest.approx(0.1 + 0.9 * 0.5)
    assert short.episode_share(10_000, 10_000) == 1.0
    assert COSTS.episode_share(2000, 10_000) == 1.0  # full-length episodes in the calibration: always full
    plan = [{"target": 2000, "candidates": 4}, {"target": 5000, "candidates": 2}, {"target": 10_000, "candidates": 1}]
    evaluations = (4 * 0.1 + 2 * (0.1 + 0.9 * 3000 / 8000) + 1.0) * 5 * 1000 * COSTS.eval_step_s
    assert forecast_seconds(COSTS, [plan], 1, 5, 1000, load_now=0.0) - forecast_seconds(
        short, [plan], 1, 5, 1000, load_now=0.0) == pytest.approx(7 * 5 * 1000 * COSTS.eval_step_s - evaluations)


def test_the_calibration_stays_short():
    assert calibration_steps(256, 30_000) == 4096  # at least 4096 env-steps
    assert calibration_steps(2048, 1_000_000) == 8192  # four batches
    assert calibration_steps(2048, 5_000) == 1000  # never more than a fifth of a small budget


def test_the_rate_book_remembers_bounds_and_forgets(tmp_path):
    book = RateBook(tmp_path / "cache" / "rates.json")
    assert book.get("k") is None
    book.put("k", COSTS)
    assert book.get("k") == (COSTS, 1.0)
    book.put("k", COSTS, correction=7.0)
    assert book.get("k")[1] == 2.0  # one odd run cannot wreck the next estimate
    book.put("k", COSTS, correction=1.3)
    assert book.get("k")[1] == 1.3 and book.get("other") is None
    assert book.get("k", now=COSTS.measured_at + BOOK_MAX_AGE_S + 1) is None  # too old: measured again
    (tmp_path / "cache" / "rates.json").write_text("{not json")
    assert book.get("k") is None  # a damaged file is no estimate, never an error
    data = {"version": forecast.BOOK_VERSION, "setups": {"k": {"costs": dict(COSTS.__dict__, step_s=float("nan"))}}}
    (tmp_path / "cache" / "rates.json").write_text(json.dumps(data))
    assert book.get("k") is None
    data["setups"]["k"]["costs"]["step_s"] = 0.001
    (tmp_path / "cache" / "rates.json").write_text(json.dumps(data))
    assert book.get("k") == (COSTS, 1.0)
    for older in (1, 2):  # kept the load average as the load, or costs as measured under load: measured again
        (tmp_path / "cache" / "rates.json").write_text(json.dumps({**data, "version": older}))
        assert book.get("k") is None
    blocked = RateBook(tmp_path / "file" / "rates.json")
    (tmp_path / "file").write_text("a file where the folder should be")
    blocked.put("k", COSTS)  # cannot be written: ignored
    assert blocked.get("k") is None


def test_other_processes_demand_is_sampled_now_less_our_own(monkeypatch):
    """Two processes that spin for the whole second are seen as at least 1.5 cores of other demand,
    whatever else the machine runs; what this run itself runs (``own``) is not counted; where the kernel
    does not count runnable threads, the load average stands in."""
    import subprocess
    import sys

    spin = [subprocess.Popen([sys.executable, "-c", "import time\nt = time.time() + 3\nwhile time.time() < t: pass"])
            for _ in range(2)]
    try:
        time.sleep(0.3)
        with OtherDemand() as busy:
            time.sleep(1.0)
        with OtherDemand(own=1000) as ours:
            time.sleep(0.2)
    finally:
        for p in spin:
            p.kill()
            p.wait()
    assert len(busy.samples) >= 10 and busy.cores() >= 1.5, busy.samples
    assert ours.samples and ours.cores() == 0.0
    monkeypatch.setattr(forecast, "runnable_now", lambda: None)
    monkeypatch.setattr(forecast, "loadavg", lambda: 3.25)
    with OtherDemand() as unknown:
        time.sleep(0.1)
    assert unknown.samples == [] and unknown.cores() == 3.25
