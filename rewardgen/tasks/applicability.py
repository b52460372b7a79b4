"""Does a fitness make sense for a robot? Checked when a robot is brought as an MJCF file.

A fitness that is well formed can still measure nothing on a given model: a body that cannot move
along the measured axis, a survival measure on a task that never terminates. ``check_applies``
says so in one line, before anything trains.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from rewardgen.contract.schema import Schema
from rewardgen.tasks.fitness import FitnessError, _axis, format_fitness, make_fitness


def _chain_joints(model: mujoco.MjModel, body_id: int) -> list[int]:
    """Every joint between a body and the world (its own and its ancestors')."""
    joints: list[int] = []
    b = body_id
    while b > 0:
        joints += range(int(model.body_jntadr[b]), int(model.body_jntadr[b]) + int(model.body_jntnum[b]))
        b = int(model.body_parentid[b])
    return joints


def _freedom(model: mujoco.MjModel, body_id: int) -> tuple[set[int], set[int]]:
    """World axes along which (translation) and about which (rotation) a body can move freely."""
    import mujoco

    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    trans: set[int] = set()
    rot: set[int] = set()
    for j in _chain_joints(model, body_id):
        kind = int(model.jnt_type[j])
        if kind == int(mujoco.mjtJoint.mjJNT_FREE):
            trans |= {0, 1, 2}
            rot |= {0, 1, 2}
            continue
        if kind == int(mujoco.mjtJoint.mjJNT_BALL):
            rot |= {0, 1, 2}
            continue
        axis = np.asarray(data.xaxis[j])
        aligned = {k for k in range(3) if abs(axis[k]) > 0.7 * (np.linalg.norm(axis) or 1.0)}
        if kind == int(mujoco.mjtJoint.mjJNT_SLIDE):
            trans |= aligned
        elif kind == int(mujoco.mjtJoint.mjJNT_HINGE) and not bool(model.jnt_limited[j]):
            rot |= aligned
    return trans, rot


def check_applies(spec: dict[str, Any], model: mujoco.MjModel, schema: Schema, *, terminates: bool = True) -> None:
    """Raise FitnessError (one line, with the reason) when a valid spec cannot measure anything on this model.

    ``forward_velocity`` and ``circle_laps`` need the body to be free to translate along the axis
    (a free joint, or a slide joint along it, between the body and the world); ``jump_height`` the
    same vertically; ``rotation`` needs a free or ball joint, or an unlimited hinge along the axis;
    ``alive_fraction`` needs episodes that can end early (``terminates``).
    """
    fitness = make_fitness(spec, schema)
    name, params = fitness.name, fitness.params
    text = format_fitness(spec)
    if name == "alive_fraction" and not terminates:
        raise FitnessError(f"{text} does not apply: episodes of this task never end early (no termination rule), "
                           "so every policy scores 1.0; give the task a healthy height range or choose another fitness")
    body = params.get("body")
    if not isinstance(body, str):
        return
    body_id = schema.body_ids[schema.bodies.index(body)]
    trans, rot = _freedom(model, body_id)
    fixed = "" if _chain_joints(model, body_id) else "; the body is welded to the world"
    if name in ("forward_velocity", "circle_laps"):
        need = [_axis(params)] if name == "forward_velocity" else [0, 1]
        missing = [k for k in need if k not in trans]
        if missing:
            axes = " and ".join("xyz"[k] for k in missing)
            raise FitnessError(f"{text} does not apply: body {body!r} cannot translate along {axes} (no free joint and "
                               f"no slide joint along {axes} between it and the world{fixed}); a robot whose root is "
                               f"fixed cannot travel: give its root a free joint (<freejoint/>) or slide joints")
    elif name == "jump_height" and 2 not in trans:
        raise FitnessError(f"{text} does not apply: body {body!r} cannot move vertically (no free joint and no slide "
                           f"joint along z between it and the world{fixed})")
    elif name == "rotation" and _axis(params, "y") not in rot:
        ax = "xyz"[_axis(params, "y")]
        raise FitnessError(f"{text} does not apply: body {body!r} cannot turn freely about {ax} (no free or ball joint "
                           f"and no unlimited hinge along {ax} between it and the world{fixed})")
