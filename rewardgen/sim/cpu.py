"""A batch of N worlds of one task, stepped together in native code.

``BatchSim`` reproduces the task's gymnasium env (same model, frame skip, reset distribution,
termination rules, time limit, observation layout, env reward) for N worlds at once, and produces
the reward contract's ``State`` as batched arrays. What each env observes, when it ends, what it
pays and how it resets is its rules class (``rewardgen.sim.rules``), shared with ``WarpSim``; this
module only provides what those rules read (a ``GymView``) and a per-world ``Draw`` of reset noise.

How it is fast (measured on 2 cores, see docs/benchmarks.md): physics runs in ``mujoco.rollout``'s
native thread pool with the GIL released, frame skip included, so one Python call advances every
world by one environment step. Everything the State and the observations need is read from
sensors that are added to the model through ``mujoco.MjSpec`` and come back batched:

* the *dynamics* model carries contact sensors (net contact force per body) and frame sensors for
  every body (and whatever else the env's rules read: sites, inertial frames, body velocities,
  joint actuator and limit forces). Sensors are computed before the last integration substep, which
  is exactly when gymnasium reads ``xpos``/``cfrc_ext``/``cinert``... after ``mj_step`` (they are
  stale there too), so these match the env bit for bit;
* a *probe* model (the same model with constraints disabled) is evaluated once per env step at the
  new state: its kinematic sensors (framepos/framequat/framezaxis/framelinvel/frameangvel,
  subtreecom/subtreelinvel) give what ``refresh_derived`` computes, as the State requires. With RK4
  (which leaves gymnasium's derived quantities at its last stage, a state no sensor sees) the probe
  keeps constraints and provides the env's view too, at the new state: close, not equal.

The only per-world Python work is sampling the reset noise of worlds that finished an episode, so
each world keeps its own generator and resets are the same as gymnasium's for the same seed.
"""

from __future__ import annotations

import os
import time
import types
import warnings
from functools import cached_property

import mujoco
import numpy as np
import torch
from array_api_compat import numpy as compat_numpy
from mujoco import _rollout

from rewardgen.contract.state import State
from rewardgen.sim import StepResult
from rewardgen.sim.rules import EnvMirror, init_from_env
from rewardgen.tasks.spec import Task

_S = mujoco.mjtSensor
_XBODY, _SITE, _BODY = mujoco.mjtObj.mjOBJ_XBODY, mujoco.mjtObj.mjOBJ_SITE, mujoco.mjtObj.mjOBJ_BODY
_JOINT = mujoco.mjtObj.mjOBJ_JOINT
_FULL = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
_CTRL = int(mujoco.mjtState.mjSTATE_CTRL)
_CONTACT_FORCE, _CONTACT_TORQUE, _CONTACT_POS = 2, 4, 16  # contact sensor data bits
_REDUCE_NETFORCE = 3
_SLIDE_HINGE = (int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE))

#: the namespace the env rules run in here: array-api-compat's numpy, with numpy's own ``clip`` (the
#: same numbers; the wrapper costs ~35 us a call, on the step's hot path)
xnp = types.SimpleNamespace(**({k: getattr(compat_numpy, k) for k in dir(compat_numpy) if not k.startswith("__")}
                               | {"__name__": compat_numpy.__name__, "clip": np.clip}))


class _Sensors:
    """Adds sensors to an MjSpec and remembers where each one lands in sensordata."""

    def __init__(self, spec: mujoco.MjSpec):
        self.spec = spec
        self.slices: dict[str, slice] = {}
        self._adr = 0

    def add(self, key: str, kind, objtype, objname: str, dim: int, intprm=None) -> None:
        s = self.spec.add_sensor()
        s.name = f"__rg_{key}"
        s.type = kind
        s.objtype = objtype
        s.objname = objname
        if intprm is not None:
            for i, v in enumerate(intprm):
                s.intprm[i] = v
        self.slices[key] = slice(self._adr, self._adr + dim)
        self._adr += dim


def _compile(spec: mujoco.MjSpec) -> mujoco.MjModel:
    with warnings.catch_warnings():  # gymnasium's XMLs use attributes MuJoCo now deprecates
        warnings.simplefilter("ignore")
        return spec.compile()


def _name_everything(spec: mujoco.MjSpec) -> tuple[list[str], list[str], list[str]]:
    """Give unnamed bodies/sites/joints a name (sensors refer to elements by name); return the names."""
    bodies = []
    for i, b in enumerate(spec.bodies):
        if i and not b.name:
            b.name = f"__rg_body{i}"
        bodies.append(b.name)
    sites = []
    for i, s in enumerate(spec.sites):
        if not s.name:
            s.name = f"__rg_site{i}"
        sites.append(s.name)
    joints = []
    for i, j in enumerate(spec.joints):
        if not j.name:
            j.name = f"__rg_joint{i}"
        joints.append(j.name)
    return bodies, sites, joints


class _WorldDraw:
    """``rules.base.Draw`` for one world (n == 1) from its own generator, consumed as gymnasium's
    ``np_random`` is: ``uniform(low, high, size=(1, k))`` draws the same numbers as ``size=k``."""

    n = 1

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def uniform(self, low: float, high: float, size: int) -> np.ndarray:
        return self.rng.uniform(low=low, high=high, size=(1, size))

    def normal(self, size: int) -> np.ndarray:
        return self.rng.standard_normal((1, size))

    def rows(self, vector: np.ndarray) -> np.ndarray:
        return np.array(vector, dtype=np.float64)[None, :]

    def until(self, sample, accept) -> np.ndarray:
        while True:
            x = sample()
            if bool(accept(x)[0]):
                return x


class _SensorView:
    """``rules.base.GymView`` of a batch of worlds, read from sensordata: ``sens`` holds what the env
    reads after its step (or reset), ``fresh`` the probe's evaluation of the new state. Each quantity
    is computed on first use; only those the rules declare (``EnvRules.reads``) are available."""

    def __init__(self, sim: BatchSim, qpos: np.ndarray, qvel: np.ndarray, sens: np.ndarray, fresh: np.ndarray,
                 *, qpos_before: np.ndarray | None = None, action: np.ndarray | None = None,
                 ctrl: np.ndarray | None = None, after_reset: bool = False):
        self._sim, self._sens, self._fresh = sim, sens, fresh
        self.n = qpos.shape[0]
        self.qpos, self.qvel, self.qpos_before = qpos, qvel, qpos_before
        self.action, self.ctrl = action, ctrl
        self.after_reset = after_reset

    def _rows(self, sens: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """(N, nbody, k) from an (nbody-1, k) index array; the world's row (0) is zero."""
        out = np.zeros((self.n, self._sim.model.nbody, idx.shape[1]))
        out[:, 1:] = sens[:, idx]
        return out

    def _index(self, quantity: str) -> dict[str, np.ndarray]:
        if quantity not in self._sim.rules.reads:
            raise AttributeError(f"the rules of {self._sim.kind} do not declare that they read {quantity!r}")
        return self._sim._gym_idx

    @cached_property
    def xpos(self) -> np.ndarray:
        return self._rows(self._sens, self._index("xpos")["xpos"])

    @cached_property
    def xpos_now(self) -> np.ndarray:
        return self._rows(self._fresh, self._index("xpos_now")["xpos"])

    @cached_property
    def site_xpos(self) -> np.ndarray:
        return self._sens[:, self._index("site_xpos")["site"]]

    @cached_property
    def xipos(self) -> np.ndarray:
        return self._rows(self._sens, self._index("xipos")["xipos"])

    @cached_property
    def cfrc_ext(self) -> np.ndarray:
        """gym's ``data.cfrc_ext`` (N, nbody, 6): com-based [torque, force] of the net contact force
        on each body, about the subtree com of the body's root (zero right after a reset)."""
        idx = self._index("cfrc_ext")
        out = np.zeros((self.n, self._sim.model.nbody, 6))
        if self.after_reset:
            return out
        c = self._sens[:, idx["contact"]]  # (N, B, 9): force, torque, pos (world frame, on body)
        f = self.contact_force
        ref = self._sens[:, idx["root_com"]]  # (N, B, 3) or (N, 1, 3)
        out[:, 1:, :3] = np.cross(c[..., 6:9] - ref, f) - c[..., 3:6]
        out[:, 1:, 3:] = f
        return out

    @cached_property
    def contact_force(self) -> np.ndarray:
        """(N, nbody-1, 3): the net contact force on bodies 1.. (``cfrc_ext[:, 1:, 3:]``; the State's)."""
        return -self._sens[:, self._sim._gym_idx["contact"][:, 0:3]]

    @cached_property
    def cinert(self) -> np.ndarray:
        """gym's ``data.cinert`` (N, nbody, 10): each body's inertia about its root's subtree com in
        world axes (xx, yy, zz, xy, xz, yz), mass x offset, mass (MuJoCo's ``mju_inertCom``)."""
        idx = self._index("cinert")
        m = self._sim.model
        mass, inertia = m.body_mass[1:], m.body_inertia[1:]
        rot = self._sens[:, idx["ximat"]]  # (N, B, 3 axes, 3): rows are the x, y, z axes, so R = rot^T
        full = np.einsum("nbki,bk,nbkj->nbij", rot, inertia, rot)
        dif = self._sens[:, idx["xipos"]] - self._sens[:, idx["root_com"]]
        mb = mass[None, :]
        d0, d1, d2 = dif[..., 0], dif[..., 1], dif[..., 2]
        out = np.zeros((self.n, m.nbody, 10))
        c = out[:, 1:]
        c[..., 0] = full[..., 0, 0] + mb * (d1 * d1 + d2 * d2)
        c[..., 1] = full[..., 1, 1] + mb * (d0 * d0 + d2 * d2)
        c[..., 2] = full[..., 2, 2] + mb * (d0 * d0 + d1 * d1)
        c[..., 3] = full[..., 0, 1] - mb * d0 * d1
        c[..., 4] = full[..., 0, 2] - mb * d0 * d2
        c[..., 5] = full[..., 1, 2] - mb * d1 * d2
        c[..., 6:9] = mb[..., None] * dif
        c[..., 9] = mb
        return out

    @cached_property
    def cvel(self) -> np.ndarray:
        """gym's ``data.cvel`` (N, nbody, 6): [angular, linear] velocity of each body at its root's
        subtree com (the body's origin velocity moved there)."""
        idx = self._index("cvel")
        ang = self._sens[:, idx["angvel"]]
        lin = self._sens[:, idx["linvel"]]
        offset = self._sens[:, idx["root_com"]] - self._sens[:, idx["xpos"]]
        out = np.zeros((self.n, self._sim.model.nbody, 6))
        out[:, 1:, :3] = ang
        out[:, 1:, 3:] = lin + np.cross(ang, offset)
        return out

    @cached_property
    def qfrc_actuator(self) -> np.ndarray:
        """gym's ``data.qfrc_actuator`` (N, nv) on slide and hinge joints (actuator forces on free and
        ball joints are not modelled: zero)."""
        idx = self._index("qfrc_actuator")
        out = np.zeros((self.n, self._sim.nv))
        out[:, idx["actfrc_dof"]] = self._sens[:, idx["actfrc"]]
        return out

    @cached_property
    def qfrc_constraint(self) -> np.ndarray:
        """gym's ``data.qfrc_constraint`` (N, nv), its joint-limit part on slide and hinge joints
        (contacts and equality constraints are not modelled: zero): the limit's force, pushing away
        from the nearer end of the joint's range."""
        idx = self._index("qfrc_constraint")
        out = np.zeros((self.n, self._sim.nv))
        q = self.qpos[:, idx["limfrc_qadr"]]
        lo, hi = idx["limfrc_range"][:, 0], idx["limfrc_range"][:, 1]
        sign = np.where(q - lo < hi - q, 1.0, -1.0)
        out[:, idx["limfrc_dof"]] = sign * self._sens[:, idx["limfrc"]]
        return out


class BatchSim(EnvMirror):
    """N worlds of ``task`` stepped in lockstep; gymnasium semantics per world, auto-reset.

    :param task: the task (gymnasium v5 env or MJCF file).
    :param num_worlds: N.
    :param seed: seeds every world's reset generator (world i gets ``world_seeds[i]``).
    :param nthread: native threads for physics (default: all cores).
    :param world_seeds: explicit per-world seeds; ``gym_env.reset(seed=world_seeds[i])`` then
        starts from exactly the same state as world i (the tests rely on it).
    """

    def __init__(self, task: Task, num_worlds: int, seed: int = 0, nthread: int | None = None,
                 world_seeds: list[int] | None = None):
        self.task = task
        self.n = int(num_worlds)
        init_from_env(self, task)
        u = self.u
        self.init_qpos = np.array(u.init_qpos, dtype=np.float64)
        self.init_qvel = np.array(u.init_qvel, dtype=np.float64)
        m = self.model
        reads = self.rules.reads
        # Single-stage integrators: gymnasium's post-step xpos/cfrc_ext are those of the last
        # substep's start, which the dynamics model's sensors capture exactly. RK4 leaves them at
        # its last stage (a full-step predictor no sensor sees); the closest observable is the new
        # state, so the probe then keeps constraints on and provides them.
        self._rk4 = m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4

        # --- models with sensors -------------------------------------------------------------
        self._dyn_model, self._dyn = self._build_model(mujoco.MjSpec.from_file(u.fullpath), gym_extras=not self._rk4,
                                                       probe=False)
        self._probe_model, self._probe = self._build_model(mujoco.MjSpec.from_file(u.fullpath), gym_extras=True,
                                                           probe=True)
        # same physics as the env's model (env kwargs may have changed options after loading)
        for mm in (self._dyn_model, self._probe_model):
            assert mm.nq == m.nq and mm.nv == m.nv and mm.nu == m.nu and mm.nbody == m.nbody
        self._copy_options(m, self._dyn_model)
        self._copy_options(m, self._probe_model)
        # the probe's integration is thrown away: one forward evaluation is all it needs
        self._probe_model.opt.integrator = mujoco.mjtIntegrator.mjINT_EULER
        if not self._rk4 and "qfrc_constraint" not in reads:
            self._probe_model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT)
        # envs that read actuator forces get the step's controls in the probe (its contact forces then
        # include the actuation, as gymnasium's do); the others evaluate it at zero controls, which
        # changes none of its positions or velocities
        self._probe_ctrl_of_step = "qfrc_actuator" in reads

        nthread = int(nthread if nthread is not None else max(1, min(os.cpu_count() or 1, 16)))
        self.nthread = nthread
        self._pool = _rollout.Rollout(nthread=nthread if nthread > 1 else 0)
        self._datas_dyn = [mujoco.MjData(self._dyn_model) for _ in range(max(nthread, 1))]
        self._datas_probe = [mujoco.MjData(self._probe_model) for _ in range(max(nthread, 1))]
        self.nstate = mujoco.mj_stateSize(self._dyn_model, _FULL)

        # --- per-world state ----------------------------------------------------------------
        n = self.n
        ss = np.random.SeedSequence(seed)
        self.world_seeds = ([int(s) for s in world_seeds] if world_seeds is not None
                            else [int(x) for x in ss.generate_state(n, dtype=np.uint32)])
        if len(self.world_seeds) != n:
            raise ValueError("world_seeds must have one seed per world")
        self._rngs = [np.random.default_rng(s) for s in self.world_seeds]
        self._state = np.zeros((n, self.nstate))
        self._ctrl = np.zeros((n, self.frame_skip, self.nu))
        self._out_state = np.empty((n, self.frame_skip, self.nstate))
        self._out_sens = np.empty((n, self.frame_skip, self._dyn_model.nsensordata))
        self._probe_ctrl = np.zeros((n, 1, self.nu))
        self._probe_ctrl_reset = np.zeros((n, 1, self.nu))  # a reset leaves data.ctrl at zero
        self._probe_state = np.empty((n, 1, self.nstate))
        self._probe_sens = np.empty((n, 1, self._probe_model.nsensordata))
        self.episode_step = np.zeros(n, dtype=np.int64)
        self._stale = np.zeros((n, self._dyn_model.nsensordata))  # sensors "as gym sees them"
        self._last_action = np.zeros((n, self.act_dim), dtype=np.float32)
        self._last_ctrl = np.zeros((n, self.nu))
        self._xy_before = np.zeros((n, 2))  # the rules' progress after the last step or reset
        self._qpos_adr = slice(1, 1 + self.nq)
        self._qvel_adr = slice(1 + self.nq, 1 + self.nq + self.nv)
        self._state_arrays: dict[str, np.ndarray] | None = None
        self._index_sensors()
        #: seconds spent in ``step``: in ``mujoco.rollout`` (physics: dynamics and probe) and the rest
        #: (rules: observations, terminations, env reward, State, resets), for the trainer's timing
        self.timing = {"physics_s": 0.0, "rules_s": 0.0}

    # ------------------------------------------------------------------------------------------
    # model building
    @staticmethod
    def _copy_options(src: mujoco.MjModel, dst: mujoco.MjModel) -> None:
        for f in ("timestep", "integrator", "gravity", "wind", "density", "viscosity", "cone",
                  "jacobian", "solver", "iterations", "tolerance", "ls_iterations", "ls_tolerance",
                  "noslip_iterations", "impratio", "disableflags", "enableflags"):
            if hasattr(src.opt, f):
                setattr(dst.opt, f, getattr(src.opt, f))

    def _build_model(self, spec: mujoco.MjSpec, gym_extras: bool, probe: bool):
        """The env's model with sensors: what the env reads after a step first (the same layout in
        both models, the rules' extra quantities where ``gym_extras``), then, in the probe, what the
        reward's State needs."""
        names = _name_everything(spec)
        sens = _Sensors(spec)
        self._add_gym_view(sens, names, gym_extras)
        if probe:
            self._add_state_view(sens, names)
        return _compile(spec), sens.slices

    def _add_gym_view(self, sens: _Sensors, names: tuple[list[str], list[str], list[str]], extras: bool) -> None:
        """Sensors for what gymnasium reads from MjData after mj_step: always cfrc_ext and xpos (the
        State's contact forces need them), and, with ``extras``, the rest of what the rules read."""
        m, (bodies, sites, joints) = self.model, names
        # net contact force on each body (reduce=netforce, world frame), gym's cfrc_ext
        for b in range(1, m.nbody):
            sens.add(f"contact{b}", _S.mjSENS_CONTACT, _BODY, bodies[b], 9,
                     (_CONTACT_FORCE | _CONTACT_TORQUE | _CONTACT_POS, _REDUCE_NETFORCE, 1))
        root = int(self.schema.robot_root)
        sens.add("stale_rootcom", _S.mjSENS_SUBTREECOM, _BODY, bodies[m.body_rootid[root]], 3)
        # body positions as gym reads them after mj_step (stale by one substep)
        for b in range(1, m.nbody):
            sens.add(f"stale_xpos{b}", _S.mjSENS_FRAMEPOS, _XBODY, bodies[b], 3)
        if not extras:
            return
        reads = self.rules.reads
        if reads & {"cfrc_ext", "cinert", "cvel"}:  # each root's subtree com: the point com-based quantities refer to
            for r in sorted(set(int(x) for x in m.body_rootid[1:]) - {int(m.body_rootid[root])}):
                sens.add(f"gym_rootcom{r}", _S.mjSENS_SUBTREECOM, _BODY, bodies[r], 3)
        if "site_xpos" in reads:
            for s in range(m.nsite):
                sens.add(f"gym_site_xpos{s}", _S.mjSENS_FRAMEPOS, _SITE, sites[s], 3)
        if reads & {"xipos", "cinert"}:
            for b in range(1, m.nbody):
                sens.add(f"gym_xipos{b}", _S.mjSENS_FRAMEPOS, _BODY, bodies[b], 3)
        if "cinert" in reads:
            for b in range(1, m.nbody):
                for axis, kind in (("x", _S.mjSENS_FRAMEXAXIS), ("y", _S.mjSENS_FRAMEYAXIS), ("z", _S.mjSENS_FRAMEZAXIS)):
                    sens.add(f"gym_ximat{b}{axis}", kind, _BODY, bodies[b], 3)
        if "cvel" in reads:
            for b in range(1, m.nbody):
                sens.add(f"gym_linvel{b}", _S.mjSENS_FRAMELINVEL, _XBODY, bodies[b], 3)
                sens.add(f"gym_angvel{b}", _S.mjSENS_FRAMEANGVEL, _XBODY, bodies[b], 3)
        if "qfrc_actuator" in reads:
            for j in self._joints(limited=False):
                sens.add(f"gym_actfrc{j}", _S.mjSENS_JOINTACTFRC, _JOINT, joints[j], 1)
        if "qfrc_constraint" in reads:
            for j in self._joints(limited=True):
                sens.add(f"gym_limfrc{j}", _S.mjSENS_JOINTLIMITFRC, _JOINT, joints[j], 1)

    def _joints(self, limited: bool) -> list[int]:
        m = self.model
        return [j for j in range(m.njnt) if int(m.jnt_type[j]) in _SLIDE_HINGE and (not limited or m.jnt_limited[j])]

    def _add_state_view(self, sens: _Sensors, names: tuple[list[str], list[str], list[str]]) -> None:
        """The probe's sensors for the reward's State (``refresh_derived`` at the new state)."""
        (bodies, sites, _), sc = names, self.schema
        for key, kind, dim in (("pos", _S.mjSENS_FRAMEPOS, 3), ("quat", _S.mjSENS_FRAMEQUAT, 4),
                               ("up", _S.mjSENS_FRAMEZAXIS, 3), ("linvel", _S.mjSENS_FRAMELINVEL, 3),
                               ("angvel", _S.mjSENS_FRAMEANGVEL, 3)):
            for j, b in enumerate(sc.body_ids):
                sens.add(f"{key}{j}", kind, _XBODY, bodies[b], dim)
        for j, s in enumerate(sc.site_ids):
            sens.add(f"site{j}", _S.mjSENS_FRAMEPOS, _SITE, sites[s], 3)
        sens.add("com", _S.mjSENS_SUBTREECOM, _BODY, bodies[sc.robot_root], 3)
        sens.add("comvel", _S.mjSENS_SUBTREELINVEL, _BODY, bodies[sc.robot_root], 3)

    def _index_sensors(self) -> None:
        """Index arrays into sensordata: the State's fields (probe) and the env's view (same layout in
        the dynamics model and the probe, extras read from whichever model provides the view)."""
        m, sc, sl = self.model, self.schema, self._probe
        nb = len(sc.body_ids)

        def cat(prefix: str, count: int) -> np.ndarray:
            if count == 0:
                return np.zeros(0, dtype=np.int64)
            return np.concatenate([np.arange(sl[f"{prefix}{j}"].start, sl[f"{prefix}{j}"].stop)
                                   for j in range(count)])

        self._pidx = {key: cat(key, nb) for key in ("pos", "quat", "up", "linvel", "angvel")}
        self._pidx["site"] = cat("site", len(sc.site_ids))
        self._schema_bodies = np.asarray(sc.body_ids, dtype=np.int64)
        if not self._rk4:
            assert all(self._dyn[k] == v for k, v in sl.items() if k in self._dyn)

        def rows(prefix: str, dim: int, ids) -> np.ndarray:
            return np.array([[sl[f"{prefix}{i}"].start + k for k in range(dim)] for i in ids],
                            dtype=np.int64).reshape(len(ids), dim)

        bodies = range(1, m.nbody)
        robot_root = int(m.body_rootid[int(sc.robot_root)])
        roots = [int(m.body_rootid[b]) for b in bodies]
        reads = self.rules.reads
        idx: dict[str, np.ndarray] = {"contact": rows("contact", 9, bodies), "xpos": rows("stale_xpos", 3, bodies)}
        # the subtree com of each body's root, (B, 3), or (1, 3) when one root serves all (or, without
        # the extra sensors, for the State's contact forces, which use the force part only)
        if all(r == robot_root for r in roots) or not reads & {"cfrc_ext", "cinert", "cvel"}:
            idx["root_com"] = rows("stale_rootcom", 3, [""])
        else:
            idx["root_com"] = np.concatenate([rows("stale_rootcom", 3, [""]) if r == robot_root
                                              else rows("gym_rootcom", 3, [r]) for r in roots])
        if "site_xpos" in reads:
            idx["site"] = rows("gym_site_xpos", 3, range(m.nsite))
        if reads & {"xipos", "cinert"}:
            idx["xipos"] = rows("gym_xipos", 3, bodies)
        if "cinert" in reads:
            idx["ximat"] = np.stack([rows(f"gym_ximat{b}", 3, ["x", "y", "z"]) for b in bodies])
        if "cvel" in reads:
            idx["linvel"], idx["angvel"] = rows("gym_linvel", 3, bodies), rows("gym_angvel", 3, bodies)
        if "qfrc_actuator" in reads:
            js = self._joints(limited=False)
            idx["actfrc"] = rows("gym_actfrc", 1, js)[:, 0]
            idx["actfrc_dof"] = np.array([m.jnt_dofadr[j] for j in js], dtype=np.int64)
        if "qfrc_constraint" in reads:
            js = self._joints(limited=True)
            idx["limfrc"] = rows("gym_limfrc", 1, js)[:, 0]
            idx["limfrc_dof"] = np.array([m.jnt_dofadr[j] for j in js], dtype=np.int64)
            idx["limfrc_qadr"] = np.array([m.jnt_qposadr[j] for j in js], dtype=np.int64)
            idx["limfrc_range"] = np.array([m.jnt_range[j] for j in js], dtype=np.float64).reshape(len(js), 2)
        self._gym_idx = idx

    # ------------------------------------------------------------------------------------------
    def _probe_run(self, state: np.ndarray, out_sens: np.ndarray, ctrl: np.ndarray) -> None:
        k = state.shape[0]
        t0 = time.perf_counter()
        self._pool.rollout([self._probe_model] * k, self._datas_probe, 1, _CTRL, state, None,
                           ctrl[:k], self._probe_state[:k], out_sens, None)
        self.timing["physics_s"] += time.perf_counter() - t0

    def _reset_worlds(self, idx: np.ndarray) -> np.ndarray:
        """Reset worlds ``idx``; return their fresh observations."""
        rows = np.empty((len(idx), self.nstate))
        rows[:] = self._initial_row
        for j, i in enumerate(idx):
            qpos, qvel = self.rules.reset(xnp, _WorldDraw(self._rngs[int(i)]), self.init_qpos, self.init_qvel)
            rows[j, self._qpos_adr] = qpos[0]
            rows[j, self._qvel_adr] = qvel[0]
        self._state[idx] = rows
        self.episode_step[idx] = 0
        probe = np.empty((len(idx), 1, self._probe_model.nsensordata))
        self._probe_run(rows, probe, self._probe_ctrl_reset)
        probe = probe[:, 0]
        view = _SensorView(self, rows[:, self._qpos_adr], rows[:, self._qvel_adr], probe, probe, after_reset=True)
        progress = self.rules.progress(xnp, view)
        if progress is not None:  # "before" of the first step is what the env reads after set_state
            self._xy_before[idx] = progress
        return self.rules.observation(xnp, view)

    # ------------------------------------------------------------------------------------------
    # public API
    def reset(self) -> np.ndarray:
        """Reset every world (drawing from each world's generator); return observations (N, obs)."""
        d = mujoco.MjData(self._dyn_model)
        mujoco.mj_resetData(self._dyn_model, d)
        self._initial_row = np.empty(self.nstate)
        mujoco.mj_getState(self._dyn_model, d, self._initial_row, _FULL)
        self._xy_before = np.zeros((self.n, 2))
        self.obs = self._reset_worlds(np.arange(self.n))
        self._state_arrays = None
        return self.obs

    #: per-world arrays a snapshot holds (with each world's reset generator): everything ``step``
    #: reads that a previous step wrote
    _SNAPSHOT_FIELDS = ("_state", "episode_step", "_stale", "_last_action", "_last_ctrl", "_xy_before", "obs")
    def snapshot(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Every world as it is now, to continue later with ``restore`` exactly where it stopped
        (mid-episode): ``(header, arrays)``, JSON-able and plain arrays (a trainer's resume state)."""
        arrays = {name.lstrip("_"): np.array(getattr(self, name)) for name in self._SNAPSHOT_FIELDS}
        header = {"kind": self.kind, "n": self.n, "nstate": self.nstate,
                  "rngs": [rng.bit_generator.state for rng in self._rngs]}
        return header, arrays

    def restore(self, header: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Continue from a ``snapshot`` of a BatchSim of the same task and size (after ``reset``);
        returns the observations (N, obs). ValueError when the snapshot does not fit."""
        if (header.get("kind"), header.get("n"), header.get("nstate")) != (self.kind, self.n, self.nstate):
            raise ValueError(f"the simulator snapshot is of {header.get('n')} {header.get('kind')} worlds, "
                             f"not {self.n} {self.kind}")
        rngs = header.get("rngs")
        if not isinstance(rngs, list) or len(rngs) != self.n:
            raise ValueError("the simulator snapshot lacks one reset generator per world")
        # after a step the stale sensors are those of the model that provides them (the probe's with RK4)
        stale_width = (self._probe_model if self._rk4 else self._dyn_model).nsensordata
        for name in self._SNAPSHOT_FIELDS:
            own = getattr(self, name)
            shape = (self.n, stale_width) if name == "_stale" else own.shape
            value = arrays.get(name.lstrip("_"))
            if (value is None or value.shape not in (shape, own.shape)
                    or not np.issubdtype(value.dtype, np.number)):
                raise ValueError(f"the simulator snapshot lacks or mis-sizes {name.lstrip('_')!r}")
        fresh = []
        for state in rngs:
            rng = np.random.default_rng()
            try:
                rng.bit_generator.state = state
            except (TypeError, ValueError, KeyError) as exc:
                raise ValueError(f"the simulator snapshot's reset generator is unusable: {exc}") from None
            fresh.append(rng)
        for name in self._SNAPSHOT_FIELDS:
            own = getattr(self, name)
            setattr(self, name, np.array(arrays[name.lstrip("_")], dtype=own.dtype))
        self._rngs = fresh
        self._state_arrays = None
        return self.obs

    @property
    def qpos(self) -> np.ndarray:
        return self._state[:, self._qpos_adr]

    @property
    def qvel(self) -> np.ndarray:
        return self._state[:, self._qvel_adr]

    def set_world_state(self, i: int, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Overwrite world i's qpos/qvel (tests)."""
        self._state[i, self._qpos_adr] = qpos
        self._state[i, self._qvel_adr] = qvel

    def step(self, action: np.ndarray) -> StepResult:
        """Advance every world by one env step with ``action`` (N, act_dim) in [-1, 1]; auto-reset."""
        t_start, physics_before = time.perf_counter(), self.timing["physics_s"]
        action = np.asarray(action, dtype=np.float32).reshape(self.n, self.act_dim)
        ctrl = self._rescale(action) if self._rescale is not None else action
        self._last_action[:] = action
        self._last_ctrl[:] = ctrl
        self._ctrl[:] = np.asarray(ctrl, dtype=np.float64)[:, None, :]
        qpos_before = self._state[:, self._qpos_adr].copy()
        t0 = time.perf_counter()
        self._pool.rollout([self._dyn_model] * self.n, self._datas_dyn, self.frame_skip, _CTRL,
                           self._state, None, self._ctrl, self._out_state, self._out_sens, None)
        self.timing["physics_s"] += time.perf_counter() - t0
        self._state[:] = self._out_state[:, -1]
        if self._probe_ctrl_of_step:
            self._probe_ctrl[:] = self._ctrl[:, -1:]
        self._probe_run(self._state, self._probe_sens, self._probe_ctrl)
        stale = self._probe_sens[:, 0] if self._rk4 else self._out_sens[:, -1]
        self._stale = stale
        qpos, qvel = self.qpos, self.qvel
        view = _SensorView(self, qpos, qvel, stale, self._probe_sens[:, 0], qpos_before=qpos_before, action=ctrl,
                           ctrl=self._ctrl[:, -1])
        obs, terminated, reward, progress = self.rules.after_step(xnp, view, self._xy_before)
        if progress is not None:
            self._xy_before = np.array(progress)
        self.episode_step += 1
        truncated = (self.episode_step >= self.episode_length) & ~terminated
        self._build_state_arrays(qpos, qvel, self._probe_sens[:, 0], view)
        final_obs = obs
        done = terminated | truncated
        next_obs = obs.copy()
        if done.any():
            idx = np.flatnonzero(done)
            next_obs[idx] = self._reset_worlds(idx)
        self.obs = next_obs
        self.timing["rules_s"] += time.perf_counter() - t_start - (self.timing["physics_s"] - physics_before)
        return StepResult(next_obs, reward, terminated, truncated, final_obs)

    # ------------------------------------------------------------------------------------------
    # the reward's State
    def _build_state_arrays(self, qpos, qvel, probe, view: _SensorView) -> None:
        n, sc = self.n, self.schema
        f32 = np.float32
        nb = len(sc.body_ids)

        def grab(key: str, dim: int) -> np.ndarray:
            return probe[:, self._pidx[key]].reshape(n, -1, dim).astype(f32)

        cf = view.contact_force[:, self._schema_bodies - 1]
        self._state_arrays = {
            "qpos": qpos.astype(f32), "qvel": qvel.astype(f32),
            "action": self._last_action.copy(), "ctrl": self._last_ctrl.astype(f32),
            "step": self.episode_step.astype(f32),
            "body_pos": grab("pos", 3), "body_quat": grab("quat", 4), "body_up": grab("up", 3),
            "body_linvel": grab("linvel", 3), "body_angvel": grab("angvel", 3),
            "joint_pos": qpos[:, np.asarray(sc.joint_qpos_adr, dtype=np.int64)].astype(f32),
            "joint_vel": qvel[:, np.asarray(sc.joint_dof_adr, dtype=np.int64)].astype(f32),
            "site_pos": (grab("site", 3) if len(sc.site_ids) else np.zeros((n, 0, 3), f32)),
            "com_pos": probe[:, self._probe["com"]].astype(f32),
            "com_vel": probe[:, self._probe["comvel"]].astype(f32),
            "contact_force": np.linalg.norm(cf, axis=-1).astype(f32).reshape(n, nb),
        }

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The last step's State fields as float32 numpy arrays (before auto-reset)."""
        if self._state_arrays is None:
            raise RuntimeError("step() first: the State describes the worlds after a step")
        return self._state_arrays

    def state(self, device: str | torch.device = "cpu", arrays: dict[str, np.ndarray] | None = None) -> State:
        """The reward's State for the last step (each world as it was before any auto-reset), or for
        an earlier step's ``state_arrays()`` (each step builds new arrays, so they stay valid)."""
        a, sc = (self.state_arrays() if arrays is None else arrays), self.schema

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(x).to(device) if str(device) != "cpu" else torch.from_numpy(x.copy())

        return State.from_arrays(sc, a, t)

    def close(self) -> None:
        self._env.close()
