"""Parameter mode: a reward template with bounded weights/targets, validated proposals, rendered source."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import pytest

from rewardgen.procs.check import check_reward
from rewardgen.proposers.base import CandidateRecord, ProposalContext
from rewardgen.proposers.offline import OfflineProposer
from rewardgen.proposers.params import (
    ParamsError,
    RewardTemplate,
    render_params,
    reward_template,
    template_prompt,
    validate_params,
)
from rewardgen.sandbox.validate import validate_source
from rewardgen.tasks.spec import get_task, list_tasks


@pytest.fixture(scope="module")
def backflip() -> tuple:
    task = get_task("halfcheetah-backflip")
    return task, reward_template(task)


def _error(template: RewardTemplate, obj) -> ParamsError:
    with pytest.raises(ParamsError) as err:
        validate_params(template, obj)
    return err.value


def test_out_of_bounds_values_are_rejected_with_the_bounds(backflip):
    _, tpl = backflip
    hi = tpl.terms["spin"].weight.hi
    err = _error(tpl, {"spin": {"weight": hi * 2}})
    assert f"term 'spin': weight {hi * 2:g} is out of bounds [0, {hi:g}]" in str(err)
    assert len(err.problems) == 1
    err = _error(tpl, {"spin": 1.0, "track_spin": {"weight": 1.0, "target_spin": 99}})
    assert "target target_spin 99 is out of bounds [0, 20] rad/s" in str(err)
    err = _error(tpl, {"spin": -0.5})
    assert "out of bounds" in str(err)
    for bad in (True, float("nan"), float("inf"), "1.0", None):
        err = _error(tpl, {"spin": {"weight": bad}})
        assert "must be a finite number" in str(err), bad
    assert isinstance(err, ValueError)


def test_unknown_terms_and_keys_are_rejected_listing_what_is_allowed(backflip):
    _, tpl = backflip
    err = _error(tpl, {"spin": 1.0, "speed": 2.0, "track_spin": {"weight": 1.0, "target_speed": 3.0}})
    msg = str(err)
    assert f"unknown term 'speed'; allowed terms: {', '.join(tpl.terms)}" in msg
    assert "term 'track_spin': unknown key 'target_speed'; allowed keys: weight, target_spin" in msg
    assert len(err.problems) == 2
    # the message ends with every allowed term and its bounds, for feeding back to an LLM
    for key, term in tpl.terms.items():
        assert f"  {key}" in msg and term.weight.describe() in msg
    assert "missing 'weight'" in str(_error(tpl, {"spin": {"target_spin": 1.0}}))
    assert "no goal term has a positive weight" in str(_error(tpl, {"ctrl": 0.1}))
    assert "no goal term" in str(_error(tpl, {"spin": 0.0, "ctrl": 0.1}))
    assert "not valid JSON" in str(_error(tpl, "{spin: 1"))
    assert "must be a JSON object" in str(_error(tpl, [1, 2]))


def test_valid_params_normalise_and_render_to_source_check_reward_accepts(backflip):
    task, tpl = backflip
    params = validate_params(tpl, json.dumps({"terms": {"track_spin": {"weight": 2}, "spin": 1, "ctrl": 0.05}}))
    assert list(params) == [k for k in tpl.terms if k in params]  # template order
    assert params["track_spin"] == {"weight": 2.0, "target_spin": tpl.terms["track_spin"].targets["target_spin"].default}
    source = render_params(tpl, params)
    assert validate_source(source) == []
    ant = get_task("ant-circle")
    ant_tpl = reward_template(ant)
    ant_source = render_params(ant_tpl, {"orbit": 1.0, "track_orbit": {"weight": 0.5, "target_speed": 0.8},
                                         "posture": {"weight": 0.2, "target_height": 0.6}, "ctrl": 0.02})
    assert "0.8" in ant_source and "0.6" in ant_source
    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(lambda args: check_reward(*args), [(source, task), (ant_source, ant)]))
    for v in verdicts:
        assert v.ok, v.explain()
    assert verdicts[0].components == sorted(["track_spin", "spin", "ctrl"])
    assert set(verdicts[1].components) == {"orbit", "track_orbit", "posture", "ctrl"}


def test_every_task_has_a_template_its_prompt_and_schema_describe():
    for task in list_tasks():
        tpl = reward_template(task)
        assert tpl.goal_terms and "ctrl" in tpl.terms
        for term in tpl.terms.values():
            assert term.weight.lo == 0 and term.weight.hi > 0
            for b in term.targets.values():
                assert b.lo <= b.default <= b.hi
        source = render_params(tpl, tpl.defaults())
        assert validate_source(source) == [], task.id
        prompt = template_prompt(tpl)
        assert all(k in prompt for k in tpl.terms) and "JSON" in prompt
        assert validate_params(tpl, json.loads(prompt.strip().splitlines()[-1]))  # its example is valid
        schema = tpl.json_schema()
        assert set(schema["properties"]) == set(tpl.terms) and schema["additionalProperties"] is False


def test_offline_params_proposer_samples_within_bounds_and_uses_reflection(backflip):
    task, tpl = backflip
    proposer = OfflineProposer(mode="params")
    props = proposer.propose(ProposalContext(task, task.schema, 0, 5, seed=3))
    assert len(props) == 5 and len({p.source for p in props}) == 5
    for p in props:
        params = p.extra["params"]
        assert validate_params(tpl, params) == params and p.extra["mode"] == "params"
        assert validate_source(p.source) == []
    assert props[0].extra["params"] == tpl.defaults()
    # generation 1 descends from the best, dropping a constant shaping term and raising goals on disagreement
    parent_params = {"spin": {"weight": 1.0}, "airborne": {"weight": 0.5}, "ctrl": {"weight": 0.05}}
    flat = [{"step": i, "mean": 1.0, "min": 1.0, "max": 1.0} for i in range(10)]
    moving = [{"step": i, "mean": float(i), "min": float(i) - 1, "max": float(i) + 1} for i in range(10)]
    stats = {"components": {"spin": moving, "airborne": flat, "ctrl": moving}, "reward_fitness_correlation": -0.4}
    parent = CandidateRecord(0, 0, render_params(tpl, parent_params), "ok", 0.3, proposal={"params": parent_params},
                             stats=stats)
    weak = CandidateRecord(0, 1, render_params(tpl, {"spin": 0.2}), "ok", -0.1,
                           proposal={"params": {"spin": {"weight": 0.2}}})
    children = proposer.propose(ProposalContext(task, task.schema, 1, 4, seed=3, history=[[parent, weak]]))
    assert {c.parent for c in children} == {"g0c0", "g0c1"}
    first = children[0]
    assert any("reward and fitness disagreed" in n for n in first.notes)
    assert "dropped airborne: constant during training" in first.notes and "airborne" not in first.extra["params"]
    assert all(validate_params(tpl, c.extra["params"]) == c.extra["params"] for c in children)
    for c in children:
        for key, entry in c.extra["params"].items():
            assert 0 < entry["weight"] <= tpl.terms[key].weight.hi and math.isfinite(entry["weight"])


def test_parameter_mode_evolves_like_code_mode():
    """One set of genome operators: parameter mode follows a person's preference, applies text
    feedback and reacts to the hacking alarm, as code mode does."""
    from rewardgen.proposers.base import CandidateRecord, ProposalContext

    task = get_task("halfcheetah-run")
    proposer = OfflineProposer(mode="params")
    gen0 = proposer.propose(ProposalContext(task, task.schema, 0, 3, seed=5))
    history = [CandidateRecord(0, c, p.source, "ok", float(c), proposal=p.record("offline-params"),
                               stats={"hacking": {"flag": True}} if c == 0 else {}) for c, p in enumerate(gen0)]
    liked = [{"kind": "preference", "generation": 0, "best": 0, "worst": 2, "ranking": [0, 1]}]
    children = proposer.propose(ProposalContext(task, task.schema, 1, 4, seed=5, history=[history], feedback=liked))
    assert children[0].parent == "g0c0"  # the preferred one first, though g0c2 has the best fitness
    assert all(c.parent != "g0c2" for c in children)  # never the disliked one
    assert any("reward-hacking alarm" in n for n in children[0].notes)
    said = [{"kind": "text", "text": "it shakes violently"}]
    edited = proposer.propose(ProposalContext(task, task.schema, 1, 2, seed=5, history=[history], feedback=said))
    assert all(any("smoother motion" in n for n in c.notes) for c in edited)
    assert all("ctrl" in c.extra["params"] for c in edited)  # the edit raised (or added) the control penalty
