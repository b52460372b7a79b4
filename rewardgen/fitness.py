"""Trusted fitness functions: rewardgen's own measures of whether a task was achieved.

A fitness is a per-step measure read from the State plus a rule that turns an episode of those
values into one number. Selection uses only the fitness computed by ``rewardgen.evaluate`` in a
process that never loaded candidate code. Proposers see a fitness's name and value, never this code.

Aggregations:
- ``horizon``: sum of per-step values divided by the episode length limit, so an episode that ends
  early (the robot fell) scores zero for the time it did not live.
- ``final``: the mean of the per-step values over the last ``tail`` steps of the episode.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from rewardgen.schema import Schema
from rewardgen.state import State

_AXES = {"x": 0, "y": 1, "z": 2}


class FitnessError(ValueError):
    """A fitness spec that names an unknown function, parameter or model element."""


@dataclass(frozen=True)
class Fitness:
    """A bound fitness: per-step measure + aggregation, for one schema."""

    name: str
    params: dict[str, Any]
    per_step: Callable[[State], torch.Tensor]
    aggregate: str  # "horizon" or "final"
    tail: int = 1
    doc: str = ""

    def episode_value(self, values: list[float], horizon: int) -> float:
        if not values:
            return 0.0
        if self.aggregate == "horizon":
            return float(sum(values) / max(horizon, 1))
        tail = values[-self.tail:]
        return float(sum(tail) / len(tail))


def _body(schema: Schema, params: dict, key: str = "body") -> str:
    name = params.get(key)
    if not isinstance(name, str):
        raise FitnessError(f"fitness needs parameter {key}=<body name>; bodies: {', '.join(schema.bodies)}")
    if name not in schema.bodies:
        raise FitnessError(f"no body named {name!r}; bodies are: {', '.join(schema.bodies)}")
    return name


def _point(schema: Schema, params: dict, key: str) -> tuple[str, str]:
    """A body or site name for parameter ``key``: ('body'|'site', name)."""
    name = params.get(key)
    if isinstance(name, str) and name in schema.bodies:
        return "body", name
    if isinstance(name, str) and name in schema.sites:
        return "site", name
    raise FitnessError(f"parameter {key}={name!r} is neither a body nor a site of this model; "
                       f"bodies: {', '.join(schema.bodies)}; sites: {', '.join(schema.sites) or '(none)'}")


def _axis(params: dict) -> int:
    axis = params.get("axis", "x")
    if axis not in _AXES:
        raise FitnessError(f"axis must be one of x, y, z, got {axis!r}")
    return _AXES[axis]


def forward_velocity(schema: Schema, params: dict) -> Fitness:
    """Mean velocity of a body along an axis over the whole episode horizon (m/s)."""
    body, axis = _body(schema, params), _axis(params)
    sign = float(params.get("sign", 1.0))
    return Fitness("forward_velocity", params, lambda s: sign * s.body_linvel[body][:, axis], "horizon",
                   doc=f"mean velocity of {body} along {'+' if sign > 0 else '-'}{'xyz'[axis]} over the episode horizon")


def alive_fraction(schema: Schema, params: dict) -> Fitness:
    """Fraction of the episode horizon survived before termination (0..1)."""
    return Fitness("alive_fraction", params, lambda s: torch.ones(s.num_worlds), "horizon",
                   doc="fraction of the episode horizon survived without termination")


def negative_distance(schema: Schema, params: dict) -> Fitness:
    """Minus the distance between two bodies/sites, averaged over the last ``tail`` steps (m)."""
    (ka, a), (kb, b) = _point(schema, params, "a"), _point(schema, params, "b")
    tail = int(params.get("tail", 10))
    dims = params.get("dims", "xyz")

    def pos(s: State, kind: str, name: str) -> torch.Tensor:
        return (s.body_pos if kind == "body" else s.site_pos)[name]

    idx = [_AXES[c] for c in dims]
    return Fitness("negative_distance", params,
                   lambda s: -torch.linalg.norm((pos(s, ka, a) - pos(s, kb, b))[:, idx], dim=-1),
                   "final", tail=tail, doc=f"minus the distance {a}-{b} over the last {tail} steps")


def height(schema: Schema, params: dict) -> Fitness:
    """Mean height of a body over the episode horizon (m)."""
    body = _body(schema, params)
    return Fitness("height", params, lambda s: s.body_pos[body][:, 2], "horizon",
                   doc=f"mean height of {body} over the episode horizon")


FITNESS_FUNCTIONS: dict[str, Callable[[Schema, dict], Fitness]] = {
    "forward_velocity": forward_velocity,
    "alive_fraction": alive_fraction,
    "negative_distance": negative_distance,
    "height": height,
}


def make_fitness(spec: dict[str, Any], schema: Schema) -> Fitness:
    """Bind a spec ``{name, params}`` to a schema, checking every name it mentions."""
    name = spec.get("name")
    if name not in FITNESS_FUNCTIONS:
        raise FitnessError(f"unknown fitness {name!r}; available: {', '.join(FITNESS_FUNCTIONS)}")
    return FITNESS_FUNCTIONS[name](schema, dict(spec.get("params") or {}))


def parse_fitness(text: str) -> dict[str, Any]:
    """Parse ``"forward_velocity(body=torso, axis=x)"`` into ``{name, params}``."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise FitnessError(f"cannot parse fitness {text!r}; expected e.g. forward_velocity(body=torso)") from None
    if isinstance(node, ast.Name):
        return {"name": node.id, "params": {}}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
        raise FitnessError(f"fitness must look like name(key=value, ...), got {text!r}")
    params: dict[str, Any] = {}
    for kw in node.keywords:
        v = kw.value
        if isinstance(v, ast.Constant):
            params[kw.arg] = v.value
        elif isinstance(v, ast.Name):
            params[kw.arg] = v.id
        elif isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.USub) and isinstance(v.operand, ast.Constant):
            params[kw.arg] = -v.operand.value
        else:
            raise FitnessError(f"fitness parameter {kw.arg} must be a name or a number")
    return {"name": node.func.id, "params": params}
