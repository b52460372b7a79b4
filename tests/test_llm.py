"""The LLM proposer against a real local OpenAI-compatible server, through the real openai client."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import cli, last_json
from llm_server import ScriptedServer

from rewardgen.procs.check import check_reward
from rewardgen.proposers.base import CandidateRecord, ProposalContext
from rewardgen.proposers.client import LLMSettings
from rewardgen.proposers.extract import extract_code
from rewardgen.proposers.llm import LLMProposer
from rewardgen.tasks.spec import get_task

GOOD = '''```python
import torch

def _upright(s):
    return s.body_up["pole"][:, 2]

def compute_reward(s):
    alive = torch.ones_like(s.step)
    up = _upright(s)
    return alive + up, {"alive": alive, "upright": up}
```
The upright term keeps the pole vertical.'''

ODD = '''Sure. Here is my reward function, no fences:
import torch
import math

def compute_reward(s):
    tilt = s.joint_pos["hinge"].abs()
    bonus = torch.exp(-tilt / 0.1) * math.pi
    return bonus, {"bonus": bonus}

It pays most when the hinge angle is zero.'''

SYNTAX = "```python\ndef compute_reward(s)\n    return s.step, {}\n```"
NAN = ("```python\nimport torch\n\ndef compute_reward(s):\n    bad = s.step * float('nan')\n"
       "    return bad, {'bad': bad}\n```")
PROSE = "I'd reward staying upright and alive."


@pytest.fixture
def task():
    return get_task("inverted-pendulum-balance")


def _ctx(task, tmp_path: Path, samples: int = 4, generation: int = 0, history=None) -> ProposalContext:
    return ProposalContext(task=task, schema=task.schema, generation=generation, samples=samples, seed=0,
                           history=history or [], run_dir=tmp_path, record_dir=tmp_path / "llm",
                           check=lambda src: check_reward(src, task, steps=64))


def _proposer(url: str, **kw) -> LLMProposer:
    settings = LLMSettings(model="scripted-model", base_url=url, timeout=kw.pop("timeout", 10.0),
                           max_retries=kw.pop("max_retries", 3))
    return LLMProposer(settings, **kw)


def _is_fix(body: dict) -> bool:
    return len(body["messages"]) > 2


def test_extraction_keeps_helpers_and_drops_prose():
    code = extract_code(GOOD)
    assert "def _upright" in code and "def compute_reward" in code and "keeps the pole" not in code
    code = extract_code(ODD)
    assert code.startswith("import torch") and "It pays most" not in code and "Sure." not in code
    two = "First:\n```python\ndef helper(s):\n    return s.step\n```\nThen:\n```python\ndef compute_reward(s):\n" \
          "    h = helper(s)\n    return h, {'h': h}\n```\nDone."
    code = extract_code(two)
    assert "def helper" in code and "def compute_reward" in code
    assert extract_code(PROSE) is None and extract_code("") is None


def test_good_odd_broken_samples_are_fixed_and_recorded(task, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-123")

    def responder(body, i):
        if _is_fix(body):  # a fix request: the error went back to the model
            return {"texts": [GOOD]}
        return {"texts": [GOOD, ODD, SYNTAX, NAN][: body.get("n", 1)]}

    with ScriptedServer(responder) as server:
        proposer = _proposer(server.base_url)
        props = proposer.propose(_ctx(task, tmp_path))
        assert [p.error for p in props] == [None] * 4
        assert "def _upright" in props[0].source  # helpers kept
        assert "math.pi" in props[1].source
        assert props[2].extra["fixes"] == 1 and "static" in props[2].notes[0]
        assert props[3].extra["fixes"] == 1 and "non-finite" in props[3].notes[0]
        fixes = [b for b in server.requests if _is_fix(b)]
        assert len(fixes) == 2
        assert any("SyntaxError" in b["messages"][-1]["content"] for b in fixes)
        assert any("non-finite" in b["messages"][-1]["content"] for b in fixes)
        first = server.requests[0]
        assert first["n"] == 4 and first["model"] == "scripted-model"
        assert "reward contract" in first["messages"][0]["content"]
        assert "hinge" in first["messages"][1]["content"]  # the derived schema
        assert proposer.usage["prompt_tokens"] > 0 and proposer.usage["requests"] == 3

        # records: every request and response, never the key
        records = sorted((tmp_path / "llm").glob("*.json"))
        assert len(records) == 3
        everything = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
        assert "sk-test-secret-123" not in everything

        # the same generation again is served from the cache: nothing is paid twice
        before = len(server.requests)
        again = _proposer(server.base_url).propose(_ctx(task, tmp_path))
        assert len(server.requests) == before
        assert [p.source for p in again] == [p.source for p in props]


def test_server_that_ignores_n_gets_concurrent_requests(task, tmp_path):
    with ScriptedServer(lambda body, i: {"texts": [GOOD] * 4, "ignore_n": True}) as server:
        props = _proposer(server.base_url).propose(_ctx(task, tmp_path, samples=3))
        assert len(props) == 3 and all(p.error is None for p in props)
        assert len(server.requests) == 3  # one n=3 answered with 1 choice, then 2 single requests


@pytest.mark.parametrize("failures", [
    [{"status": 429, "retry_after": "0"}],
    [{"status": 500}, {"status": 503}],
])
def test_rate_limits_and_server_errors_are_retried(task, tmp_path, failures):
    def responder(body, i):
        return failures[i] if i < len(failures) else {"texts": [GOOD] * body.get("n", 1)}

    with ScriptedServer(responder) as server:
        props = _proposer(server.base_url).propose(_ctx(task, tmp_path, samples=2))
        assert all(p.error is None for p in props)
        assert len(server.requests) == len(failures) + 1


def test_hangs_empty_answers_and_refused_connections_fail_samples_not_the_run(task, tmp_path):
    with ScriptedServer(lambda body, i: {"hang": 2.0}) as server:
        proposer = LLMProposer(LLMSettings(base_url=server.base_url, timeout=0.5, max_retries=1),
                               generation_retries=0)
        props = proposer.propose(_ctx(task, tmp_path / "hang", samples=2))
        assert all(p.error and "timed out" in p.error for p in props)
    with ScriptedServer(lambda body, i: {"texts": [""] * body.get("n", 1)}) as server:
        props = _proposer(server.base_url, generation_retries=1).propose(_ctx(task, tmp_path / "empty", samples=2))
        assert all(p.error and "empty" in p.error for p in props)
        # each empty choice is asked for once more (2), then the generation once more (3 again), then reported
        assert len(server.requests) == 6 and sum(b.get("n", 1) for b in server.requests) == 8
    with ScriptedServer(lambda body, i: {"texts": [PROSE] * body.get("n", 1)}) as server:
        props = _proposer(server.base_url, generation_retries=0).propose(_ctx(task, tmp_path / "prose", samples=1))
        assert "no compute_reward" in props[0].error
        assert any("no `def compute_reward(s)`" in b["messages"][-1]["content"] for b in server.requests[1:])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    props = _proposer(f"http://127.0.0.1:{port}/v1", max_retries=0, generation_retries=0).propose(
        _ctx(task, tmp_path / "refused", samples=1))
    assert "cannot reach" in props[0].error


def test_context_length_error_shrinks_the_prompt(task, tmp_path):
    def responder(body, i):
        if i == 0:
            return {"status": 400, "code": "context_length_exceeded"}
        return {"texts": [GOOD] * body.get("n", 1)}

    history = [[CandidateRecord(0, c, source=extract_code(GOOD), status="ok", fitness=0.1 * (c + 1),
                                proposal={"parent": None}, stats={"components": {}}) for c in range(3)]]
    with ScriptedServer(responder) as server:
        props = _proposer(server.base_url, max_retries=0).propose(_ctx(task, tmp_path, samples=2, generation=1,
                                                                       history=history))
        assert all(p.error is None for p in props)
        full, compact = (len(json.dumps(server.requests[k]["messages"])) for k in (0, 1))
        assert compact < full


def test_llm_critic_rejection_goes_back_to_the_model(task, tmp_path):
    reviews = []

    def responder(body, i):
        text = body["messages"][-1]["content"]
        if text.startswith("Review this reward"):
            reviews.append(text)
            return {"texts": ["REJECT: the upright term has the wrong sign"] if len(reviews) == 1 else ["APPROVE"]}
        return {"texts": [GOOD] * body.get("n", 1)}

    with ScriptedServer(responder) as server:
        props = _proposer(server.base_url, critic="llm").propose(_ctx(task, tmp_path, samples=1))
        assert props[0].error is None and props[0].extra["fixes"] == 1
        assert any("wrong sign" in b["messages"][-1]["content"] for b in server.requests if _is_fix(b))


CHEETAH = '''```python
import torch

def compute_reward(s):
    forward = s.body_linvel["torso"][:, 0]
    ctrl = -0.1 * (s.action ** 2).sum(dim=-1)
    return forward + ctrl, {"forward": forward, "ctrl": ctrl}
```'''


@pytest.mark.slow
def test_evolve_with_llm_reflects_and_replays(runs_dir, tmp_path):
    """The issue's command (on a small budget: the reflection and the replay do not depend on it): 2
    generations against a local server; gen 1 sees gen 0's reflection."""
    with ScriptedServer(lambda body, i: {"texts": [CHEETAH] * body.get("n", 1)}) as server:
        res = cli("evolve", "--task", "halfcheetah-run", "--llm", "openai", "--base-url", server.base_url,
                  "--model", "scripted-model", "--samples", "2", "--generations", "2", "--steps", "8000",
                  "--trainer", "ppo", "--eval-episodes", "1", "--no-video", "--runs-dir", str(runs_dir), "--json",
                  timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        out = last_json(res.stdout)
        assert "LLM proposer (scripted-model" in res.stderr
        gen1 = [b for b in server.requests if "generation 0 is the newest" in b["messages"][-1]["content"]]
        assert gen1, "the second generation's request carried no reflection"
        prompt = gen1[0]["messages"][-1]["content"]
        run = json.loads((Path(out["run_dir"]) / "run.json").read_text())
        best0 = run["generations"][0]["best"]
        assert "forward" in prompt and "ctrl" in prompt and f"{best0['fitness']:.4g}" in prompt
        assert run["tokens"]["prompt_tokens"] > 0 and run["generations"][1]["tokens"]["requests"] >= 1
    # the server is gone: replaying the run needs no network and proposes the same code
    res = cli("evolve", "--replay", out["run_dir"], "--runs-dir", str(runs_dir), "--json", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    replay = Path(last_json(res.stdout)["run_dir"])
    for src in Path(out["run_dir"]).glob("gen-*/cand-*/reward.py"):
        twin = replay / src.relative_to(out["run_dir"])
        assert twin.read_text() == src.read_text()
