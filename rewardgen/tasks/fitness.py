"""Trusted fitness functions: rewardgen's own measures of whether a task was achieved.

A fitness is a per-step measure read from the State plus a rule that turns an episode of those
values into one number. Selection uses only the fitness computed by ``rewardgen.evaluate.evaluator`` in a
process that never loaded candidate code. Proposers see a fitness's name and value, never this code.

Aggregations (``Fitness.episode_value(values, horizon)``, ``values`` = the per-step values of one
episode, ``horizon`` = the task's episode length limit):

- ``horizon``: sum of per-step values divided by the episode length limit, so an episode that ends
  early (the robot fell) scores zero for the time it did not live.
- ``final``: the mean of the per-step values over the last ``tail`` steps of the episode.
- ``max``: the largest per-step value of the episode (e.g. the highest jump).
- ``total``: the sum of the per-step values (e.g. turns completed: angular velocity x dt / 2 pi,
  summed, is the net rotation; an episode that ends early keeps what it achieved).

Every fitness also carries ``expr``, its per-step measure written as an expression of the reward
contract (over ``s``), so a reward can pay for it (see ``sparse_reward_source``); tests check that
the expression and the trusted function agree.

Success indicator (``Fitness.step_threshold``): the per-step value at or above which a step counts
as "on track for success". For ``horizon``, ``final`` and ``max`` it is the task's success threshold
itself; for ``total`` it is the threshold spread evenly over the episode (threshold / horizon), i.e.
the pace that reaches the threshold by the episode's end.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from rewardgen.contract.schema import AXES, Schema
from rewardgen.contract.state import State
from rewardgen.contract.syntax import parse
from rewardgen.errors import UserError

AGGREGATIONS = ("horizon", "final", "max", "total")
TWO_PI = 2.0 * math.pi


class FitnessError(UserError):
    """A fitness spec that names an unknown function, parameter or model element."""


@dataclass(frozen=True)
class Fitness:
    """A bound fitness: per-step measure + aggregation, for one schema."""

    name: str
    params: dict[str, Any]
    per_step: Callable[[State], torch.Tensor]
    aggregate: str  # one of AGGREGATIONS
    tail: int = 1
    doc: str = ""
    expr: str = ""  # the per-step measure as a reward-contract expression over ``s``
    unit: str = ""

    def episode_value(self, values: list[float], horizon: int) -> float:
        if not values:
            return 0.0
        if self.aggregate == "horizon":
            return float(sum(values) / max(horizon, 1))
        if self.aggregate == "max":
            return float(max(values))
        if self.aggregate == "total":
            return float(sum(values))
        tail = values[-self.tail:]
        return float(sum(tail) / len(tail))

    def step_threshold(self, success_threshold: float, horizon: int) -> float:
        """The per-step value at which a step is on track for ``success_threshold`` (see module doc)."""
        if self.aggregate == "total":
            return float(success_threshold) / max(int(horizon), 1)
        return float(success_threshold)


class EpisodeFitness:
    """``Fitness.episode_value`` for a batch of worlds, kept incrementally on the worlds' device.

    Training closes thousands of episodes; keeping every per-step value in Python lists (and reading
    each to the host) would cost a host round trip per step on a GPU. This keeps what each
    aggregation needs (sum, max, a ring of the last ``tail`` values) as float64 tensors instead.
    """

    def __init__(self, fitness: Fitness, num_worlds: int, horizon: int, device: torch.device | str = "cpu"):
        self.fitness, self.horizon, self.n = fitness, max(int(horizon), 1), int(num_worlds)
        dev, f64 = torch.device(device), torch.float64
        self.device = dev
        self.count = torch.zeros(self.n, dtype=torch.int64, device=dev)
        self.total = torch.zeros(self.n, dtype=f64, device=dev)
        self.best = torch.full((self.n,), -math.inf, dtype=f64, device=dev)
        self.ring = torch.zeros((self.n, max(int(fitness.tail), 1)), dtype=f64, device=dev)
        self._rows = torch.arange(self.n, device=dev)

    def add(self, values: torch.Tensor) -> None:
        """One step's per-step fitness values, shape (num_worlds,)."""
        v = values.detach().to(self.device, torch.float64)
        agg = self.fitness.aggregate
        if agg in ("horizon", "total"):
            self.total += v
        elif agg == "max":
            torch.maximum(self.best, v, out=self.best)
        else:
            self.ring[self._rows, self.count % self.ring.shape[1]] = v
        self.count += 1

    def value(self) -> torch.Tensor:
        """Every world's episode value so far (as ``episode_value`` of its values; 0 with none)."""
        agg, empty = self.fitness.aggregate, self.count == 0
        if agg == "horizon":
            out = self.total / self.horizon
        elif agg == "total":
            out = self.total.clone()
        elif agg == "max":
            out = self.best.clone()
        else:
            out = self.ring.sum(dim=1) / self.count.clamp(min=1, max=self.ring.shape[1])
        return out.masked_fill(empty, 0.0)

    def close(self, done: torch.Tensor) -> None:
        """Start new episodes for worlds where ``done`` (bool, (num_worlds,))."""
        self.count.masked_fill_(done, 0)
        self.total.masked_fill_(done, 0.0)
        self.best.masked_fill_(done, -math.inf)
        self.ring.masked_fill_(done[:, None], 0.0)


def _num(params: dict, key: str, default: float | None = None, *, positive: bool = False) -> float:
    value = params.get(key, default)
    if value is None:
        raise FitnessError(f"fitness needs parameter {key}=<number>")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise FitnessError(f"fitness parameter {key} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise FitnessError(f"fitness parameter {key} must be positive, got {value!r}")
    return float(value)


def _sign(params: dict) -> float:
    sign = _num(params, "sign", 1.0)
    if sign == 0:
        raise FitnessError("fitness parameter sign must be 1 or -1, got 0")
    return 1.0 if sign > 0 else -1.0


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


def _axis(params: dict, default: str = "x") -> int:
    axis = params.get("axis", default)
    if axis not in AXES:
        raise FitnessError(f"axis must be one of x, y, z, got {axis!r}")
    return AXES[axis]


def _known(params: dict, allowed: tuple[str, ...], name: str) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise FitnessError(f"{name} has no parameter {', '.join(unknown)}; its parameters: {', '.join(allowed)}")


def _signed(sign: float) -> str:
    return "" if sign > 0 else "-"


def forward_velocity(schema: Schema, params: dict) -> Fitness:
    """Mean velocity of a body along an axis over the whole episode horizon (m/s)."""
    _known(params, ("body", "axis", "sign"), "forward_velocity")
    body, axis, sign = _body(schema, params), _axis(params), _sign(params)
    return Fitness("forward_velocity", params, lambda s: sign * s.body_linvel[body][:, axis], "horizon",
                   doc=f"mean velocity of {body} along {'+' if sign > 0 else '-'}{'xyz'[axis]} over the episode horizon",
                   expr=f'{_signed(sign)}s.body_linvel["{body}"][:, {axis}]', unit="m/s")


def alive_fraction(schema: Schema, params: dict) -> Fitness:
    """Fraction of the episode horizon survived before termination (0..1)."""
    _known(params, (), "alive_fraction")
    return Fitness("alive_fraction", params, lambda s: torch.ones(s.num_worlds, device=s.qpos.device), "horizon",
                   doc="fraction of the episode horizon survived without termination",
                   expr="torch.ones_like(s.step)", unit="fraction")


def negative_distance(schema: Schema, params: dict) -> Fitness:
    """Minus the distance between two bodies/sites, averaged over the last ``tail`` steps (m)."""
    _known(params, ("a", "b", "dims", "tail"), "negative_distance")
    (ka, a), (kb, b) = _point(schema, params, "a"), _point(schema, params, "b")
    tail = int(_num(params, "tail", 10, positive=True))
    dims = params.get("dims", "xyz")
    if not isinstance(dims, str) or not dims or any(c not in AXES for c in dims):
        raise FitnessError(f"dims must be a string of x, y, z (e.g. xy), got {dims!r}")

    def pos(s: State, kind: str, name: str) -> torch.Tensor:
        return (s.body_pos if kind == "body" else s.site_pos)[name]

    idx = [AXES[c] for c in dims]
    ea = f's.{"body_pos" if ka == "body" else "site_pos"}["{a}"]'
    eb = f's.{"body_pos" if kb == "body" else "site_pos"}["{b}"]'
    return Fitness("negative_distance", params,
                   lambda s: -torch.linalg.norm((pos(s, ka, a) - pos(s, kb, b))[:, idx], dim=-1),
                   "final", tail=tail, doc=f"minus the distance {a}-{b} over the last {tail} steps",
                   expr=f"-torch.linalg.norm(({ea} - {eb})[:, {idx}], dim=-1)", unit="m")


def height(schema: Schema, params: dict) -> Fitness:
    """Mean height of a body over the episode horizon, or over the last ``tail`` steps when given (m)."""
    _known(params, ("body", "tail"), "height")
    body = _body(schema, params)
    expr = f's.body_pos["{body}"][:, 2]'
    if "tail" in params:
        tail = int(_num(params, "tail", positive=True))
        return Fitness("height", params, lambda s: s.body_pos[body][:, 2], "final", tail=tail,
                       doc=f"mean height of {body} over the last {tail} steps of the episode", expr=expr, unit="m")
    return Fitness("height", params, lambda s: s.body_pos[body][:, 2], "horizon",
                   doc=f"mean height of {body} over the episode horizon", expr=expr, unit="m")


def rotation(schema: Schema, params: dict) -> Fitness:
    """Net turns of a body about a world axis over the episode: sum of sign * angvel[axis] * dt / 2 pi.

    ``sign=-1`` about ``y`` is a backflip for a robot facing +x (nose up and over backwards); one full
    flip is 1.0. Turns the other way subtract, so rocking back and forth scores about zero.
    """
    _known(params, ("body", "axis", "sign"), "rotation")
    body, axis, sign = _body(schema, params), _axis(params, "y"), _sign(params)
    k = sign * schema.dt / TWO_PI
    direction = ("backward" if sign < 0 else "forward") if axis == 1 else ("+" if sign > 0 else "-") + "xyz"[axis]
    return Fitness("rotation", params, lambda s: k * s.body_angvel[body][:, axis], "total",
                   doc=f"net turns of {body} about the {'xyz'[axis]} axis ({direction}; 1.0 = one full turn) "
                       f"over the episode",
                   expr=f'{_signed(sign)}s.body_angvel["{body}"][:, {axis}] * s.dt / (2 * math.pi)', unit="turns")


def jump_height(schema: Schema, params: dict) -> Fitness:
    """Highest rise of a body above its resting height ``rest`` while within ``radius`` of (x0, y0) (m).

    Steps where the body is farther than ``radius`` (horizontally) from the start point count as 0,
    so leaping forward does not score: the jump must be in place.
    """
    _known(params, ("body", "rest", "radius", "x0", "y0"), "jump_height")
    body = _body(schema, params)
    if "rest" not in params:
        raise FitnessError(f"jump_height needs rest=<resting height of {body} in m> (its height when standing)")
    rest, radius = _num(params, "rest"), _num(params, "radius", 0.5, positive=True)
    x0, y0 = _num(params, "x0", 0.0), _num(params, "y0", 0.0)

    def per_step(s: State) -> torch.Tensor:
        p = s.body_pos[body]
        near = torch.sqrt((p[:, 0] - x0) ** 2 + (p[:, 1] - y0) ** 2) <= radius
        return torch.where(near, p[:, 2] - rest, torch.zeros_like(p[:, 2]))

    p = f's.body_pos["{body}"]'
    expr = (f"torch.where(torch.sqrt(({p}[:, 0] - {x0!r}) ** 2 + ({p}[:, 1] - {y0!r}) ** 2) <= {radius!r}, "
            f"{p}[:, 2] - {rest!r}, torch.zeros_like({p}[:, 2]))")
    return Fitness("jump_height", params, per_step, "max",
                   doc=f"highest rise of {body} above its resting height {rest:g} m during the episode, counted only "
                       f"while within {radius:g} m of the start", expr=expr, unit="m")


def circle_laps(schema: Schema, params: dict) -> Fitness:
    """Laps of a body around a centre in the horizontal plane (counterclockwise seen from above).

    The centre defaults to (x0, y0 + radius), so a robot starting at (x0, y0) heading +x begins on a
    counterclockwise circle. Per step: angular velocity about the centre x dt / 2 pi, counted only
    while the body is between radius/2 and 2*radius from the centre; the episode's sum is laps
    (1.0 = one full circle). ``sign=-1`` for clockwise.
    """
    _known(params, ("body", "radius", "center_x", "center_y", "sign"), "circle_laps")
    body, sign = _body(schema, params), _sign(params)
    radius = _num(params, "radius", 2.0, positive=True)
    cx, cy = _num(params, "center_x", 0.0), _num(params, "center_y", radius)
    k = sign * schema.dt / TWO_PI

    def per_step(s: State) -> torch.Tensor:
        p, v = s.body_pos[body], s.body_linvel[body]
        dx, dy = p[:, 0] - cx, p[:, 1] - cy
        r2 = dx * dx + dy * dy
        band = (r2 >= (0.5 * radius) ** 2) & (r2 <= (2.0 * radius) ** 2)
        omega = (dx * v[:, 1] - dy * v[:, 0]) / r2.clamp(min=1e-6)
        return torch.where(band, k * omega, torch.zeros_like(omega))

    p, v = f's.body_pos["{body}"]', f's.body_linvel["{body}"]'
    dx, dy = f"({p}[:, 0] - {cx!r})", f"({p}[:, 1] - {cy!r})"
    r2 = f"({dx} ** 2 + {dy} ** 2)"
    expr = (f"torch.where(({r2} >= {(0.5 * radius) ** 2!r}) & ({r2} <= {(2.0 * radius) ** 2!r}), "
            f"{_signed(sign)}({dx} * {v}[:, 1] - {dy} * {v}[:, 0]) / {r2}.clamp(min=1e-6) * s.dt / (2 * math.pi), "
            f"torch.zeros_like(s.step))")
    return Fitness("circle_laps", params, per_step, "total",
                   doc=f"laps of {body} around the point ({cx:g}, {cy:g}) at radius about {radius:g} m "
                       f"({'counterclockwise' if sign > 0 else 'clockwise'} seen from above; 1.0 = one full lap, "
                       f"counted while {0.5 * radius:g}-{2 * radius:g} m from the centre)",
                   expr=expr, unit="laps")


FITNESS_FUNCTIONS: dict[str, Callable[[Schema, dict], Fitness]] = {
    "forward_velocity": forward_velocity,
    "alive_fraction": alive_fraction,
    "negative_distance": negative_distance,
    "height": height,
    "rotation": rotation,
    "jump_height": jump_height,
    "circle_laps": circle_laps,
}

#: Fitnesses that only a body on the move can score: a policy that stands still cannot succeed.
MOVING_FITNESSES = ("forward_velocity", "circle_laps")

#: Fitnesses whose goal turns the main body away from the way it starts, so that its tilt is no fall:
#: a flip turns it over; rising (``height``) changes its posture (the stand-up humanoid starts on its
#: back, its torso's z axis out of its chest, and sits up by turning that axis past horizontal).
TURNING_FITNESSES = ("rotation", "height")

#: A default success threshold per fitness, used when a task (e.g. a bring-your-own robot) gives none.
#: They are generic (a robot of about a metre): give your own when your robot's scale differs.
DEFAULT_SUCCESS: dict[str, float] = {
    "forward_velocity": 0.5,  # m/s averaged over the episode horizon
    "alive_fraction": 0.95,
    "negative_distance": -0.05,  # within 5 cm
    "height": 0.5,  # m
    "rotation": 1.0,  # one full turn
    "jump_height": 0.2,  # m above rest
    "circle_laps": 1.0,  # one lap
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
        node = parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise FitnessError(f"cannot parse fitness {text!r}; expected e.g. forward_velocity(body=torso)") from None
    if isinstance(node, ast.Name):
        return {"name": node.id, "params": {}}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
        raise FitnessError(f"fitness must look like name(key=value, ...), got {text!r}")
    params: dict[str, Any] = {}
    for kw in node.keywords:
        v = kw.value
        if kw.arg is None:  # name(**x)
            raise FitnessError(f"fitness must look like name(key=value, ...), got {text!r}")
        if isinstance(v, ast.Constant):
            params[kw.arg] = v.value
        elif isinstance(v, ast.Name):
            params[kw.arg] = v.id
        elif (isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.USub) and isinstance(v.operand, ast.Constant)
              and isinstance(v.operand.value, int | float)):
            params[kw.arg] = -v.operand.value
        else:
            raise FitnessError(f"fitness parameter {kw.arg} must be a name or a number")
    return {"name": node.func.id, "params": params}


def format_fitness(spec: dict[str, Any]) -> str:
    """The inverse of ``parse_fitness``: ``{name, params}`` -> ``"name(k=v, ...)"``."""
    params = ", ".join(f"{k}={v}" for k, v in (spec.get("params") or {}).items())
    return f"{spec['name']}({params})"
