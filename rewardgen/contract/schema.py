"""Derive a robot's schema from its MjModel alone: element names, indices and a prompt description.

Nothing here is written per robot. Any gymnasium MuJoCo env or MJCF file gets the same treatment,
so a new robot needs no hand-written schema. Unnamed elements get stable generated names
(``body4``, ``joint2``, ``site0``, ``actuator1``) derived from their index in the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import mujoco
import numpy as np

_FREE, _BALL, _SLIDE, _HINGE = (int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL),
                                int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE))
_JOINT_KIND = {_FREE: "free", _BALL: "ball", _SLIDE: "slide", _HINGE: "hinge"}
_JOINT_TRANSMISSIONS = (int(mujoco.mjtTrn.mjTRN_JOINT), int(mujoco.mjtTrn.mjTRN_JOINTINPARENT))
_AXIS_NAMES = ("x", "y", "z")
#: a world axis by name -> its index in a position or velocity vector (fitness specs and reward terms name axes)
AXES = {name: i for i, name in enumerate(_AXIS_NAMES)}


def _name(model: mujoco.MjModel, obj: mujoco.mjtObj, index: int, prefix: str) -> str:
    name = mujoco.mj_id2name(model, obj, index)
    return name if name else f"{prefix}{index}"


def _axis_label(vec: np.ndarray) -> str:
    """'+x', '-z' for an axis-aligned vector, else the rounded vector."""
    k = int(np.argmax(np.abs(vec)))
    if np.isclose(abs(vec[k]), np.linalg.norm(vec), atol=1e-6):
        return ("+" if vec[k] > 0 else "-") + _AXIS_NAMES[k]
    return "(" + ", ".join(f"{v:.2f}" for v in vec) + ")"


@dataclass(frozen=True)
class Schema:
    """Names and indices of everything a reward may read, derived from one MjModel.

    ``bodies`` excludes the world body. ``joints`` lists hinge and slide joints only (free and ball
    joints are read through the body fields of the body they move). ``robot_root`` is the body whose
    subtree is "the robot" for ``com_pos``/``com_vel``: the root of the first actuated kinematic tree.
    """

    model_name: str
    nq: int
    nv: int
    nu: int
    dt: float
    frame_skip: int
    bodies: tuple[str, ...]
    body_ids: tuple[int, ...]
    joints: tuple[str, ...]
    joint_ids: tuple[int, ...]
    joint_qpos_adr: tuple[int, ...]
    joint_dof_adr: tuple[int, ...]
    sites: tuple[str, ...]
    site_ids: tuple[int, ...]
    actuators: tuple[str, ...]
    robot_root: int
    up_axis: str = "+z"
    forward_axis: str = "+x"
    description: str = field(default="", compare=False)

    def body_index(self, name: str) -> int:
        """Position of a body in the State's body fields; KeyError names the choices."""
        try:
            return self.bodies.index(name)
        except ValueError:
            raise KeyError(f"no body named {name!r}; bodies are: {', '.join(self.bodies)}") from None

    @property
    def robot_root_name(self) -> str:
        """The name of the ``robot_root`` body (the first body when the robot's root is the world)."""
        if self.robot_root in self.body_ids:
            return self.bodies[self.body_ids.index(self.robot_root)]
        return self.bodies[0]


def find_robot_root(model: mujoco.MjModel) -> int:
    """The body id of "the robot": the root of the kinematic tree that the first joint-driven
    actuator moves; without one, body 1 (or the world, 0, when the model has no other body)."""
    for a in range(model.nu):
        if int(model.actuator_trntype[a]) in _JOINT_TRANSMISSIONS:
            body = model.jnt_bodyid[model.actuator_trnid[a, 0]]
            return int(model.body_rootid[body])
    return 1 if model.nbody > 1 else 0


def derive_schema(model: mujoco.MjModel, *, model_name: str, frame_skip: int) -> Schema:
    """Build the Schema (and its prompt description) from a compiled model."""
    body_ids = tuple(range(1, model.nbody))
    bodies = tuple(_name(model, mujoco.mjtObj.mjOBJ_BODY, b, "body") for b in body_ids)
    joint_ids = tuple(
        j for j in range(model.njnt)
        if int(model.jnt_type[j]) in (_HINGE, _SLIDE)
    )
    joints = tuple(_name(model, mujoco.mjtObj.mjOBJ_JOINT, j, "joint") for j in joint_ids)
    site_ids = tuple(range(model.nsite))
    sites = tuple(_name(model, mujoco.mjtObj.mjOBJ_SITE, s, "site") for s in site_ids)
    actuators = tuple(_name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a, "actuator") for a in range(model.nu))
    gravity = np.asarray(model.opt.gravity, dtype=float)
    up = _axis_label(-gravity) if np.linalg.norm(gravity) > 0 else "+z"
    schema = Schema(
        model_name=model_name,
        nq=model.nq,
        nv=model.nv,
        nu=model.nu,
        dt=float(model.opt.timestep * frame_skip),
        frame_skip=frame_skip,
        bodies=bodies,
        body_ids=body_ids,
        joints=joints,
        joint_ids=joint_ids,
        joint_qpos_adr=tuple(int(model.jnt_qposadr[j]) for j in joint_ids),
        joint_dof_adr=tuple(int(model.jnt_dofadr[j]) for j in joint_ids),
        sites=sites,
        site_ids=site_ids,
        actuators=actuators,
        robot_root=find_robot_root(model),
        up_axis=up,
        forward_axis="+x",
    )
    return _with_description(schema, model)


def _fmt_range(lo: float, hi: float, limited: bool, unit: str) -> str:
    return f"[{lo:.3g}, {hi:.3g}] {unit}" if limited else "unlimited"


def _with_description(schema: Schema, model: mujoco.MjModel) -> Schema:
    """Attach a compact, Text2Reward-style text description of the robot for prompts."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    body_name = {b: n for b, n in zip(schema.body_ids, schema.bodies)}
    body_name[0] = "world"
    lines: list[str] = []
    add = lines.append
    add(f"Robot model: {schema.model_name}")
    add(f"Timing: s.dt = {schema.dt:.4g} s per environment step "
        f"(physics timestep {model.opt.timestep:.4g} s x frame skip {schema.frame_skip}).")
    add(f"World: up axis {schema.up_axis} (gravity {np.linalg.norm(model.opt.gravity):.3g} m/s^2); "
        f"forward axis {schema.forward_axis}; units: metres, radians, seconds, newtons.")
    add(f"Generalised coordinates: nq={schema.nq} (s.qpos), nv={schema.nv} (s.qvel), "
        f"nu={schema.nu} actuators (s.action, s.ctrl).")
    robot = body_name.get(schema.robot_root, "world")
    add(f"The robot is the subtree of body '{robot}'; s.com_pos / s.com_vel are its centre of mass.")
    add("")
    add("Bodies (keys of s.body_pos, s.body_quat, s.body_linvel, s.body_angvel, s.body_up, s.contact_force; a "
        "body's position is its frame's origin, which need not be its centre or a joint):")
    total_mass = float(model.body_subtreemass[schema.robot_root]) if schema.robot_root else 0.0
    for b, name in zip(schema.body_ids, schema.bodies):
        parent = body_name.get(int(model.body_parentid[b]), "world")
        pos = data.xpos[b]
        note = f"  {name}: parent {parent}, mass {model.body_mass[b]:.3g} kg, " \
               f"initial world position ({pos[0]:.3g}, {pos[1]:.3g}, {pos[2]:.3g})"
        if b == schema.robot_root:
            note += f", robot root (total robot mass {total_mass:.3g} kg)"
        free = [j for j in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b])
                if int(model.jnt_type[j]) == _FREE]
        if free:
            note += ", floats freely (free joint)"
        add(note)
    add("")
    add("Joints (keys of s.joint_pos, s.joint_vel; hinge in rad and rad/s, slide in m and m/s):")
    if not schema.joints:
        add("  (none)")
    for j, name, qadr in zip(schema.joint_ids, schema.joints, schema.joint_qpos_adr):
        kind = _JOINT_KIND[int(model.jnt_type[j])]
        unit = "rad" if kind == "hinge" else "m"
        axis_world = data.xaxis[j]
        lo, hi = model.jnt_range[j]
        rng = _fmt_range(lo, hi, bool(model.jnt_limited[j]), unit)
        anchor = data.xanchor[j]
        at = f" at ({anchor[0]:.3g}, {anchor[1]:.3g}, {anchor[2]:.3g})" if kind == "hinge" else ""
        add(f"  {name}: {kind} on body {body_name[int(model.jnt_bodyid[j])]}{at}, "
            f"axis {_axis_label(axis_world)} (world, initial), range {rng}, s.qpos[:, {qadr}]")
    for j in (j for j in range(model.njnt) if j not in schema.joint_ids):
        kind = _JOINT_KIND[int(model.jnt_type[j])]
        width = 7 if kind == "free" else 4
        jn = _name(model, mujoco.mjtObj.mjOBJ_JOINT, j, "joint")
        adr = int(model.jnt_qposadr[j])
        add(f"  ({jn}: {kind} joint of body {body_name[int(model.jnt_bodyid[j])]}, s.qpos[:, {adr}:{adr + width}]; "
            f"not in s.joint_pos: read that body's s.body_pos / s.body_quat / velocities)")
    add("")
    add("Sites (keys of s.site_pos):")
    if not schema.sites:
        add("  (none)")
    for s, name in zip(schema.site_ids, schema.sites):
        add(f"  {name}: on body {body_name[int(model.site_bodyid[s])]}")
    add("")
    add("Actuators (column i of s.action in [-1, 1] maps linearly onto the control range; s.ctrl is applied):")
    for a, name in enumerate(schema.actuators):
        target = ""
        if int(model.actuator_trntype[a]) in _JOINT_TRANSMISSIONS:
            target = f"drives joint {_name(model, mujoco.mjtObj.mjOBJ_JOINT, int(model.actuator_trnid[a, 0]), 'joint')}"
        lo, hi = model.actuator_ctrlrange[a]
        rng = _fmt_range(lo, hi, bool(model.actuator_ctrllimited[a]), "")
        add(f"  [{a}] {name}: {target or 'other transmission'}, gear {model.actuator_gear[a, 0]:.3g}, "
            f"ctrl range {rng.strip()}")
    return replace(schema, description="\n".join(lines))
