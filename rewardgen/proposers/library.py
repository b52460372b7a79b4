"""The term library: every reward term that makes sense for a task and robot, and code from a genome.

Terms are built from the derived schema and the task's goal (the fitness *spec*: which body should
move along which axis, which two points should meet; never the fitness code). In code mode a
candidate is a genome, a list of ``{term, weight}`` (``rewardgen.proposers.genome``), and its source
is generated from it (``render_source``); the reward template of parameter mode
(``rewardgen.proposers.params``) is built on the same library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from rewardgen.contract.schema import AXES, Schema
from rewardgen.proposers.base import CandidateRecord, Proposal
from rewardgen.sim.termination import termination_of
from rewardgen.tasks.fitness import TURNING_FITNESSES
from rewardgen.tasks.spec import Task


@dataclass(frozen=True)
class Term:
    """One named reward component: ``weight * expr``; ``expr`` is an (N,) expression over ``s``."""

    key: str
    expr: str
    lo: float
    hi: float
    goal: bool = False
    doc: str = ""


def _point_expr(schema: Schema, name: str) -> str:
    return f's.body_pos["{name}"]' if name in schema.bodies else f's.site_pos["{name}"]'


def _end_effector(model: mujoco.MjModel, root: int) -> int:
    """The deepest body of the robot's tree (ties: the last one): what reaches for things."""
    best, depth_best = root, -1
    for b in range(1, model.nbody):
        if int(model.body_rootid[b]) != root:
            continue
        depth, p = 0, b
        while p != root and p > 0:
            p, depth = int(model.body_parentid[p]), depth + 1
        if depth >= depth_best:
            best, depth_best = b, depth
    return best


def _can_move(model: mujoco.MjModel, body: int, rows: tuple[int, ...], rotation: bool) -> bool:
    """Whether any joint can move ``body`` along (or, with ``rotation``, turn it about) the world axes
    ``rows``: the body Jacobian's rows at the initial pose and a few random ones. A planar robot never
    moves sideways and a reacher's links never tilt, so such terms would be constant in training (the
    reflection's "dropped: constant"), wasting a candidate; the library leaves them out."""
    data = mujoco.MjData(model)
    jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    rng = np.random.default_rng(0)
    for k in range(4):
        data.qpos[:] = model.qpos0
        if k:
            data.qpos[:] += rng.uniform(-0.5, 0.5, model.nq)
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        mujoco.mj_jacBody(model, data, jacp, jacr, body)
        jac = jacr if rotation else jacp
        if np.abs(jac[list(rows)]).max(initial=0.0) > 1e-6:
            return True
    return False


def _ends_early(task: Task) -> bool:
    """Whether an episode of ``task`` can end before its time limit. Where none can (a cheetah, a
    swimmer, an arm), a survival bonus is the same every step whatever the robot does: the policy
    cannot change it, so it is left out like any other constant term. A task no rules reproduce is
    assumed to end early, the case where the bonus matters."""
    try:
        return termination_of(task).ends_early
    except ValueError:
        return True


def term_library(task: Task, schema: Schema) -> dict[str, Term]:
    """Every term that makes sense for this task and robot, keyed by component name.

    Goal terms follow the fitness *spec* (the body, axis, direction, target points, radius named in
    the task), never its code; shaping terms (control effort, survival, posture, uprightness) follow
    the robot, and survival only where an episode can end early. Uprightness and posture are left out
    where the goal is to leave them (flips, rising; posture for jumps too).
    """
    terms: list[Term] = []
    spec, params = task.fitness["name"], task.fitness.get("params", {})
    root = schema.robot_root_name
    model = task.model
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    # a goal that turns the body (a flip; rising from lying, where the stand-up humanoid's torso is
    # "upright", its z axis up, while it lies on its back) keeps no uprightness or posture term
    keep_upright = keep_posture = spec not in TURNING_FITNESSES
    if spec == "forward_velocity":
        body, ax = params.get("body", root), AXES.get(params.get("axis", "x"), 0)
        sign = "-" if float(params.get("sign", 1.0)) < 0 else ""
        terms += [
            Term("progress", f'{sign}s.body_linvel["{body}"][:, {ax}]', 0.5, 3.0, True,
                 f"velocity of {body} along the goal axis"),
            Term("progress_com", f"{sign}s.com_vel[:, {ax}]", 0.5, 3.0, True, "centre-of-mass velocity along the goal axis"),
        ]
        side = 1 - ax if ax < 2 else 0
        body_id = schema.body_ids[schema.bodies.index(body)] if body in schema.bodies else schema.robot_root
        if _can_move(model, body_id, (side,), rotation=False):
            terms.append(Term("drift", f'-s.body_linvel["{body}"][:, {side}].abs()', 0.05, 0.5, False,
                              "sideways velocity penalty"))
    elif spec == "alive_fraction":
        terms.append(Term("alive", "torch.ones_like(s.step)", 0.5, 2.0, True, "bonus for every step survived"))
        if schema.sites:  # the tip of a balancing chain: keep it high
            tip = schema.sites[-1]
            terms.append(Term("tip_height", f's.site_pos["{tip}"][:, 2]', 0.1, 1.0, False, f"height of site {tip}"))
    elif spec == "negative_distance":
        a, b = _point_expr(schema, params["a"]), _point_expr(schema, params["b"])
        idx = [AXES[c] for c in params.get("dims", "xyz")]
        dist = f"torch.linalg.norm(({a} - {b})[:, {idx}], dim=-1)"
        terms += [
            Term("reach", f"-{dist}", 0.5, 5.0, True, f"distance {params['a']} to {params['b']}"),
            Term("reach_bonus", f"torch.exp(-{dist} / 0.05)", 0.1, 1.0, True, "bonus near the goal"),
        ]
        if params["a"] in schema.bodies:  # an object the robot must move: bring the robot's end to it first
            a_id = schema.body_ids[schema.bodies.index(params["a"])]
            if int(model.body_rootid[a_id]) != schema.robot_root:
                ee_id = _end_effector(model, schema.robot_root)
                ee = schema.bodies[schema.body_ids.index(ee_id)]
                terms.append(Term("approach", f'-torch.linalg.norm(s.body_pos["{ee}"] - {a}, dim=-1)', 0.1, 1.0,
                                  False, f"{ee} (the robot's end) close to {params['a']}"))
    elif spec == "height":
        body = params.get("body", root)
        terms.append(Term("height", f's.body_pos["{body}"][:, 2]', 0.5, 3.0, True, f"height of {body}"))
        terms.append(Term("rise", f's.body_linvel["{body}"][:, 2].clamp(min=0.0)', 0.05, 0.5, False,
                          f"upward velocity of {body}"))
    elif spec == "rotation":
        body, ax = params.get("body", root), AXES.get(params.get("axis", "y"), 1)
        sign = "-" if float(params.get("sign", 1.0)) < 0 else ""
        terms += [
            Term("spin", f'{sign}s.body_angvel["{body}"][:, {ax}]', 0.5, 3.0, True,
                 f"angular velocity of {body} in the goal direction"),
            Term("spin_com", f'{sign}s.body_angvel["{body}"][:, {ax}].clamp(max=10.0) * '
                             f'(s.com_pos[:, 2] > {float(data.subtree_com[schema.robot_root][2]):.3f}).float()',
                 0.2, 2.0, True, "turning in the goal direction while the centre of mass is above its start"),
            Term("airborne", "s.com_vel[:, 2].clamp(min=0.0)", 0.05, 1.0, False, "upward centre-of-mass velocity"),
        ]
    elif spec == "jump_height":
        body = params.get("body", root)
        rest = float(params.get("rest", 0.0))
        x0, y0 = float(params.get("x0", 0.0)), float(params.get("y0", 0.0))
        p = f's.body_pos["{body}"]'
        terms += [
            Term("jump", f"({p}[:, 2] - {rest:.4g}).clamp(min=0.0)", 0.5, 5.0, True, f"rise of {body} above rest"),
            Term("lift", f's.body_linvel["{body}"][:, 2].clamp(min=0.0)', 0.1, 1.0, True, f"upward velocity of {body}"),
            Term("stay", f"-torch.sqrt(({p}[:, 0] - {x0:.4g}) ** 2 + ({p}[:, 1] - {y0:.4g}) ** 2)", 0.1, 2.0, False,
                 "distance from the start point"),
        ]
        keep_posture = False
    elif spec == "circle_laps":
        body = params.get("body", root)
        radius = float(params.get("radius", 2.0))
        cx, cy = float(params.get("center_x", 0.0)), float(params.get("center_y", radius))
        sign = "-" if float(params.get("sign", 1.0)) < 0 else ""
        p, v = f's.body_pos["{body}"]', f's.body_linvel["{body}"]'
        dx, dy = f"({p}[:, 0] - {cx:.4g})", f"({p}[:, 1] - {cy:.4g})"
        r = f"torch.sqrt({dx} ** 2 + {dy} ** 2).clamp(min=0.1)"
        terms += [
            Term("orbit", f"{sign}({dx} * {v}[:, 1] - {dy} * {v}[:, 0]) / {r}", 0.5, 3.0, True,
                 "speed around the centre in the goal direction"),
            Term("on_circle", f"-({r} - {radius:.4g}).abs()", 0.1, 1.0, False, f"distance from the {radius:g} m circle"),
        ]
    terms.append(Term("ctrl", "-(s.action ** 2).sum(dim=-1)", 0.01, 0.3, False, "control effort penalty"))
    if spec != "alive_fraction" and _ends_early(task):
        terms.append(Term("alive", "torch.ones_like(s.step)", 0.1, 1.0, False, "survival bonus"))
    if keep_upright:
        robot = [n for n, b in zip(schema.bodies, schema.body_ids) if int(model.body_rootid[b]) == schema.robot_root]
        upright_bodies = robot if len(robot) <= 4 else (root,)
        for body in upright_bodies:
            if not _can_move(model, schema.body_ids[schema.bodies.index(body)], (0, 1), rotation=True):
                continue  # it cannot tilt: its up vector is constant
            terms.append(Term(f"upright_{body}", f's.body_up["{body}"][:, 2]', 0.1, 1.0, False, f"{body} kept upright"))
    h0 = float(data.xpos[schema.robot_root][2])
    if keep_posture and h0 > 0.05:
        terms.append(Term("posture", f'-(s.body_pos["{root}"][:, 2] - {h0:.3f}).abs()', 0.1, 2.0, False,
                          f"{root} kept near its initial height {h0:.2f} m"))
    terms.append(Term("joint_vel", "-(s.qvel ** 2).mean(dim=-1)", 0.001, 0.05, False, "joint speed penalty"))
    return {t.key: t for t in terms}


def render_source(task: Task, genome: list[dict], header: str) -> str:
    """Reward source for a genome, in the reward contract."""
    library = term_library(task, task.schema)
    lines = [f'"""Reward for {task.id}: {header}', "",
             "Written by rewardgen's offline proposer (term library, no LLM).", '"""',
             "import torch", "", "", "def compute_reward(s):", "    components = {"]
    for gene in genome:
        term = library[gene["term"]]
        lines.append(f'        "{term.key}": {gene["weight"]:.4g} * ({term.expr}),  # {term.doc}')
    lines += ["    }", "    total = sum(components.values())", "    return total, components", ""]
    return "\n".join(lines)


class LibrarySpace:
    """Code mode's genes: terms of the library, weights log-uniform over each term's range."""

    salt = 7919

    def __init__(self, task: Task):
        self.task = task
        self.library = term_library(task, task.schema)

    def keys(self) -> list[str]:
        return list(self.library)

    def is_goal(self, key: str) -> bool:
        return self.library[key].goal

    def new_gene(self, key: str, rng: np.random.Generator) -> dict[str, Any]:
        term = self.library[key]
        return {"term": key, "weight": float(math.exp(rng.uniform(math.log(term.lo), math.log(term.hi))))}

    def goal_gene(self, key: str) -> dict[str, Any]:
        return {"term": key, "weight": 1.0}

    def clip_weight(self, key: str, weight: float) -> float:
        return float(np.clip(weight, 1e-4, 100.0))

    def strong_weight(self, key: str) -> float:
        return float(self.library[key].hi)

    def mutate_targets(self, gene: dict[str, Any], rng: np.random.Generator) -> None:
        pass  # library terms have no targets

    def start(self) -> tuple[list[dict[str, Any]], list[str], str]:
        """The goal at full weight plus a light control penalty: the textbook reward."""
        goal = next(k for k in self.library if self.library[k].goal)
        genome = [{"term": goal, "weight": 1.0}] + [{"term": k, "weight": 0.05} for k in self.library
                                                   if k == "ctrl" and not self.library[k].goal]
        return genome, ["canonical start"], FRESH_ORIGIN

    def genome_of(self, record: CandidateRecord) -> list[dict[str, Any]] | None:
        return record.proposal.get("genome") or None

    def finish(self, genome: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return genome

    def proposal(self, genome: list[dict[str, Any]], origin: str, parent: str | None, notes: list[str]) -> Proposal:
        header = origin + ("; " + "; ".join(notes) if notes else "")
        return Proposal(render_source(self.task, genome, header), origin=origin, parent=parent, notes=notes,
                        genome=genome)


#: the origin of a genome sampled from the library (not made from a parent)
FRESH_ORIGIN = "fresh sample from the term library"
