"""Human feedback steers the next generation: offline parents, LLM prompts, interactive evolve."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from llm_server import ScriptedServer

from rewardgen.run import feedback
from rewardgen.run.config import EvolveConfig, UserReach
from rewardgen.run.evolve import Evolution, resume, start_run
from rewardgen.store import RunStore

PENDULUM = '''```python
import torch

def compute_reward(s):
    alive = torch.ones_like(s.step)
    up = s.body_up["pole"][:, 2]
    return alive + up, {"alive": alive, "upright": up}
```'''


def _one_generation(runs_dir: Path, **kw) -> RunStore:
    config = EvolveConfig(task="inverted-pendulum-balance", samples=3, generations=1, steps=1024, schedule="full",
                          video=False, eval_episodes=1, **kw)
    store = start_run(config, runs_dir)
    Evolution(store).run()
    return store


def _one_more_generation(store: RunStore) -> None:
    run = store.read_run()
    run["config"]["generations"] += 1
    run["status"] = "queued"
    store.write_run(run)
    # the endpoint comes from the user, not the run: the same one again, named
    resume(store.path, reach=UserReach(base_url=run["config"].get("base_url")))


@pytest.mark.slow
def test_offline_proposer_takes_the_preferred_candidate_as_parent(runs_dir):
    store = _one_generation(runs_dir, llm="offline")
    fits = {c["candidate"]: c["fitness"] for c in store.read_run()["generations"][0]["candidates"]}
    preferred = min(fits, key=fits.get)  # deliberately not the fitness winner
    worst = max(fits, key=fits.get)
    feedback.add_preference(store.path, 0, best=preferred, worst=worst)
    feedback.add_text(store.path, "it is shaky and jitters a lot")
    _one_more_generation(store)
    gen1 = store.read_generation(1)
    parents = [c["parent"] for c in gen1["candidates"]]
    assert parents[0] == f"g0c{preferred}"
    assert f"g0c{worst}" not in parents  # the disliked candidate is never a parent
    assert any("smoother motion" in n for c in gen1["candidates"] for n in c["notes"])


@pytest.mark.slow
def test_llm_prompt_carries_feedback_text_and_preference(runs_dir):
    with ScriptedServer(lambda body, i: {"texts": [PENDULUM] * body.get("n", 1)}) as server:
        store = _one_generation(runs_dir, llm="openai", base_url=server.base_url, model="scripted")
        feedback.add_text(store.path, "the cart slides off to the right edge", candidate="0/1")
        feedback.add_preference(store.path, 0, best=2, worst=0)
        _one_more_generation(store)
        prompts = [b["messages"][-1]["content"] for b in server.requests if len(b["messages"]) == 2]
        last = prompts[-1]
        assert "the cart slides off to the right edge" in last
        assert "preferred candidate g0c2" in last and "g0c0 least" in last
        assert "Code of candidate g0c2" in last
        assert store.read_generation(1)["candidates"][0]["parent"] is not None


@pytest.mark.slow
def test_interactive_evolve_takes_feedback_from_the_terminal(runs_dir):
    answers = "make the pole swing less\n1\n0\n"
    proc = subprocess.run(
        [sys.executable, "-m", "rewardgen", "evolve", "--task", "inverted-pendulum-balance", "--samples", "2",
         "--generations", "2", "--steps", "1024", "--schedule", "full", "--no-video", "--eval-episodes", "1",
         "--interactive", "--runs-dir", str(runs_dir), "--json"],
        cwd=ROOT, input=answers, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = Path(json.loads(proc.stdout.strip().splitlines()[-1])["run_dir"])
    items = feedback.load(run_dir)
    assert [i["kind"] for i in items] == ["text", "preference"]
    assert items[0]["text"] == "make the pole swing less" and items[0]["applies_to"] == 1
    assert items[1]["best"] == 1 and items[1]["worst"] == 0
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert store_parent(run_dir) == "g0c1"


def store_parent(run_dir: Path) -> str:
    return RunStore.open(run_dir).read_generation(1)["candidates"][0]["parent"]
