"""Parameter mode (``--mode params``, Language-to-Rewards style): the proposer fills in numbers, not code.

A task's **reward template** is the offline proposer's term library made explicit (every term that
makes sense for this robot and goal, see ``rewardgen.proposers.library.term_library``) plus a few
*target* terms that track a chosen value (a speed, a height, a spin rate). A proposal in this mode
is one JSON object choosing a weight (and targets) per term:

    {"progress": {"weight": 1.0}, "track_speed": {"weight": 0.5, "target_speed": 3.0}, "ctrl": 0.05}

- keys are term names; a term left out has weight 0 (off); a bare number is the weight;
- every weight and target has bounds; out-of-bounds values, unknown terms, unknown keys, booleans
  and non-finite numbers are rejected by ``validate_params`` with a ``ParamsError`` whose message
  lists every problem and the allowed keys and bounds (meant to be fed back to an LLM);
- at least one goal term (one that measures the task's goal) must have a positive weight.

``render_params`` turns valid parameters into reward source in the reward contract (the sum of
``weight * term``, one component per term), so the rest of the pipeline (check, sandboxed training,
trusted evaluation) is unchanged. ``template_prompt`` describes the template for an LLM.
``TemplateSpace`` lets the offline proposer (``rewardgen.proposers.offline``, ``--mode params``) evolve
parameters within bounds with the same genome operators as code mode.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from rewardgen.contract.schema import AXES
from rewardgen.errors import UserError
from rewardgen.proposers.base import CandidateRecord, Proposal
from rewardgen.proposers.library import term_library
from rewardgen.tasks.fitness import format_fitness
from rewardgen.tasks.spec import Task


class ParamsError(UserError):
    """Parameters that do not fit the template; ``problems`` lists each one, the message says all."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [message])


@dataclass(frozen=True)
class Bound:
    """An allowed range [lo, hi] with a default; ``typical`` is where samplers start."""

    lo: float
    hi: float
    default: float
    unit: str = ""
    doc: str = ""
    typical: tuple[float, float] | None = None

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"[{self.lo:g}, {self.hi:g}]{unit}"


@dataclass(frozen=True)
class TemplateTerm:
    """One term: ``weight * expr``, where ``expr`` may use ``{target}`` placeholders for its targets."""

    key: str
    expr: str
    weight: Bound
    goal: bool = False
    doc: str = ""
    targets: dict[str, Bound] = field(default_factory=dict)

    def render(self, targets: dict[str, float]) -> str:
        expr = self.expr
        for name in self.targets:
            expr = expr.replace("{" + name + "}", repr(float(targets[name])))
        return expr


@dataclass(frozen=True)
class RewardTemplate:
    """A task's reward template: its terms in order, and the task they were derived for."""

    task_id: str
    fitness: str
    terms: dict[str, TemplateTerm]

    @property
    def goal_terms(self) -> list[str]:
        return [k for k, t in self.terms.items() if t.goal]

    def defaults(self) -> dict[str, dict[str, float]]:
        """The textbook start: the first goal term at weight 1 plus a light control penalty."""
        out: dict[str, dict[str, float]] = {}
        for key, term in self.terms.items():
            if (key == self.goal_terms[0] or key == "ctrl") and term.weight.default > 0:
                out[key] = {"weight": term.weight.default, **{n: b.default for n, b in term.targets.items()}}
        return out

    def json_schema(self) -> dict[str, Any]:
        """A JSON Schema (draft 2020-12) of valid parameters (for LLM structured output)."""
        props: dict[str, Any] = {}
        for key, term in self.terms.items():
            weight = {"type": "number", "minimum": term.weight.lo, "maximum": term.weight.hi}
            obj_props = {"weight": weight}
            for name, b in term.targets.items():
                obj_props[name] = {"type": "number", "minimum": b.lo, "maximum": b.hi,
                                   "description": f"{b.doc} ({b.unit})" if b.unit else b.doc}
            props[key] = {
                "description": term.doc + (" (goal term)" if term.goal else ""),
                "oneOf": [weight, {"type": "object", "properties": obj_props, "required": ["weight"],
                                   "additionalProperties": False}],
            }
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"reward parameters for {self.task_id}",
                "type": "object", "properties": props, "additionalProperties": False}

    def allowed(self) -> str:
        """One line per term: its keys and bounds (used in error messages and the prompt)."""
        lines = []
        for key, term in self.terms.items():
            parts = [f"weight {term.weight.describe()}"]
            parts += [f"{n} {b.describe()} (default {b.default:g})" for n, b in term.targets.items()]
            lines.append(f"  {key}{' (goal)' if term.goal else ''}: " + ", ".join(parts))
        return "\n".join(lines)


def _round(x: float) -> float:
    """A readable bound: two significant digits."""
    if x == 0:
        return 0.0
    return float(f"{x:.2g}")


def _target_terms(task: Task) -> list[TemplateTerm]:
    """Terms that track a chosen value, per kind of goal (the fitness spec, never its code)."""
    spec, params = task.fitness["name"], task.fitness.get("params", {})
    threshold = float(task.success_threshold)
    root = task.schema.robot_root_name
    body = params.get("body", root)
    out: list[TemplateTerm] = []
    if spec == "forward_velocity":
        ax = AXES.get(params.get("axis", "x"), 0)
        sign = "-" if float(params.get("sign", 1.0)) < 0 else ""
        hi = _round(max(2.0, 3.0 * abs(threshold)))
        out.append(TemplateTerm(
            "track_speed", f'torch.exp(-(({sign}s.body_linvel["{body}"][:, {ax}]) - {{target_speed}}) ** 2)',
            Bound(0.0, 10.0, 1.0, typical=(0.2, 2.0)), True, f"1 when {body} moves at target_speed along the goal axis",
            {"target_speed": Bound(0.0, hi, _round(min(hi, max(0.5, 1.5 * threshold))), "m/s", "desired speed")}))
    elif spec == "height":
        hi = _round(max(2.0, 2.0 * abs(threshold)))
        out.append(TemplateTerm(
            "track_height", f'torch.exp(-((s.body_pos["{body}"][:, 2] - {{target_height}}) / 0.1) ** 2)',
            Bound(0.0, 10.0, 1.0, typical=(0.2, 2.0)), True, f"1 when {body} is at target_height",
            {"target_height": Bound(0.0, hi, _round(min(hi, max(0.1, 1.15 * threshold))), "m", "desired height")}))
    elif spec == "jump_height":
        rest = float(params.get("rest", 0.0))
        out.append(TemplateTerm(
            "track_jump", f'torch.exp(-((s.body_pos["{body}"][:, 2] - {rest!r} - {{target_rise}}) / 0.1) ** 2)',
            Bound(0.0, 10.0, 1.0, typical=(0.2, 2.0)), True, f"1 when {body} is target_rise above its rest height",
            {"target_rise": Bound(0.0, 2.0, _round(min(2.0, max(0.1, 1.5 * threshold))), "m", "desired jump height")}))
    elif spec == "rotation":
        ax = AXES.get(params.get("axis", "y"), 1)
        sign = "-" if float(params.get("sign", 1.0)) < 0 else ""
        out.append(TemplateTerm(
            "track_spin", f'torch.exp(-((({sign}s.body_angvel["{body}"][:, {ax}]) - {{target_spin}}) / 2.0) ** 2)',
            Bound(0.0, 10.0, 1.0, typical=(0.2, 2.0)), True, f"1 when {body} turns at target_spin in the goal direction",
            {"target_spin": Bound(0.0, 20.0, 5.0, "rad/s", "desired turning rate")}))
    elif spec == "circle_laps":
        radius = float(params.get("radius", 2.0))
        cx, cy = float(params.get("center_x", 0.0)), float(params.get("center_y", radius))
        sign = "-" if float(params.get("sign", 1.0)) < 0 else ""
        p, v = f's.body_pos["{body}"]', f's.body_linvel["{body}"]'
        dx, dy = f"({p}[:, 0] - {cx!r})", f"({p}[:, 1] - {cy!r})"
        r = f"torch.sqrt({dx} ** 2 + {dy} ** 2).clamp(min=0.1)"
        out.append(TemplateTerm(
            "track_orbit", f"torch.exp(-(({sign}({dx} * {v}[:, 1] - {dy} * {v}[:, 0]) / {r}) - {{target_speed}}) ** 2)",
            Bound(0.0, 10.0, 1.0, typical=(0.2, 2.0)), True, "1 when moving around the centre at target_speed",
            {"target_speed": Bound(0.0, 3.0, 0.5, "m/s", "desired speed along the circle")}))
    return out


def reward_template(task: Task) -> RewardTemplate:
    """The reward template of ``task``: the term library with bounded weights, plus target terms.

    Weights range over [0, 10 x the library's largest typical weight]; the posture term's height
    becomes a target (``target_height``, [0, 2 x the initial height]).
    """
    library = term_library(task, task.schema)
    terms: dict[str, TemplateTerm] = {}
    goal_default_set = False
    for key, t in library.items():
        default = 0.0
        if t.goal and not goal_default_set:
            default, goal_default_set = 1.0, True
        elif key == "ctrl":
            default = 0.05
        bound = Bound(0.0, _round(10.0 * t.hi), default, typical=(t.lo, t.hi))
        if key == "posture":
            model = task.model
            data = mujoco.MjData(model)
            mujoco.mj_forward(model, data)
            h0 = float(data.xpos[task.schema.robot_root][2])
            root = task.schema.robot_root_name
            terms[key] = TemplateTerm(key, f'-(s.body_pos["{root}"][:, 2] - {{target_height}}).abs()', bound, t.goal,
                                      f"{root} kept near target_height",
                                      {"target_height": Bound(0.0, _round(2.0 * h0), round(h0, 3), "m",
                                                              f"desired height of {root} (initially {h0:.2f})")})
        else:
            terms[key] = TemplateTerm(key, t.expr, bound, t.goal, t.doc)
    for term in _target_terms(task):
        terms[term.key] = term
    return RewardTemplate(task_id=task.id, fitness=format_fitness(task.fitness), terms=terms)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def validate_params(template: RewardTemplate, obj: Any) -> dict[str, dict[str, float]]:
    """Check a proposal against the template; return it normalised (every target filled in).

    ``obj`` is a mapping or a JSON string; ``{"terms": {...}}`` is unwrapped. Raises ParamsError
    listing every problem and then every allowed key with its bounds.
    """
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            raise ParamsError(f"parameters are not valid JSON ({exc}); reply with one JSON object like "
                              f"{json.dumps(template.defaults())}") from None
    if isinstance(obj, dict) and set(obj) == {"terms"} and isinstance(obj["terms"], dict):
        obj = obj["terms"]
    if not isinstance(obj, dict):
        raise ParamsError(f"parameters must be a JSON object mapping term names to weights, got {type(obj).__name__}"
                          f"; allowed terms:\n{template.allowed()}")
    problems: list[str] = []
    out: dict[str, dict[str, float]] = {}
    for key, value in obj.items():
        term = template.terms.get(key) if isinstance(key, str) else None
        if term is None:
            problems.append(f"unknown term {key!r}; allowed terms: {', '.join(template.terms)}")
            continue
        if not isinstance(value, dict):
            value = {"weight": value}
        allowed = ["weight", *term.targets]
        entry: dict[str, float] = {}
        for sub in value:
            if sub not in allowed:
                problems.append(f"term {key!r}: unknown key {sub!r}; allowed keys: {', '.join(allowed)}")
        if "weight" not in value:
            problems.append(f"term {key!r}: missing 'weight' (a number in {term.weight.describe()})")
        for name in allowed:
            bound = term.weight if name == "weight" else term.targets[name]
            if name not in value:
                if name != "weight":
                    entry[name] = bound.default
                continue
            number = _number(value[name])
            what = "weight" if name == "weight" else f"target {name}"
            if number is None:
                problems.append(f"term {key!r}: {what} must be a finite number, got {value[name]!r}")
            elif not bound.lo <= number <= bound.hi:
                problems.append(f"term {key!r}: {what} {number:g} is out of bounds {bound.describe()}")
            else:
                entry[name] = number
        if "weight" in entry:
            out[key] = {"weight": entry.pop("weight"), **entry}
    if not problems and not any(out.get(k, {}).get("weight", 0.0) > 0 for k in template.goal_terms):
        problems.append(f"no goal term has a positive weight; give at least one of {', '.join(template.goal_terms)} "
                        "a weight above 0")
    if problems:
        message = ("invalid reward parameters:\n" + "\n".join(f"- {p}" for p in problems)
                   + f"\nallowed terms (goal terms marked) and bounds:\n{template.allowed()}")
        raise ParamsError(message, problems)
    return {k: out[k] for k in template.terms if k in out}


def render_params(template: RewardTemplate, params: Any) -> str:
    """Reward source (the reward contract) for valid parameters: the sum of ``weight * term``."""
    params = validate_params(template, params)
    lines = [f'"""Reward for {template.task_id}: parameter mode (reward template, fitness {template.fitness}).',
             "", "Parameters: " + json.dumps(params, sort_keys=False), '"""', "import math", "", "import torch",
             "", "", "def compute_reward(s):", "    components = {"]
    for key, values in params.items():
        if values["weight"] <= 0:
            continue
        term = template.terms[key]
        targets = {n: values[n] for n in term.targets}
        lines.append(f'        "{key}": {values["weight"]!r} * ({term.render(targets)}),  # {term.doc}')
    lines += ["    }", "    total = sum(components.values())", "    return total, components", ""]
    return "\n".join(lines)


def template_prompt(template: RewardTemplate) -> str:
    """What an LLM is told in parameter mode: the terms, their meaning and bounds, and the reply format."""
    lines = [
        f"Parameter mode: instead of writing code, choose the parameters of a fixed reward template for task "
        f"{template.task_id}. The reward is the sum over terms of weight * term.",
        "Reply with exactly one JSON object. Keys are term names; each value is either a number (the weight) or "
        "an object with \"weight\" and, for terms that have them, target values. A term you leave out is off "
        "(weight 0). Every number must lie within its bounds; unknown keys are rejected. At least one goal term "
        "must have a positive weight.",
        "",
        "Terms:",
    ]
    for key, term in template.terms.items():
        tag = "goal" if term.goal else "shaping"
        lines.append(f"- {key} ({tag}): {term.doc}. weight {term.weight.describe()}")
        lines.append(f"    term = {term.expr}")
        for name, b in term.targets.items():
            lines.append(f"    target {name}: {b.doc}, {b.describe()}, default {b.default:g}")
    lines += ["", "Example reply:", json.dumps(template.defaults())]
    return "\n".join(lines)


# ----- the template as a gene space for the offline proposer (rewardgen.proposers.genome)
def _tidy(template: RewardTemplate, params: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Four significant digits, still within bounds (readable sources and proposal records)."""
    out: dict[str, dict[str, float]] = {}
    for key, entry in params.items():
        term = template.terms[key]
        out[key] = {}
        for name, value in entry.items():
            b = term.weight if name == "weight" else term.targets[name]
            out[key][name] = min(max(float(f"{value:.4g}"), b.lo), b.hi)
    return out



class TemplateSpace:
    """Parameter mode's genes: the template's terms, weights log-uniform over their typical range,
    targets near their defaults (sampled) or moved by 10% of their range (mutated), all within bounds."""

    salt = 4243

    def __init__(self, task: Task):
        self.task = task
        self.template = reward_template(task)

    def keys(self) -> list[str]:
        return list(self.template.terms)

    def is_goal(self, key: str) -> bool:
        return self.template.terms[key].goal

    def _sampled_range(self, key: str) -> tuple[float, float]:
        weight = self.template.terms[key].weight
        return weight.typical or (max(weight.hi / 100, 1e-3), weight.hi / 10)

    def strong_weight(self, key: str) -> float:
        return self.clip_weight(key, self._sampled_range(key)[1])

    def new_gene(self, key: str, rng: np.random.Generator) -> dict[str, Any]:
        term = self.template.terms[key]
        lo, hi = self._sampled_range(key)
        weight = self.clip_weight(key, math.exp(rng.uniform(math.log(lo), math.log(hi))))
        return {"term": key, "weight": weight,
                **{n: _moved(b, b.default, rng, 0.05) for n, b in term.targets.items()}}

    def goal_gene(self, key: str) -> dict[str, Any]:
        return {"term": key, "weight": 1.0, **{n: b.default for n, b in self.template.terms[key].targets.items()}}

    def clip_weight(self, key: str, weight: float) -> float:
        bound = self.template.terms[key].weight
        return float(np.clip(weight, max(bound.lo, 1e-4), bound.hi))

    def mutate_targets(self, gene: dict[str, Any], rng: np.random.Generator) -> None:
        for name, b in self.template.terms[gene["term"]].targets.items():
            gene[name] = _moved(b, float(gene.get(name, b.default)), rng, 0.1)

    def start(self) -> tuple[list[dict[str, Any]], list[str], str]:
        return _genome(self.template.defaults()), ["template defaults"], "template defaults"

    def genome_of(self, record: CandidateRecord) -> list[dict[str, Any]] | None:
        params = record.proposal.get("params")
        if not isinstance(params, dict):
            return None
        return _genome({k: v for k, v in params.items() if isinstance(v, dict) and v.get("weight", 0) > 0}) or None

    def finish(self, genome: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """In template order, four significant digits, checked against the template."""
        params = {g["term"]: {k: v for k, v in g.items() if k != "term"} for g in genome}
        ordered = {k: params[k] for k in self.template.terms if k in params}
        return _genome(validate_params(self.template, _tidy(self.template, ordered)))

    def proposal(self, genome: list[dict[str, Any]], origin: str, parent: str | None, notes: list[str]) -> Proposal:
        params = {g["term"]: {k: v for k, v in g.items() if k != "term"} for g in genome}
        return Proposal(render_params(self.template, params), origin=origin, parent=parent, notes=notes,
                        extra={"mode": "params", "params": params})


#: the origin of a genome sampled from the template (not made from a parent)
FRESH_ORIGIN = "fresh sample from the reward template"


def _moved(b: Bound, value: float, rng: np.random.Generator, scale: float) -> float:
    return float(np.clip(value + rng.normal(0.0, scale * (b.hi - b.lo)), b.lo, b.hi))


def _genome(params: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    return [{"term": k, **v} for k, v in params.items()]
