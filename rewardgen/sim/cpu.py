"""A batch of N worlds of one task, stepped together in native code.

``BatchSim`` reproduces the task's gymnasium env (same model, frame skip, reset distribution,
termination rules, time limit, observation layout) for N worlds at once, and produces the reward
contract's ``State`` as batched arrays.

How it is fast (measured on 2 cores, see docs/benchmarks.md): physics runs in ``mujoco.rollout``'s
native thread pool with the GIL released, frame skip included, so one Python call advances every
world by one environment step. Everything the State and the observations need is read from
sensors that are added to the model through ``mujoco.MjSpec`` and come back batched:

* the *dynamics* model carries contact sensors (net contact force per body) and frame sensors for
  the bodies an observation reads. Sensors are computed before the last integration substep, which
  is exactly when gymnasium reads ``xpos``/``cfrc_ext`` after ``mj_step`` (they are stale there
  too), so these match the env bit for bit;
* a *probe* model (the same model with constraints disabled) is evaluated once per env step at the
  new state: its kinematic sensors (framepos/framequat/framezaxis/framelinvel/frameangvel,
  subtreecom/subtreelinvel) give what ``refresh_derived`` computes, as the State requires.

The only per-world Python work is sampling the reset noise of worlds that finished an episode, so
each world keeps its own generator and resets are the same as gymnasium's for the same seed.
"""

from __future__ import annotations

import os
import warnings

import mujoco
import numpy as np
import torch
from mujoco import _rollout

from rewardgen.contract.state import State
from rewardgen.sim.gym_rules import PLANAR_WALKERS, StepResult, init_from_env, observation_rules
from rewardgen.tasks.spec import Task

_S = mujoco.mjtSensor
_XBODY, _SITE, _BODY = mujoco.mjtObj.mjOBJ_XBODY, mujoco.mjtObj.mjOBJ_SITE, mujoco.mjtObj.mjOBJ_BODY
_FULL = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
_CTRL = int(mujoco.mjtState.mjSTATE_CTRL)
_CONTACT_FORCE, _CONTACT_TORQUE, _CONTACT_POS = 2, 4, 16  # contact sensor data bits
_REDUCE_NETFORCE = 3


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


def _name_everything(spec: mujoco.MjSpec) -> tuple[list[str], list[str]]:
    """Give unnamed bodies/sites a name (sensors refer to elements by name); return the names."""
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
    return bodies, sites


class BatchSim:
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

        # --- models with sensors -------------------------------------------------------------
        self._dyn_model, self._dyn = self._dynamics_model(mujoco.MjSpec.from_file(u.fullpath))
        self._probe_model, self._probe = self._probe_model_build(mujoco.MjSpec.from_file(u.fullpath))
        # same physics as the env's model (env kwargs may have changed options after loading)
        for mm in (self._dyn_model, self._probe_model):
            assert mm.nq == m.nq and mm.nv == m.nv and mm.nu == m.nu and mm.nbody == m.nbody
        self._copy_options(m, self._dyn_model)
        self._copy_options(m, self._probe_model)
        # Single-stage integrators: gymnasium's post-step xpos/cfrc_ext are those of the last
        # substep's start, which the dynamics model's sensors capture exactly. RK4 leaves them at
        # its last stage (a full-step predictor no sensor sees); the closest observable is the new
        # state, so the probe then keeps constraints on and provides them.
        self._rk4 = m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
        # the probe's integration is thrown away: one forward evaluation is all it needs
        self._probe_model.opt.integrator = mujoco.mjtIntegrator.mjINT_EULER
        if not self._rk4:
            self._probe_model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT)

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
        self._probe_state = np.empty((n, 1, self.nstate))
        self._probe_sens = np.empty((n, 1, self._probe_model.nsensordata))
        self.episode_step = np.zeros(n, dtype=np.int64)
        self.goal = np.zeros((n, 2))  # Reacher target
        self._stale = np.zeros((n, self._dyn_model.nsensordata))  # dynamics sensors "as gym sees them"
        self._last_action = np.zeros((n, self.act_dim), dtype=np.float32)
        self._last_ctrl = np.zeros((n, self.nu))
        self._qpos_adr = slice(1, 1 + self.nq)
        self._qvel_adr = slice(1 + self.nq, 1 + self.nq + self.nv)
        self._state_arrays: dict[str, np.ndarray] | None = None
        self._setup_env_rules()

    # ------------------------------------------------------------------------------------------
    # model building
    @staticmethod
    def _copy_options(src: mujoco.MjModel, dst: mujoco.MjModel) -> None:
        for f in ("timestep", "integrator", "gravity", "wind", "density", "viscosity", "cone",
                  "jacobian", "solver", "iterations", "tolerance", "ls_iterations", "ls_tolerance",
                  "noslip_iterations", "impratio", "disableflags", "enableflags"):
            if hasattr(src.opt, f):
                setattr(dst.opt, f, getattr(src.opt, f))

    def _dynamics_model(self, spec: mujoco.MjSpec):
        bodies, _ = _name_everything(spec)
        sens = _Sensors(spec)
        self._add_gym_view(sens, bodies)
        return _compile(spec), sens.slices

    def _add_gym_view(self, sens: "_Sensors", bodies: list[str]) -> None:
        """Sensors for what gymnasium reads from MjData after mj_step: cfrc_ext and xpos."""
        m = self.model
        # net contact force on each body (reduce=netforce, world frame), gym's cfrc_ext
        for b in range(1, m.nbody):
            sens.add(f"contact{b}", _S.mjSENS_CONTACT, _BODY, bodies[b], 9,
                     (_CONTACT_FORCE | _CONTACT_TORQUE | _CONTACT_POS, _REDUCE_NETFORCE, 1))
        root = int(self.schema.robot_root)
        sens.add("stale_rootcom", _S.mjSENS_SUBTREECOM, _BODY, bodies[m.body_rootid[root]], 3)
        # body positions as gym reads them after mj_step (stale by one substep)
        for b in range(1, m.nbody):
            sens.add(f"stale_xpos{b}", _S.mjSENS_FRAMEPOS, _XBODY, bodies[b], 3)

    def _probe_model_build(self, spec: mujoco.MjSpec):
        bodies, sites = _name_everything(spec)
        sens = _Sensors(spec)
        self._add_gym_view(sens, bodies)
        sc = self.schema
        for key, kind, dim in (("pos", _S.mjSENS_FRAMEPOS, 3), ("quat", _S.mjSENS_FRAMEQUAT, 4),
                               ("up", _S.mjSENS_FRAMEZAXIS, 3), ("linvel", _S.mjSENS_FRAMELINVEL, 3),
                               ("angvel", _S.mjSENS_FRAMEANGVEL, 3)):
            for j, b in enumerate(sc.body_ids):
                sens.add(f"{key}{j}", kind, _XBODY, bodies[b], dim)
        for j, s in enumerate(sc.site_ids):
            sens.add(f"site{j}", _S.mjSENS_FRAMEPOS, _SITE, sites[s], 3)
        sens.add("com", _S.mjSENS_SUBTREECOM, _BODY, bodies[sc.robot_root], 3)
        sens.add("comvel", _S.mjSENS_SUBTREELINVEL, _BODY, bodies[sc.robot_root], 3)
        return _compile(spec), sens.slices

    # ------------------------------------------------------------------------------------------
    # per-env rules (gymnasium/envs/mujoco/*_v5.py)
    def _setup_env_rules(self) -> None:
        observation_rules(self)
        m = self.model
        # Index arrays for the State's derived fields in the probe's sensordata
        sc, sl = self.schema, self._probe
        nb = len(sc.body_ids)

        def cat(prefix: str, count: int) -> np.ndarray:
            if count == 0:
                return np.zeros(0, dtype=np.int64)
            return np.concatenate([np.arange(sl[f"{prefix}{j}"].start, sl[f"{prefix}{j}"].stop)
                                   for j in range(count)])

        self._pidx = {key: cat(key, nb) for key in ("pos", "quat", "up", "linvel", "angvel")}
        self._pidx["site"] = cat("site", len(sc.site_ids))
        d = self._dyn
        self._contact_idx = np.array([[d[f"contact{b}"].start + i for i in range(9)]
                                      for b in range(1, m.nbody)], dtype=np.int64)  # (nbody-1, 9)
        self._stale_xpos_idx = np.array([[d[f"stale_xpos{b}"].start + i for i in range(3)]
                                         for b in range(1, m.nbody)], dtype=np.int64)
        self._schema_body_rows = np.asarray(sc.body_ids, dtype=np.int64) - 1

    # ------------------------------------------------------------------------------------------
    def _cfrc_ext(self, sens: np.ndarray) -> np.ndarray:
        """gym's ``data.cfrc_ext[1:]`` (N, nbody-1, 6) from gym-view sensordata (cached per array)."""
        cached = getattr(self, "_cfrc_cache", None)
        if cached is not None and cached[0] is sens:
            return cached[1]
        out = self._cfrc_ext_compute(sens)
        self._cfrc_cache = (sens, out)
        return out

    def _cfrc_ext_compute(self, sens: np.ndarray) -> np.ndarray:
        c = sens[:, self._contact_idx]  # (N, B, 9): force, torque, pos (world frame, on body)
        f = -c[..., 0:3]
        t = -c[..., 3:6]
        ref = sens[:, self._dyn["stale_rootcom"]][:, None, :]
        torque = np.cross(c[..., 6:9] - ref, f) + t
        return np.concatenate([torque, f], axis=-1)

    def _probe_run(self, state: np.ndarray, out_sens: np.ndarray) -> None:
        k = state.shape[0]
        self._pool.rollout([self._probe_model] * k, self._datas_probe, 1, _CTRL, state, None,
                           self._probe_ctrl[:k], self._probe_state[:k], out_sens, None)

    def _obs(self, qpos: np.ndarray, qvel: np.ndarray, stale: np.ndarray | None,
             probe: np.ndarray | None) -> np.ndarray:
        """gym ``_get_obs`` for a batch. ``stale`` is dynamics sensordata after a step, ``probe``
        probe sensordata (used right after a reset, where gym's derived data is current)."""
        k = self.kind
        if k == "InvertedPendulumEnv":
            return np.concatenate([qpos, qvel], axis=1)
        if k == "ReacherEnv":
            if stale is not None:
                xp = stale[:, self._stale_xpos_idx]  # (N, nbody-1, 3)
                vec = xp[:, self._fingertip - 1] - xp[:, self._target - 1]
            else:
                pos = probe[:, self._pidx["pos"]].reshape(len(qpos), -1, 3)
                rows = {b: j for j, b in enumerate(self.schema.body_ids)}
                vec = pos[:, rows[self._fingertip]] - pos[:, rows[self._target]]
            th = qpos[:, :2]
            return np.concatenate([np.cos(th), np.sin(th), qpos[:, 2:], qvel[:, :2], vec[:, :2]], axis=1)
        if k in PLANAR_WALKERS:
            return np.concatenate([qpos[:, self._excl:], np.clip(qvel, -10, 10)], axis=1)
        if k == "AntEnv":
            parts = [qpos[:, self._excl:], qvel]
            if self._cfrc_in_obs:
                if stale is not None:
                    cf = np.clip(self._cfrc_ext(stale), *self.u._contact_force_range)
                else:  # after reset gym's cfrc_ext is all zeros (mj_resetData + mj_forward)
                    cf = np.zeros((len(qpos), self.model.nbody - 1, 6))
                parts.append(cf.reshape(len(qpos), -1))
            return np.concatenate(parts, axis=1)
        return np.concatenate([qpos[:, self._excl:], qvel], axis=1)

    def _terminated(self, qpos: np.ndarray, qvel: np.ndarray, obs: np.ndarray) -> np.ndarray:
        k, u = self.kind, self.u
        if k == "InvertedPendulumEnv":
            return ~np.isfinite(obs).all(axis=1) | (np.abs(obs[:, 1]) > 0.2)
        if k in PLANAR_WALKERS:
            if not u._terminate_when_unhealthy:
                return np.zeros(len(qpos), dtype=bool)
            return ~self._walker_healthy(qpos, qvel)
        if k == "AntEnv":
            if not u._terminate_when_unhealthy:
                return np.zeros(len(qpos), dtype=bool)
            zlo, zhi = u._healthy_z_range
            finite = np.isfinite(qpos).all(axis=1) & np.isfinite(qvel).all(axis=1)
            return ~(finite & (zlo <= qpos[:, 2]) & (qpos[:, 2] <= zhi))
        return np.zeros(len(qpos), dtype=bool)

    def _env_reward(self, qpos0_before, xy_before, action, qpos, qvel, stale, terminated) -> np.ndarray:
        """The gymnasium env's own reward for this step (``action`` as the unwrapped env saw it)."""
        k, u = self.kind, self.u
        if k == "InvertedPendulumEnv":
            return (~terminated).astype(np.float64)
        if k == "ReacherEnv":
            xp = stale[:, self._stale_xpos_idx]
            vec = xp[:, self._fingertip - 1] - xp[:, self._target - 1]
            return (-np.linalg.norm(vec, axis=1) * u._reward_dist_weight
                    - np.square(action).sum(axis=1) * u._reward_control_weight)
        if k == "HalfCheetahEnv":
            xv = (qpos[:, 0] - qpos0_before) / self.dt
            return u._forward_reward_weight * xv - u._ctrl_cost_weight * np.square(action).sum(axis=1)
        if k in PLANAR_WALKERS:
            xv = (qpos[:, 0] - qpos0_before) / self.dt
            healthy = self._walker_healthy(qpos, qvel)
            return (u._forward_reward_weight * xv + healthy * u._healthy_reward
                    - u._ctrl_cost_weight * np.square(action).sum(axis=1))
        if k == "AntEnv":
            xy = stale[:, self._stale_xpos_idx[self._main_body - 1]][:, :2]
            xv = (xy[:, 0] - xy_before[:, 0]) / self.dt
            zlo, zhi = u._healthy_z_range
            finite = np.isfinite(qpos).all(axis=1) & np.isfinite(qvel).all(axis=1)
            healthy = finite & (zlo <= qpos[:, 2]) & (qpos[:, 2] <= zhi)
            cf = np.clip(self._cfrc_ext(stale), *u._contact_force_range)
            contact = u._contact_cost_weight * np.square(cf).sum(axis=(1, 2))
            return (xv * u._forward_reward_weight + healthy * u._healthy_reward
                    - u._ctrl_cost_weight * np.square(action).sum(axis=1) - contact)
        return np.zeros(len(qpos))

    def _walker_healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """gym's ``is_healthy`` of Hopper and Walker2d: torso height (qpos[1]) and angle (qpos[2]) in
        their ranges, and for Hopper every other state entry in ``healthy_state_range`` too."""
        u = self.u
        z, angle = qpos[:, 1], qpos[:, 2]
        zlo, zhi = u._healthy_z_range
        alo, ahi = u._healthy_angle_range
        healthy = (zlo < z) & (z < zhi) & (alo < angle) & (angle < ahi)
        if self.kind == "HopperEnv":
            state = np.concatenate([qpos, qvel], axis=1)[:, 2:]
            lo, hi = u._healthy_state_range
            healthy &= np.all((lo < state) & (state < hi), axis=1)
        return healthy

    def _sample_reset(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """One world's reset_model() draw, consuming its generator exactly like gymnasium."""
        rng, k, u = self._rngs[i], self.kind, self.u
        nq, nv = self.nq, self.nv
        if k == "ReacherEnv":
            qpos = rng.uniform(low=-0.1, high=0.1, size=nq) + self.init_qpos
            while True:
                goal = rng.uniform(low=-0.2, high=0.2, size=2)
                if np.linalg.norm(goal) < 0.2:
                    break
            qpos[-2:] = goal
            self.goal[i] = goal
            qvel = self.init_qvel + rng.uniform(low=-0.005, high=0.005, size=nv)
            qvel[-2:] = 0
            return qpos, qvel
        if k == "MjcfEnv":
            c = u._reset_noise
            return (self.init_qpos + rng.uniform(-c, c, size=nq), self.init_qvel + rng.uniform(-c, c, size=nv))
        c = u._reset_noise_scale
        qpos = self.init_qpos + rng.uniform(low=-c, high=c, size=nq)
        if k in ("HalfCheetahEnv", "AntEnv"):
            qvel = self.init_qvel + c * rng.standard_normal(nv)
        else:
            qvel = self.init_qvel + rng.uniform(low=-c, high=c, size=nv)
        return qpos, qvel

    def _reset_worlds(self, idx: np.ndarray) -> np.ndarray:
        """Reset worlds ``idx``; return their fresh observations."""
        rows = np.empty((len(idx), self.nstate))
        rows[:] = self._initial_row
        for j, i in enumerate(idx):
            qpos, qvel = self._sample_reset(int(i))
            rows[j, self._qpos_adr] = qpos
            rows[j, self._qvel_adr] = qvel
        self._state[idx] = rows
        self.episode_step[idx] = 0
        probe = np.empty((len(idx), 1, self._probe_model.nsensordata))
        self._probe_run(rows, probe)
        probe = probe[:, 0]
        if self.kind == "AntEnv":  # "xy before" of the first step is current after set_state
            pos = probe[:, self._pidx["pos"]].reshape(len(idx), -1, 3)
            row = list(self.schema.body_ids).index(self._main_body)
            self._xy_before[idx] = pos[:, row, :2]
        return self._obs(rows[:, self._qpos_adr], rows[:, self._qvel_adr], None, probe)

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
    _SNAPSHOT_FIELDS = ("_state", "episode_step", "goal", "_stale", "_last_action", "_last_ctrl", "_xy_before",
                        "obs")

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
        action = np.asarray(action, dtype=np.float32).reshape(self.n, self.act_dim)
        ctrl = self._rescale(action) if self._rescale is not None else action
        self._last_action[:] = action
        self._last_ctrl[:] = ctrl
        self._ctrl[:] = np.asarray(ctrl, dtype=np.float64)[:, None, :]
        qpos0_before = self._state[:, 1].copy()
        self._pool.rollout([self._dyn_model] * self.n, self._datas_dyn, self.frame_skip, _CTRL,
                           self._state, None, self._ctrl, self._out_state, self._out_sens, None)
        self._state[:] = self._out_state[:, -1]
        self._probe_run(self._state, self._probe_sens)
        stale = self._probe_sens[:, 0] if self._rk4 else self._out_sens[:, -1]
        self._stale = stale
        qpos, qvel = self.qpos, self.qvel
        obs = self._obs(qpos, qvel, stale, None)
        terminated = self._terminated(qpos, qvel, obs)
        reward = self._env_reward(qpos0_before, self._xy_before, ctrl, qpos, qvel, stale, terminated)
        if self.kind == "AntEnv":
            self._xy_before = stale[:, self._stale_xpos_idx[self._main_body - 1]][:, :2].copy()
        self.episode_step += 1
        truncated = (self.episode_step >= self.episode_length) & ~terminated
        self._build_state_arrays(qpos, qvel, self._probe_sens[:, 0], stale)
        final_obs = obs
        done = terminated | truncated
        next_obs = obs.copy()
        if done.any():
            idx = np.flatnonzero(done)
            next_obs[idx] = self._reset_worlds(idx)
        self.obs = next_obs
        return StepResult(next_obs, reward, terminated, truncated, final_obs)

    # ------------------------------------------------------------------------------------------
    # the reward's State
    def _build_state_arrays(self, qpos, qvel, probe, stale) -> None:
        n, sc = self.n, self.schema
        f32 = np.float32
        nb = len(sc.body_ids)

        def grab(key: str, dim: int) -> np.ndarray:
            return probe[:, self._pidx[key]].reshape(n, -1, dim).astype(f32)

        cf = self._cfrc_ext(stale)[:, self._schema_body_rows, 3:]
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
