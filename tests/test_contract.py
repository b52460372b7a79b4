"""Broken candidates are recorded with a reason and never stop the run; fitness is out of reach."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import GOOD_PENDULUM_REWARD, cli, last_json

from rewardgen.contract.policy import PolicyExport
from rewardgen.evaluate.evaluator import evaluate_policy
from rewardgen.proposers.base import Proposal
from rewardgen.run.config import EvolveConfig
from rewardgen.run.evolve import Evolution, start_run
from rewardgen.tasks.spec import get_task

BROKEN = {
    "wrong_shape": ("import torch\ndef compute_reward(s):\n    t = torch.zeros(s.qpos.shape[0], 2)\n"
                    "    return t, {'a': t}\n", "contract", "shape"),
    "missing_dict": ("import torch\ndef compute_reward(s):\n    return torch.zeros(s.qpos.shape[0])\n",
                     "contract", "(total, components)"),
    "nan": ("import torch\ndef compute_reward(s):\n    t = torch.full((s.qpos.shape[0],), float('nan'))\n"
            "    return t, {'nan': t}\n", "contract", "non-finite"),
    "raises": ("import torch\ndef compute_reward(s):\n    return s.body_pos['no_such_body'], {}\n",
               "runtime", "no_such_body"),
    "syntax": ("def compute_reward(s)\n    return 1\n", "static", "SyntaxError"),
}


@pytest.mark.slow
def test_broken_candidates_are_recorded_not_fatal(runs_dir):
    config = EvolveConfig(task="inverted-pendulum-balance", samples=len(BROKEN) + 1, generations=1, steps=2048,
                          workers=2, eval_episodes=2)
    store = start_run(config, runs_dir)
    evo = Evolution(store)
    proposals = [Proposal(GOOD_PENDULUM_REWARD, origin="test"),
                 *(Proposal(src, origin=k) for k, (src, _, _) in BROKEN.items())]
    evo.write_generation(0, proposals, "test")
    summary = evo.run()
    assert summary["status"] == "finished"
    cands = summary["generations"][0]["candidates"]
    assert cands[0]["status"] == "ok" and cands[0]["fitness"] is not None
    for c, (name, (_, stage, fragment)) in zip(cands[1:], BROKEN.items()):
        assert c["status"] == stage, (name, c)
        assert fragment in c["error"], (name, c["error"])
        metrics = json.loads((store.cand_dir(0, c["candidate"]) / "metrics.json").read_text())
        assert metrics["fitness"] is None and metrics["traceback"]
    assert summary["best"] == {"generation": 0, "candidate": 0, "label": "g0c0", "fitness": cands[0]["fitness"]}


MUTATING_REWARD = '''
import torch

calls = 0

def compute_reward(s):
    global calls
    calls += 1
    # vandalise everything within reach: its own globals, the State tensors it was handed
    s.qpos.zero_()
    s.qvel.mul_(1000.0)
    s.body_pos["pole"].fill_(-5.0)
    s.body_up["pole"].zero_()
    alive = torch.ones_like(s.step) * (1.0 + 0.0 * calls)
    return alive, {"alive": alive}
'''


@pytest.mark.slow
def test_trusted_fitness_unaffected_by_a_reward_that_mutates_globals_and_state(runs_dir, tmp_path):
    path = tmp_path / "reward.py"
    path.write_text(MUTATING_REWARD)
    res = cli("train", str(path), "--task", "inverted-pendulum-balance", "--steps", "4096",
              "--eval-episodes", "3", "--runs-dir", str(runs_dir), "--json")
    assert res.returncode == 0, res.stderr
    out = last_json(res.stdout)
    assert out["status"] == "ok"
    # the same policy, evaluated here from its file by trusted code, gives the same fitness
    task = get_task("inverted-pendulum-balance")
    policy_file = next(runs_dir.glob("*/gen-000/cand-00/policy.npz"))
    metrics = json.loads(policy_file.with_name("metrics.json").read_text())
    again = evaluate_policy(task, PolicyExport.from_bytes(policy_file.read_bytes()), 3, metrics["evaluation"] and 10_000)
    assert again["fitness"] == out["fitness"]
    # the worker-side fitness curve was computed before the reward could vandalise the State
    curve = [e["fitness"] for e in metrics["training"]["episodes"]]
    assert curve and all(0.0 < f <= 1.0 for f in curve)
    assert np.isfinite(out["fitness"]) and 0.0 < out["fitness"] <= 1.0


def test_episode_books_kept_on_the_device_match_the_per_episode_rules():
    """BatchReward's device-side books (EpisodeFitness, returns, lengths) give every closed episode the
    value Fitness.episode_value gives its list of per-step values, for each aggregation; and a NaN
    component is reported, by name, at the next flush."""
    import pytest
    import torch

    from rewardgen.contract.reward import ContractError
    from rewardgen.tasks.fitness import EpisodeFitness, Fitness
    from rewardgen.trainers.base import BatchReward, TrainingStats

    rng = np.random.default_rng(0)
    n, horizon = 5, 7
    for aggregate, tail in (("horizon", 1), ("total", 1), ("max", 1), ("final", 3)):
        fit = Fitness("f", {}, lambda s: s, aggregate, tail=tail)
        books, open_lists, closed = EpisodeFitness(fit, n, horizon), [[] for _ in range(n)], []
        for _ in range(40):
            v = rng.normal(size=n)
            books.add(torch.as_tensor(v))
            for i in range(n):
                open_lists[i].append(float(v[i]))
            done = rng.random(n) < 0.2
            values = books.value().numpy()
            for i in np.flatnonzero(done):
                closed.append((values[i], fit.episode_value(open_lists[i], horizon)))
                open_lists[i] = []
            books.close(torch.as_tensor(done))
        assert len(closed) > 10
        np.testing.assert_allclose(*np.asarray(closed).T, atol=1e-12, err_msg=aggregate)

    task = get_task("inverted-pendulum-balance")
    from rewardgen.contract.state import StateBuffers
    from rewardgen.tasks.fitness import make_fitness

    env = task.make_env()
    env.reset(seed=0)
    buffers = StateBuffers(task.schema, env.unwrapped.model, 2)
    for i in range(2):
        buffers.fill(i, env.unwrapped.data, np.zeros(1), 1)

    def nan_later(s):
        bad = torch.full((2,), float("nan")) if s.step[0] > 2 else torch.zeros(2)
        return torch.ones(2), {"fine": torch.ones(2), "broken": bad}

    reward = BatchReward(nan_later, make_fitness(task.fitness, task.schema), TrainingStats(10), 2, task.episode_length)
    for step in (1, 2):
        out = reward(buffers.to_state(), step)
        assert out.tolist() == [1.0, 1.0]
        reward.end_episodes(np.array([step == 2, False]), step)
    reward.flush()
    assert reward.stats.episode_returns == [2.0]  # world 0's episode: two steps of reward 1
    for i in range(2):
        buffers.fill(i, env.unwrapped.data, np.zeros(1), 3)
    reward(buffers.to_state(), 3)  # no error yet: the check waits for the flush
    with pytest.raises(ContractError, match="component 'broken' has 2 non-finite"):
        reward.flush()
