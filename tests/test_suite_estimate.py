"""The suite's time estimate counts only what is left: a task whose evolve ended, here or in an earlier
process that was stopped during its final, owes only its final's trainings."""

from __future__ import annotations

from rewardgen.bench.suite import SuiteEstimate


def test_a_task_resumed_in_its_final_owes_only_the_final():
    plans = {"a": (1_000_000, 900_000), "b": (2_000_000, 900_000)}
    est = SuiteEstimate(plans, cores=2)
    est.finished("a")
    assert est.fields()["env_steps_left"] == 2_900_000
    est.evolve_finished("b")  # its evolve ran in an earlier process
    assert est.fields()["env_steps_left"] == 900_000
    for _ in range(2):  # two trainings of 300k the earlier process had finished: done, not timed here
        est.final_run("b", 300_000, reused=True)
    fields = est.fields()
    assert fields["env_steps_left"] == 300_000 and fields["basis"] == "guess"
    est.final_run("b", 300_000)
    assert est.fields()["env_steps_left"] == 0 and est.fields()["basis"] == "measured"
    est.evolve_finished("b")  # said again: never undoes what is done
    assert est.fields()["env_steps_left"] == 0
