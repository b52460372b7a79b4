"""Reward debugging (issue 7): each planted defect in tests/debug_rewards/ is flagged, the sound reward is not.

Every file runs once through the sandboxed debug worker (two at a time, in a module fixture) on
HalfCheetah random rollouts (3 episodes x 300 steps). Each defect file's name is the flag it plants;
``sound_halfcheetah.py`` is HalfCheetah-v5's own reward written in the contract.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import mlp_policy

from rewardgen.inspect.debug import DebugError, DebugReport, analyse, debug_reward
from rewardgen.tasks.spec import get_task

REWARDS = Path(__file__).parent / "debug_rewards"
TASK = "halfcheetah-run"
PLANTED = {  # file -> (flag code, component or None for the total)
    "dominant": ("dominant", "height"),
    "constant": ("constant", "bonus"),
    "wrong_sign": ("wrong_sign", "ctrl_cost"),
    "growth": ("unbounded_growth", "time_bonus"),
    "scale": ("scale", "posture"),
    "anti_correlated": ("anti_correlated", None),
    "nonfinite": ("nonfinite", "rate"),
}


@pytest.fixture(scope="module")
def reports() -> dict[str, DebugReport]:
    task = get_task(TASK)
    names = [*PLANTED, "sound_halfcheetah"]

    def run(name: str) -> DebugReport:
        return debug_reward((REWARDS / f"{name}.py").read_text(), task, episodes=3, max_steps=300)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(names, pool.map(run, names)))


@pytest.mark.parametrize("name", sorted(PLANTED))
@pytest.mark.slow
def test_planted_defect_is_flagged(reports, name):
    code, component = PLANTED[name]
    report = reports[name]
    assert report.flagged(code, component), report.render()
    flag = next(f for f in report.flags if f.code == code and f.component == component)
    assert flag.message and "\n" not in flag.message


@pytest.mark.slow
def test_sound_reward_has_no_flags(reports):
    report = reports["sound_halfcheetah"]
    assert report.flags == [], report.render()
    forward = next(c for c in report.components if c.name == "forward")
    assert forward.corr_step is not None and forward.corr_step > 0.99  # it *is* the fitness
    assert report.total.corr_step > 0.9
    assert report.steps == 900 and len(report.episodes) == 3


@pytest.mark.slow
def test_statistics_are_those_of_the_data(reports):
    report = reports["constant"]
    bonus = next(c for c in report.components if c.name == "bonus")
    assert bonus.mean == pytest.approx(0.5) and bonus.std == pytest.approx(0.0, abs=1e-7)
    assert bonus.constant_fraction == 1.0 and bonus.corr_step is None
    assert sum(c.share for c in report.components) == pytest.approx(1.0)
    nonfinite = next(c for c in reports["nonfinite"].components if c.name == "rate")
    assert nonfinite.nonfinite == 3  # step 1 of each episode divides by zero
    assert reports["nonfinite"].total.nonfinite == 3


@pytest.mark.slow
def test_json_and_render(reports):
    for report in reports.values():
        data = report.to_json()
        json.dumps(data, allow_nan=False)  # NaN/inf become null
        assert {"components", "total", "flags", "episodes", "steps"} <= set(data)
        text = report.render()
        for c in report.components:
            assert c.name in text
    assert "[dominant]" in reports["dominant"].render()


def test_trained_policy_rollouts_are_included():
    task = get_task(TASK)
    report = debug_reward((REWARDS / "sound_halfcheetah.py").read_text(), task,
                          policy=mlp_policy(task, seed=0, scale=0.3), episodes=2, max_steps=100)
    assert report.rollouts == ["random", "policy"]
    assert [e["kind"] for e in report.episodes] == ["random", "random", "policy", "policy"]
    forward = next(c for c in report.components if c.name == "forward")
    assert set(forward.mean_by_kind) == {"random", "policy"}


def test_broken_rewards_raise_debug_error():
    task = get_task("inverted-pendulum-balance")
    with pytest.raises(DebugError) as err:
        debug_reward("import os\ndef compute_reward(s):\n    return s.step, {}\n", task, episodes=1)
    assert err.value.stage == "static"
    bad_shape = "import torch\ndef compute_reward(s):\n    return s.qpos, {'x': s.step}\n"
    with pytest.raises(DebugError) as err:
        debug_reward(bad_shape, task, episodes=1)
    assert err.value.stage == "contract" and "shape" in str(err.value)


def test_episode_correlation_is_used_when_per_step_fitness_is_constant():
    """alive_fraction's per-step value is 1: the correlation comes from episode sums vs episode fitness."""
    lengths = [5, 10, 20, 40]
    arrays, meta = {}, {"components": ["alive", "lean"], "episodes": [], "fitness_name": "alive_fraction"}
    for i, n in enumerate(lengths):
        arrays[f"{i}/fitness"] = np.ones(n)
        arrays[f"{i}/c/0"] = np.ones(n)
        arrays[f"{i}/c/1"] = -np.linspace(0, 1, n) * (50 - n)  # longer episodes lean less
        arrays[f"{i}/total"] = arrays[f"{i}/c/0"] + arrays[f"{i}/c/1"]
        meta["episodes"].append({"kind": "random", "episode": i, "length": n, "terminated": True,
                                 "fitness": n / 1000})
    report = analyse(meta, arrays)
    alive = report.components[0]
    assert alive.corr_step is None and alive.corr_episode == pytest.approx(1.0)
    assert report.flagged("constant", "alive")


@pytest.mark.slow
def test_runs_in_the_sandbox(reports):
    layers = set(reports["sound_halfcheetah"].isolation)
    assert {"jail-process", "seccomp", "scrubbed-env", "audit-hook", "restricted-builtins"} <= layers
    hostile = (Path(__file__).parent / "hostile" / "bypass_read_shadow.py").read_text()
    with pytest.raises(DebugError) as err:
        debug_reward(hostile, get_task("inverted-pendulum-balance"), episodes=1, job_extra={"validate": False})
    assert err.value.stage == "sandbox" and "outside the allowed paths" in str(err.value)


def _growth_report(episodes: list[tuple[np.ndarray, bool]]) -> DebugReport:
    """``analyse`` of one component's per-step values, episode by episode (values, terminated)."""
    meta = {"components": ["x"], "episodes": [{"kind": "policy", "episode": i, "seed": i, "length": len(v),
                                               "terminated": t, "fitness": 0.0} for i, (v, t) in enumerate(episodes)]}
    arrays = {}
    for i, (v, _) in enumerate(episodes):
        arrays |= {f"{i}/total": v, f"{i}/c/0": v, f"{i}/fitness": np.linspace(0, 1, len(v))}
    return analyse(meta, arrays)


def test_growth_is_a_term_still_growing_at_the_end_of_full_episodes():
    steps = np.arange(300, dtype=np.float64)
    time_bonus = 0.002 * steps
    assert _growth_report([(time_bonus, False)] * 3).flagged("unbounded_growth", "x")
    assert _growth_report([(steps ** 2, False)] * 3).flagged("unbounded_growth", "x")
    # a policy that speeds up from rest and holds its pace: the velocity levels off, late steps do not dominate
    speed = 3.0 * (1 - np.exp(-steps / 40.0))
    assert not _growth_report([(speed, False)] * 3).flagged("unbounded_growth")
    # short random rollouts that fall at once beside long fast ones: pooled by step the early bins are all
    # slow, which is no growth of the term
    short = [(np.full(25, 0.05), True)] * 5
    assert not _growth_report(short + [(np.full(300, 3.0), False)] * 3).flagged("unbounded_growth")
    # a hopper that speeds up until it falls: the env ended the episodes, there are no late steps to outweigh
    assert not _growth_report([(0.02 * np.arange(146.0), True)] * 5).flagged("unbounded_growth")


@pytest.mark.slow
def test_forward_velocity_with_a_trained_hopper_is_not_growth(tmp_path):
    """The real case: plain forward velocity on hopper-hop with a policy trained a little (it speeds up
    over its episode, then falls) and random rollouts that fall at once was flagged as unbounded
    growth; it is not, and the planted time bonus still is on the same rollouts' kind of task."""
    from rewardgen import api
    from rewardgen.contract.policy import PolicyExport

    source = ("import torch\n\ndef compute_reward(s):\n    forward = s.body_linvel['torso'][:, 0]\n"
              "    alive = torch.ones_like(forward)\n    return forward + alive, {'forward': forward, 'alive': alive}\n")
    task = get_task("hopper-hop")
    out = api.train(source, task, steps=60_000, runs_dir=tmp_path)
    assert out["metrics"]["status"] == "ok"
    policy = PolicyExport.from_bytes((Path(out["run_dir"]) / "gen-000" / "cand-00" / "policy.npz").read_bytes())
    report = debug_reward(source, task, policy=policy, episodes=5)
    assert not report.flagged("unbounded_growth"), [f.message for f in report.flags]
    planted = source.replace("forward + alive,", "forward + alive + 0.002 * s.step,").replace(
        "'alive': alive}", "'alive': alive, 'time_bonus': 0.002 * s.step}")
    cheetah = get_task("halfcheetah-run")  # episodes that run to the end: the planted growth is found
    assert debug_reward(planted, cheetah, episodes=2, max_steps=300).flagged("unbounded_growth", "time_bonus")
