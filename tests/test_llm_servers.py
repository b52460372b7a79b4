"""Real server behaviours (issue 19), each through the real openai client against a scripted
OpenAI-compatible server on 127.0.0.1: the client adapts where the server says how, fails fast where
retrying cannot help, and names the cause in one line on the candidate, in the summary and on stderr."""

from __future__ import annotations

import json
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
```'''
SOURCE = extract_code(GOOD)
NAN = ("```python\nimport torch\n\ndef compute_reward(s):\n    bad = s.step * float('nan')\n"
       "    return bad, {'bad': bad}\n```")


@pytest.fixture
def task():
    return get_task("inverted-pendulum-balance")


class Events:
    def __init__(self):
        self.items: list[tuple[str, dict]] = []

    def __call__(self, kind: str, **data) -> None:
        self.items.append((kind, data))

    def warnings(self) -> list[str]:
        return [d["message"] for k, d in self.items if k == "warning"]


def _ctx(task, run_dir: Path, samples: int = 2, generation: int = 0, history=None, events=None) -> ProposalContext:
    return ProposalContext(task=task, schema=task.schema, generation=generation, samples=samples, seed=0,
                           history=history or [], run_dir=run_dir, record_dir=run_dir / f"gen-{generation}" / "llm",
                           check=lambda src: check_reward(src, task, steps=64), event=events)


def _proposer(url: str, **kw) -> LLMProposer:
    settings = LLMSettings(model=kw.pop("model", "scripted-model"), base_url=url, timeout=10.0,
                           max_retries=kw.pop("max_retries", 3), temperature=kw.pop("temperature", 1.0))
    return LLMProposer(settings, **kw)


def _ok(body: dict) -> dict:
    return {"texts": [GOOD] * body.get("n", 1)}


def _has_system(body: dict) -> bool:
    return any(m["role"] == "system" for m in body["messages"])


# ----- adapting where the server says how
@pytest.mark.parametrize("error", [
    {"message": "Unsupported value: 'temperature' does not support 0.7 with this model. Only the default (1) value "
                "is supported.", "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"},
    {"message": "temperature: only the default value 1 is supported by this model"},  # no param field
])
def test_rejected_temperature_is_dropped_said_and_remembered(task, tmp_path, error):
    def responder(body, i):
        return {"status": 400, **error} if body.get("temperature", 1) != 1 else _ok(body)

    events = Events()
    with ScriptedServer(responder) as server:
        props = _proposer(server.base_url, temperature=0.7).propose(_ctx(task, tmp_path, events=events))
        assert [p.error for p in props] == [None, None]
        assert server.requests[0]["temperature"] == 0.7
        assert all("temperature" not in b for b in server.requests[1:])
        assert any("rejected temperature=0.7" in w and "without it" in w for w in events.warnings())
        # the next generation (a new proposer, as in a run) asks without it from the first request
        before = len(server.requests)
        props = _proposer(server.base_url, temperature=0.7).propose(_ctx(task, tmp_path, generation=1))
        assert [p.error for p in props] == [None, None]
        assert all("temperature" not in b for b in server.requests[before:])
        assert len(server.requests) == before + 1


@pytest.mark.parametrize("wording", [
    "System role not supported",  # Gemma's chat template through llama.cpp
    "Conversation roles must alternate user/assistant/user/assistant/...",  # Mistral's template
])
def test_refused_system_role_is_folded_into_the_user_message(task, tmp_path, wording):
    def responder(body, i):
        return {"status": 400, "message": wording} if _has_system(body) else _ok(body)

    events = Events()
    with ScriptedServer(responder) as server:
        props = _proposer(server.base_url).propose(_ctx(task, tmp_path, events=events))
        assert [p.error for p in props] == [None, None]
        folded = server.requests[1]["messages"]
        assert [m["role"] for m in folded] == ["user"]
        assert folded[0]["content"].index("reward contract") < folded[0]["content"].index("hinge")
        assert any("refused the system role" in w for w in events.warnings())
        assert len(server.requests) == 2


def test_context_length_uses_a_compact_prompt_that_is_much_shorter(task, tmp_path):
    """Generation 1's prompt (best code, component table, episodes, trajectories) is over the server's
    context; llama.cpp's wording is recognised; the compact prompt keeps the task and the contract."""
    points = [{"step": 1000 * k, "mean": 0.1 * k, "min": 0.0, "max": 1.0} for k in range(12)]
    stats = {"components": {name: points for name in ("alive", "upright", "ctrl", "center", "velocity")},
             "episodes": [{"step": 1000 * k, "episodes": k, "length": 50.0 + k, "return": 3.0 * k, "fitness": 0.1}
                          for k in range(12)],
             "reward_fitness_correlation": 0.5,
             "trajectories": {w: {"fitness": 0.5, "summary": "the pole " + "swayed left and right, " * 20}
                              for w in ("best", "worst")}}
    long_source = SOURCE + "".join(f"\n\ndef _helper_{k}(s):\n    return s.qpos[:, 0] * {k}\n" for k in range(25))
    history = [[CandidateRecord(0, c, source=long_source, status="ok", fitness=0.1 * (c + 1),
                                proposal={"parent": None}, stats=stats) for c in range(3)]]
    limit = {}

    def responder(body, i):
        size = len(json.dumps(body["messages"]))
        if size > limit["chars"]:
            return {"status": 400, "body": {"error": {
                "code": 400, "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error", "n_prompt_tokens": size // 4, "n_ctx": limit["chars"] // 4}}}
        return _ok(body)

    proposer = _proposer("http://unused")
    ctx = _ctx(task, tmp_path, generation=1, history=history)
    full = len(json.dumps(proposer.messages(ctx)))
    compact = len(json.dumps(proposer.messages(ctx, compact=True)))
    assert compact < 0.5 * full, (compact, full)
    limit["chars"] = compact + 3000  # the fix conversation of a sample still fits
    events = Events()
    with ScriptedServer(responder) as server:
        props = _proposer(server.base_url, max_retries=0).propose(
            _ctx(task, tmp_path, generation=1, history=history, events=events))
        assert [p.error for p in props] == [None, None]
        sent = server.requests[1]["messages"]
        text = "\n".join(m["content"] for m in sent)
        assert "reward contract" in text and "hinge" in text  # the task and the contract are kept
        assert "_helper_3" not in text and "swayed" not in text and "velocity" in text  # no code, no trajectories
        assert any("longer than the model's context" in w and "compact" in w for w in events.warnings())
        # remembered: the next generation starts compact, with no failed request first
        before = len(server.requests)
        _proposer(server.base_url).propose(_ctx(task, tmp_path, generation=2, history=history))
        assert len(server.requests) > before
        assert len(json.dumps(server.requests[before]["messages"])) <= limit["chars"]

    limit["chars"] = 100  # nothing fits: the cause and what to change are named
    with ScriptedServer(responder) as server:
        proposer = _proposer(server.base_url, max_retries=0)
        props = proposer.propose(_ctx(task, tmp_path / "tiny", generation=1, history=history))
        assert all("context" in p.error and "--ctx-size" in p.error for p in props)
        assert "generation 1 failed" in proposer.failure


def test_answers_cut_by_the_output_limit_are_asked_again_with_room(task, tmp_path):
    cut = GOOD[:120]  # a cut answer: the code does not parse

    def responder(body, i):
        if (body.get("max_tokens") or 0) >= 4096 and "cut off by the output limit" in body["messages"][-1]["content"]:
            return _ok(body)
        return {"texts": [cut] * body.get("n", 1), "finish_reason": "length", "completion_tokens": 1024}

    events = Events()
    with ScriptedServer(responder) as server:
        props = _proposer(server.base_url).propose(_ctx(task, tmp_path, events=events))
        assert [p.error for p in props] == [None, None] and all(p.extra["fixes"] == 0 for p in props)
        assert any("cut by the output limit" in w and "max_tokens=4096" in w for w in events.warnings())

    def always_cut(body, i):
        return {"texts": [cut] * body.get("n", 1), "finish_reason": "length", "completion_tokens": 1024}

    with ScriptedServer(always_cut) as server:
        proposer = _proposer(server.base_url, generation_retries=0)
        props = proposer.propose(_ctx(task, tmp_path / "always"))
        assert all("cut by the output limit" in p.error and "finish_reason length" in p.error for p in props)
        assert max(b.get("max_tokens", 0) for b in server.requests) > 4096  # a larger budget was tried too
        assert "all 2 LLM samples of generation 0 failed: every answer was cut" in proposer.failure


def test_a_server_that_cuts_every_first_answer_is_asked_in_a_follow_up_turn(task, tmp_path):
    """The quirk a real relay showed: every first-turn answer is cut at the server's own limit, whatever
    max_tokens says, but a follow-up turn is answered whole. The cut answer goes back as the model's
    turn and the follow-up asks for only the code."""
    cut = GOOD[:150]

    def responder(body, i):
        if len(body["messages"]) > 2:  # a follow-up turn
            return _ok(body)
        return {"texts": [cut] * body.get("n", 1), "finish_reason": "length", "completion_tokens": 700 + i}

    events = Events()
    with ScriptedServer(responder) as server:
        props = _proposer(server.base_url).propose(_ctx(task, tmp_path, samples=4, events=events))
        assert [p.error for p in props] == [None] * 4 and all("def _upright" in p.source for p in props)
        follow_ups = [b for b in server.requests if len(b["messages"]) > 2]
        assert len(follow_ups) == 4
        for body in follow_ups:
            assert body["messages"][-2] == {"role": "assistant", "content": cut}
            assert "cut off by the output limit" in body["messages"][-1]["content"]
            assert "only the code" in body["messages"][-1]["content"]
        assert any("follow-up turn" in w for w in events.warnings())

    def never_whole(body, i):  # every answer cut, each at another length: the line still counts all of them
        return {"texts": [cut] * body.get("n", 1), "finish_reason": "length", "completion_tokens": 500 + i}

    with ScriptedServer(never_whole) as server:
        proposer = _proposer(server.base_url, generation_retries=0)
        props = proposer.propose(_ctx(task, tmp_path / "never", samples=4))
        assert all(p.error and "even when asked in a follow-up turn" in p.error for p in props)
        assert proposer.failure.startswith("all 4 LLM samples of generation 0 failed: every answer was cut")


# ----- failing fast where retrying cannot help
@pytest.mark.parametrize("spec, fragment", [
    ({"status": 401, "message": "Incorrect API key provided: sk-wrong.", "type": "invalid_request_error",
      "code": "invalid_api_key"}, "401 the API key was refused"),
    ({"status": 403, "message": "Project does not have access to model scripted-model"}, "403 access denied"),
    ({"status": 429, "message": "You exceeded your current quota, please check your plan and billing details.",
      "type": "insufficient_quota", "code": "insufficient_quota"}, "429 insufficient_quota"),
    ({"status": 404, "message": "The model `scripted-model` does not exist or you do not have access to it.",
      "code": "model_not_found"}, "404 the server does not know model 'scripted-model'"),
])
def test_unfixable_errors_fail_fast_and_are_named(task, tmp_path, spec, fragment):
    with ScriptedServer(lambda body, i: spec) as server:
        proposer = _proposer(server.base_url)
        props = proposer.propose(_ctx(task, tmp_path, samples=4))
        assert len(server.requests) == 1  # no retries, no generation retry, no request per sample
        assert all(fragment in p.error for p in props)
        assert proposer.failure.startswith(f"all 4 LLM samples of generation 0 failed: {fragment}")


# ----- where code hides in real answers
def test_think_blocks_tool_calls_and_reasoning_fields(task, tmp_path):
    thinking = ("<think>First the imports:\n```python\nimport numpy as np\n```\nA draft:\n```python\n"
                "def compute_reward(s):\n    return s.qpos, {}\n```\n</think>\n")
    broken = "```python\ndef compute_reward(s)\n    return s.step, {}\n```"

    def responder(body, i):
        if len(body["messages"]) > 2:  # the fix request
            return _ok(body)
        return {"texts": [thinking + GOOD, thinking + broken][: body.get("n", 1)]}

    with ScriptedServer(responder) as server:
        props = _proposer(server.base_url).propose(_ctx(task, tmp_path))
        assert props[0].error is None and props[0].extra["fixes"] == 0 and "numpy" not in props[0].source
        assert props[1].error is None and props[1].extra["fixes"] == 1
        fix = next(b for b in server.requests if len(b["messages"]) > 2)
        assert "<think>" not in fix["messages"][2]["content"] and "import numpy" not in fix["messages"][2]["content"]

    def elsewhere(body, i):
        return {"texts": ["", ""][: body.get("n", 1)], "reasoning": [GOOD, "I think it should reward uprightness."],
                "tool_args": ['{"code": "ignored"}', json.dumps({"code": SOURCE})]}

    with ScriptedServer(elsewhere) as server:
        props = _proposer(server.base_url).propose(_ctx(task, tmp_path / "fields"))
        assert [p.error for p in props] == [None, None]
        assert "reasoning" in props[0].notes[0] and "tool calls" in props[1].notes[0]


def test_an_empty_choice_among_several_is_asked_again(task, tmp_path):
    events = Events()

    def responder(body, i):
        return {"texts": [GOOD, ""]} if body.get("n", 1) == 2 else _ok(body)

    with ScriptedServer(responder) as server:
        props = _proposer(server.base_url).propose(_ctx(task, tmp_path, events=events))
        assert [p.error for p in props] == [None, None]
        assert [b.get("n") for b in server.requests] == [2, 1]
    status = [d for k, d in events.items if k == "llm_status"]
    assert status and max(d["in_flight"] for d in status) >= 1 and status[-1]["in_flight"] == 0


def test_request_failures_are_not_fed_back_as_reward_failures(task, tmp_path):
    history = [[CandidateRecord(0, 0, source="", status="proposal", fitness=None,
                                error="LLM request failed: 400 the server refused the system role",
                                proposal={"failure": "system_role"}),
                CandidateRecord(0, 1, source="", status="proposal", fitness=None,
                                error="LLM request failed: the model returned an empty answer twice",
                                proposal={"failure": "empty"})]]
    proposer = _proposer("http://unused")
    ctx = _ctx(task, tmp_path, generation=1, history=history)
    assert proposer.reflection(ctx) is None
    text = proposer.messages(ctx)[-1]["content"]
    assert "simpler reward" not in text and "system role" not in text
    history[0].append(CandidateRecord(0, 2, source="x", status="runtime", fitness=None, error="NaN in the reward"))
    assert "NaN in the reward" in proposer.reflection(_ctx(task, tmp_path, generation=1, history=history))


# ----- the run: a clear end, never a silent exit 0
def _evolve(server, runs_dir, *more):
    return cli("evolve", "--task", "inverted-pendulum-balance", "--llm", "openai", "--base-url", server.base_url,
               "--model", "scripted-model", "--samples", "2", "--generations", "1", "--steps", "1000",
               "--eval-episodes", "1", "--no-video", "--runs-dir", str(runs_dir), *more)


@pytest.mark.slow
def test_a_run_stopped_by_the_endpoint_exits_1_names_the_cause_and_resumes(runs_dir):
    state = {"key_ok": False}

    def responder(body, i):
        if not state["key_ok"]:
            return {"status": 401, "message": "Incorrect API key provided.", "code": "invalid_api_key"}
        return _ok(body)

    with ScriptedServer(responder) as server:
        res = _evolve(server, runs_dir, "--json")
        assert res.returncode == 1, res.stderr
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith("rewardgen: the run stopped: all 2 LLM samples of generation 0 failed: "
                               "401 the API key was refused") and "OPENAI_API_KEY" in last
        assert f"rewardgen resume {out_dir(res)} --base-url {server.base_url}" in last  # the command to continue
        assert "train.log" not in res.stderr and len(server.requests) == 1
        out = last_json(res.stdout)
        run = json.loads((Path(out["run_dir"]) / "run.json").read_text())
        assert run["status"] == "failed" and "401" in run["error"] and out["error"] == run["error"]
        assert not (Path(out["run_dir"]) / "gen-000" / "generation.json").exists()

        state["key_ok"] = True  # the key is fixed: resume asks generation 0 again and trains it
        res = cli("resume", out["run_dir"], "--json")  # the endpoint is named again, or the run is refused
        assert res.returncode == 2 and "--use-run-endpoint" in res.stderr and len(server.requests) == 1
        res = cli("resume", out["run_dir"], "--base-url", server.base_url, "--json")
        assert res.returncode == 0, res.stderr[-2000:]
        assert last_json(res.stdout)["best"] is not None
        records = sorted(p.name for p in (Path(out["run_dir"]) / "gen-000" / "llm").glob("*.json"))
        assert records[0].startswith("001-") and len(records) >= 2  # the failed request's record was kept


@pytest.mark.slow
def test_no_key_for_openai_is_one_line_before_any_run(runs_dir):
    res = cli("evolve", "--task", "inverted-pendulum-balance", "--llm", "openai", "--runs-dir", str(runs_dir))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "OPENAI_API_KEY is not set" in lines[0] and "--base-url" in lines[0]
    assert "train.log" not in lines[0] and list(runs_dir.iterdir()) == []


@pytest.mark.slow
def test_a_run_where_no_candidate_trained_exits_1_with_the_dominant_cause(runs_dir):
    with ScriptedServer(lambda body, i: {"texts": [NAN] * body.get("n", 1)}) as server:
        res = _evolve(server, runs_dir)
    assert res.returncode == 1, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("rewardgen: no candidate of the 2 trained successfully: 2 were never usable rewards")
    assert "non-finite" in last and "Traceback" not in res.stderr


def out_dir(res) -> str:
    """The run directory a ``--json`` command printed last."""
    return last_json(res.stdout)["run_dir"]
