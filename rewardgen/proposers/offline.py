"""The offline proposer: real reward code from a library of terms, evolved without an LLM.

Terms are built from the derived schema and the task's goal (the fitness *spec*: which body should
move along which axis, which two points should meet; never the fitness code). A candidate is a
genome, a list of ``{term, weight}``; its source is generated from the genome. Generation 0 samples
term subsets and weights. Later generations take the best candidates so far as parents, apply the
reflection heuristics to the parent's component statistics (drop constant components, shrink a
shaping term that dominates, lean on the goal when reward and fitness disagree), then mutate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from rewardgen.proposers.base import CandidateRecord, Proposal, ProposalContext, Proposer
from rewardgen.proposers.reflection import component_facts
from rewardgen.contract.schema import AXES, Schema
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


def term_library(task: Task, schema: Schema) -> dict[str, Term]:
    """Every term that makes sense for this task and robot, keyed by component name.

    Goal terms follow the fitness *spec* (the body, axis, direction, target points, radius named in
    the task), never its code; shaping terms (control effort, survival, posture, uprightness) follow
    the robot. Uprightness and posture are left out where the goal is to leave them (flips, jumps).
    """
    terms: list[Term] = []
    spec, params = task.fitness["name"], task.fitness.get("params", {})
    root = schema.robot_root_name
    model = task.model
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    keep_upright, keep_posture = True, True
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
        keep_posture = False
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
        keep_upright = keep_posture = False
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
    if spec != "alive_fraction":
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
    lines = [f'"""Reward for {task.id}: {header}', "", "Written by rewardgen's offline proposer (term library, no LLM).", '"""',
             "import torch", "", "", "def compute_reward(s):", "    components = {"]
    for gene in genome:
        term = library[gene["term"]]
        lines.append(f'        "{term.key}": {gene["weight"]:.4g} * ({term.expr}),  # {term.doc}')
    lines += ["    }", "    total = sum(components.values())", "    return total, components", ""]
    return "\n".join(lines)


# What people say when they watch a rollout, mapped to term changes: (pattern, terms, factor).
# A term in ``terms`` that is missing is added; "goal" means every goal term.
_FEEDBACK_RULES: list[tuple[str, tuple[str, ...], float, str]] = [
    (r"fall|flip|upside|on its back|tip(s|ped)? over|crash", ("upright", "posture"), 2.0, "keep it upright"),
    (r"jitter|shak|twitch|vibrat|violent|jerk|smooth|energy|flail", ("ctrl", "joint_vel"), 3.0, "smoother motion"),
    (r"too slow|slow|faster|lazy|barely moves|stands? still|not moving", ("goal",), 2.0, "more progress"),
    (r"sideways|drift|lateral|veer", ("drift",), 2.0, "less drift"),
    (r"too fast|slower", ("goal",), 0.5, "less speed"),
]


def feedback_edits(feedback: list[dict], library: dict[str, Term]) -> list[tuple[str, list[str], float]]:
    """Text feedback turned into (reason, term keys, factor) edits the offline proposer can apply."""
    import re

    edits = []
    for item in feedback:
        text = (item.get("text") or "").lower() if item.get("kind") == "text" else ""
        for pattern, names, factor, why in _FEEDBACK_RULES:
            if text and re.search(pattern, text):
                keys = [k for k, t in library.items()
                        if ("goal" in names and t.goal) or any(k == n or k.startswith(n + "_") for n in names)]
                if keys:
                    edits.append((f'feedback "{item["text"][:60]}": {why}', keys, factor))
    return edits


def apply_edits(genome: list[dict], notes: list[str], edits, library: dict[str, Term],
                rng: np.random.Generator) -> tuple[list[dict], list[str]]:
    for why, keys, factor in edits:
        present = {g["term"]: g for g in genome}
        for key in keys:
            if key in present:
                present[key]["weight"] = float(np.clip(present[key]["weight"] * factor, 1e-4, 100.0))
            elif factor > 1.0:
                genome.append({"term": key, "weight": OfflineProposer._weight(library[key], rng)})
        notes.append(why)
    return genome, notes


def _signature(genome: list[dict]) -> tuple:
    return tuple(sorted((g["term"], round(math.log(g["weight"]), 1)) for g in genome))


class OfflineProposer(Proposer):
    name = "offline"
    label = "offline proposer (term library, no LLM)"

    def propose(self, ctx: ProposalContext) -> list[Proposal]:
        rng = np.random.default_rng([ctx.seed, ctx.generation, 7919])
        library = term_library(ctx.task, ctx.schema)
        parents = self._parents(ctx)
        edits = feedback_edits(ctx.feedback, library)
        seen = {_signature(c.proposal["genome"]) for gen in ctx.history for c in gen if c.proposal.get("genome")}
        proposals = []
        for i in range(ctx.samples):
            for _attempt in range(10):
                if parents:
                    parent = parents[i % len(parents)]
                    genome, notes = self._child(parent, library, rng)
                    genome, notes = apply_edits(genome, notes, edits, library, rng)
                    origin, parent_ref = f"mutation of {parent.ref}", parent.ref
                else:
                    genome, notes = self._fresh(library, rng, canonical=(i == 0 and ctx.generation == 0))
                    origin, parent_ref = "fresh sample from the term library", None
                if _signature(genome) not in seen:
                    break
            seen.add(_signature(genome))
            header = origin + ("; " + "; ".join(notes) if notes else "")
            proposals.append(Proposal(render_source(ctx.task, genome, header), origin=origin, parent=parent_ref,
                                      notes=notes, genome=genome))
        return proposals

    @staticmethod
    def _parents(ctx: ProposalContext) -> list[CandidateRecord]:
        """The person's preferred candidate first (ICPL), then the best by fitness; never the disliked."""
        by_ref = {c.ref: c for gen in ctx.history for c in gen if c.status == "ok" and c.proposal.get("genome")}
        preferred, disliked = [], set()
        for f in ctx.feedback:
            if f.get("kind") == "preference":
                ranking = f.get("ranking") or [f["best"]]
                preferred += [f"{f['generation']}/{x}" for x in ranking[:1]]
                if f.get("worst") is not None:
                    disliked.add(f"{f['generation']}/{f['worst']}")
        ordered = [by_ref[r] for r in reversed(preferred) if r in by_ref]
        ordered += [c for c in ctx.ranked() if c.proposal.get("genome")]
        out: list[CandidateRecord] = []
        for c in ordered:
            if c.ref not in disliked and c not in out:
                out.append(c)
        return out[:2]

    @staticmethod
    def _weight(term: Term, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(term.lo), math.log(term.hi))))

    def _fresh(self, library: dict[str, Term], rng: np.random.Generator, canonical: bool) -> tuple[list[dict], list[str]]:
        goals = [t for t in library.values() if t.goal]
        shaping = [t for t in library.values() if not t.goal]
        if canonical:  # goal at full weight plus a light control penalty: the textbook reward
            chosen = [goals[0]] + [t for t in shaping if t.key == "ctrl"]
            return [{"term": t.key, "weight": (1.0 if t.goal else 0.05)} for t in chosen], ["canonical start"]
        chosen = [goals[int(rng.integers(len(goals)))]]
        chosen += [t for t in goals if t not in chosen and rng.random() < 0.3]
        chosen += [t for t in shaping if rng.random() < 0.5]
        return [{"term": t.key, "weight": self._weight(t, rng)} for t in chosen], []

    def _child(self, parent: CandidateRecord, library: dict[str, Term],
               rng: np.random.Generator) -> tuple[list[dict], list[str]]:
        genome = [dict(g) for g in parent.proposal.get("genome") or [] if g["term"] in library]
        notes: list[str] = []
        dropped: set[str] = set()
        facts = {f.name: f for f in component_facts(parent.stats)}
        for gene in list(genome):
            term, fact = library[gene["term"]], facts.get(gene["term"])
            if fact is None:
                continue
            if fact.constant and term.key != "alive" and not term.goal:
                genome.remove(gene)
                dropped.add(term.key)
                notes.append(f"dropped {term.key}: constant during training")
            elif fact.dominant and not term.goal:
                gene["weight"] *= 0.3
                notes.append(f"scaled {term.key} down: {fact.share:.0%} of the reward's magnitude")
        corr = parent.stats.get("reward_fitness_correlation")
        hacking = parent.stats.get("hacking")
        if (corr is not None and corr < 0.0) or hacking:
            for gene in genome:
                gene["weight"] *= 2.0 if library[gene["term"]].goal else 0.5
            why = f"r={corr:.2f}" if corr is not None and corr < 0.0 else "reward-hacking alarm"
            notes.append(f"reward and fitness disagreed ({why}): goal terms up, shaping down")
        for gene in genome:
            gene["weight"] = float(np.clip(gene["weight"] * math.exp(rng.normal(0.0, 0.4)), 1e-4, 100.0))
        present = {g["term"] for g in genome}
        absent = [t for t in library.values() if t.key not in present | dropped]
        if absent and rng.random() < 0.4:
            t = absent[int(rng.integers(len(absent)))]
            genome.append({"term": t.key, "weight": self._weight(t, rng)})
            notes.append(f"added {t.key}")
        removable = [g for g in genome if not library[g["term"]].goal]
        if removable and rng.random() < 0.25:
            g = removable[int(rng.integers(len(removable)))]
            genome.remove(g)
            notes.append(f"removed {g['term']}")
        if not any(library[g["term"]].goal for g in genome):
            goal = next(t for t in library.values() if t.goal)
            genome.insert(0, {"term": goal.key, "weight": 1.0})
            notes.append(f"restored goal term {goal.key}")
        return genome, notes
