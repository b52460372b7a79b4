"""The first request states what decides fitness and training, and the simulator agrees with every number.

For every built-in task and a brought MJCF robot, in the user message the LLM proposer sends first:
the rules that end an episode are there with their numbers, and the canonical env (where the trusted
evaluation runs) ends an episode just outside each bound and not just inside it, with the quantity
read by the very expression the prompt gives; the fitness's per-step expression and the way an early end
counts are stated; a rotation's stated sense scores positive; the budget, the worlds, the trainer and the
schedule are there.
"""

from __future__ import annotations

import math
import re

import mujoco
import numpy as np
import pytest
import torch
from test_byo import WALKER

from rewardgen.contract.state import StateBuffers
from rewardgen.proposers.base import ProposalContext
from rewardgen.proposers.client import LLMSettings
from rewardgen.proposers.llm import LLMProposer
from rewardgen.proposers.prompts import task_prompts
from rewardgen.run.config import EvolveConfig, effective_trainer
from rewardgen.run.step import training_setup
from rewardgen.sim.termination import termination_of
from rewardgen.tasks.fitness import make_fitness
from rewardgen.tasks.spec import list_tasks, task_from_mjcf

TASKS = list_tasks()


@pytest.fixture(scope="module")
def brought(tmp_path_factory):
    path = tmp_path_factory.mktemp("robot") / "biped.xml"
    path.write_text(WALKER)
    return task_from_mjcf(path, "walk forward", "forward_velocity(body=base)", healthy_z_range=(0.45, 2.0))


def _task(task_id, brought):
    return brought if task_id == "biped" else next(t for t in TASKS if t.id == task_id)


def _prompt(task, samples=4, schedule="halving"):
    """The user message of generation 0's request, as the LLM proposer builds it in a run with these
    settings (the plan is what ``Evolution`` gives the proposer)."""
    config = EvolveConfig(task=task.id, samples=samples, schedule=schedule)
    setup = training_setup(task, config, effective_trainer(task, config.trainer)[0], config.budget(task))
    plan = setup.plan(config.samples, config.schedule, config.eval_episodes)
    ctx = ProposalContext(task, task.schema, 0, samples, seed=0, plan=plan)
    messages = LLMProposer(LLMSettings(base_url="http://unused")).messages(ctx)
    assert messages[1]["content"].startswith(task_prompts(task, plan=plan)["task"])
    return messages[1]["content"], plan


def _state(task, data) -> object:
    buffers = StateBuffers(task.schema, task.model, 1)
    buffers.fill(0, data, np.zeros(task.model.nu, dtype=np.float32), 1)
    return buffers.to_state()


def _read(task, data, expr: str) -> float:
    mujoco.mj_forward(task.model, data)
    return float(eval(expr, {"torch": torch, "math": math}, {"s": _state(task, data)}).reshape(-1)[0])


def _place(task, env, expr: str, value: float) -> None:
    """Reset ``env`` and set one position coordinate so that ``expr`` reads ``value``, at rest (a
    coordinate that brackets the value is bisected). Contacts and joint limits are off: the rule's
    threshold is under test, not how the floor or a limit pushes back a body placed against it."""
    env.reset(seed=0)
    u = env.unwrapped
    u.model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT) | int(mujoco.mjtDisableBit.mjDSBL_LIMIT)
    data = u.data
    quaternions = {int(u.model.jnt_qposadr[j]) + k for j in range(u.model.njnt)
                   for k in {int(mujoco.mjtJoint.mjJNT_FREE): range(3, 7),
                             int(mujoco.mjtJoint.mjJNT_BALL): range(4)}.get(int(u.model.jnt_type[j]), ())}
    start = u.init_qpos.copy()
    for i in (i for i in range(u.model.nq) if i not in quaternions):
        def at(x: float, i: int = i) -> float:
            data.qpos[:] = start
            data.qpos[i] = x
            return _read(task, data, expr) - value

        grid = start[i] + np.linspace(-3.0, 3.0, 121)
        signs = [at(x) for x in grid]
        crossing = next((k for k in range(120) if signs[k] == 0 or signs[k] * signs[k + 1] < 0), None)
        if crossing is None:
            continue
        lo, hi = grid[crossing], grid[crossing + 1]
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if (at(mid) > 0) == (at(lo) > 0):
                lo = mid
            else:
                hi = mid
        at(0.5 * (lo + hi))
        assert abs(_read(task, data, expr) - value) < 1e-4, (expr, value)
        u.set_state(data.qpos.copy(), np.zeros(u.model.nv))
        return
    raise AssertionError(f"no position coordinate moves {expr} to {value}")


@pytest.mark.parametrize("task_id", [t.id for t in TASKS] + ["biped"])
def test_the_prompt_states_the_simulators_termination_rules(task_id, brought):
    task = _task(task_id, brought)
    text, _plan = _prompt(task)
    rules = termination_of(task)
    assert f"at most {task.episode_length} env steps" in text
    env = task.make_env()
    try:
        for bound in rules.bounds:
            said = f"{bound.quantity}) stays {bound.inside()}"
            assert said in text, said
            if " and " in bound.quantity:
                continue  # a family of quantities (Hopper's state range): its numbers are checked above
            for edge, inward in ((bound.low, +1), (bound.high, -1)):
                if edge is None:
                    continue
                margin = max(0.02, 0.05 * abs(edge))
                for value, ends in ((edge + inward * margin, False), (edge - inward * margin, True)):
                    _place(task, env, bound.quantity, value)
                    _, _, terminated, _, _ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
                    assert terminated == ends, (task_id, bound.quantity, value, ends)
    finally:
        env.close()
    if rules.ends_early:
        assert "pays for living longer" in text and "carries no signal" not in text
    else:
        assert "Nothing ends an episode early" in text and "changes nothing the policy can choose" in text


@pytest.mark.parametrize("task_id", [t.id for t in TASKS] + ["biped"])
def test_the_prompt_states_the_fitness_budget_and_schedule(task_id, brought):
    task = _task(task_id, brought)
    text, plan = _prompt(task)
    fitness = make_fitness(task.fitness, task.schema)
    assert f"`{fitness.expr}`" in text and fitness.doc in text
    if fitness.aggregate == "horizon":
        assert f"divided by {task.episode_length}" in text
        assert ("counts 0 for every step it did not live" in text) == termination_of(task).ends_early
    assert f"mean over {plan.eval_episodes} evaluation episode" in text and "one training seed" in text
    assert f"Success means at least {task.success_threshold:g}" in text
    assert f"trains for {plan.steps:,} env-steps" in text and f"{plan.worlds} worlds in parallel" in text
    assert "PPO" in text and "adds nothing to the reward you write" in text
    first = max(1, round(plan.steps * 0.2))
    assert f"all 4 train to {first:,} env-steps" in text and f"the full {plan.steps:,}" in text
    adaptive, _ = _prompt(task, schedule="adaptive")
    assert f"increments of {round(plan.steps / 40):,} env-steps" in adaptive
    full, _ = _prompt(task, schedule="full")
    assert f"Every candidate trains the full {plan.steps:,} env-steps" in full


@pytest.mark.parametrize("task_id", ["halfcheetah-backflip", "hopper-backflip"])
def test_a_rotations_stated_sense_is_the_one_that_scores(task_id):
    """'backward about +y' is where models go wrong: the prompt names the joint and its direction,
    and turning that joint that way is what the trusted fitness pays for."""
    task = _task(task_id, None)
    text, _ = _prompt(task)
    said = re.search(r's\.joint_vel\["(\w+)"\] ([<>]) 0 \(joint \w+ (increasing|decreasing)', text)
    assert said, text
    joint, sign, word = said.groups()
    assert (sign, word) in ((">", "increasing"), ("<", "decreasing"))
    assert "backward (the front, at +x, goes up and over the top" in text
    fitness = make_fitness(task.fitness, task.schema)
    data = mujoco.MjData(task.model)
    dof = task.schema.joint_dof_adr[task.schema.joints.index(joint)]
    data.qvel[dof] = 1.0 if sign == ">" else -1.0
    mujoco.mj_forward(task.model, data)
    assert float(fitness.per_step(_state(task, data))[0]) > 0
    data.qvel[dof] *= -1
    mujoco.mj_forward(task.model, data)
    assert float(fitness.per_step(_state(task, data))[0]) < 0
