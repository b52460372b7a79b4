"""``export_reward``: a candidate's reward as one standalone Python file usable without rewardgen.

The exported file holds, in order: the reward source verbatim (its ``compute_reward(s)``), a minimal
State builder that fills the same fields as ``rewardgen.contract.state.StateBuffers`` (names derived from the
MjModel exactly as ``rewardgen.contract.schema`` does; derived quantities refreshed like
``rewardgen.contract.state.refresh_derived``), a ``gymnasium.Wrapper`` (``RewardWrapper``) that replaces the env's
reward by the candidate's total (components and the env's own reward go to ``info``), and
``make_env()`` building the run's env (gymnasium id, episode length, env kwargs, actions rescaled to
[-1, 1] as ``Task.make_env`` does). It imports only gymnasium, mujoco, numpy, torch (and math).

Everything after the reward uses names starting with ``RG_``/``_rg_`` (plus ``RewardWrapper``,
``make_env``, ``ENV_ID``...) so the reward's own helpers are not shadowed.
"""

from __future__ import annotations

from rewardgen.errors import UserError, flatten

import json
import re
from pathlib import Path

from rewardgen.store import MAX_SOURCE_BYTES, METRICS_FILE, REWARD_FILE, RUN_FILE, RunStore, RunStoreError, atomic_write_text


class ExportError(UserError):
    """The run or candidate cannot be exported; the message is for the user."""


#: candidate statuses (metrics.json) of a reward that does not work: exporting it would mislead
BROKEN = {"static": "failed the static checks", "contract": "broke the reward contract",
          "runtime": "failed at runtime", "proposal": "was never a usable reward"}


def parse_candidate(text: str) -> tuple[int, int]:
    """``"G/C"`` -> (G, C)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ExportError(f"candidate must look like GEN/CAND (e.g. 1/0), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _select(run_dir: Path, run: dict, candidate: tuple[int, int] | None) -> tuple[int, int]:
    if candidate is not None:
        return candidate
    best = run.get("best")
    if isinstance(best, dict) and isinstance(best.get("generation"), int) and isinstance(best.get("candidate"), int):
        return best["generation"], best["candidate"]
    raise ExportError(f"run {run_dir} has no best candidate yet; name one with --candidate GEN/CAND")


def export_reward(run_dir: Path, candidate: tuple[int, int] | None, out: Path) -> Path:
    """Write the standalone reward file for ``candidate`` (default: the run's best) to ``out``.

    Raises ``ExportError`` (a message for the user) when the run or candidate does not exist or the
    task is an MJCF file (the exported ``make_env`` needs a gymnasium env id; ``RewardWrapper`` still
    works on any env of the same model, but then the file is exported with ``ENV_ID = None``).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir} is not a run directory (no run.json)")
    store = RunStore(run_dir)
    try:
        run = store.read_json(RUN_FILE)
    except RunStoreError as exc:
        raise ExportError(str(exc)) from None
    if run is None:
        raise ExportError(f"{run_dir} is not a run directory (no run.json)")
    task = run.get("task") if isinstance(run, dict) else None
    if not isinstance(task, dict):
        raise ExportError(f"{run_dir / 'run.json'} has no task")
    g, c = _select(run_dir, run, candidate)
    cand_dir = store.cand_dir(g, c)
    try:
        source = store.read_text(cand_dir / REWARD_FILE, MAX_SOURCE_BYTES)
    except RunStoreError as exc:
        raise ExportError(str(exc)) from None
    except (OSError, UnicodeDecodeError):
        raise ExportError(f"no reward for candidate {g}/{c} ({cand_dir / 'reward.py'} is missing)") from None
    metrics: dict = {}
    try:
        metrics = store.read_json(cand_dir / METRICS_FILE) or {}
    except RunStoreError:
        pass
    metrics = metrics if isinstance(metrics, dict) else {}
    fitness = metrics.get("fitness")
    try:
        compile(source, str(cand_dir / REWARD_FILE), "exec")
    except SyntaxError as exc:
        raise ExportError(f"candidate {g}/{c} cannot be exported: its reward.py does not parse (SyntaxError: "
                          f"{exc.msg}, line {exc.lineno}); nothing was written") from None
    if metrics.get("status") in BROKEN:
        why = flatten(metrics.get("error") or "no detail", 200)
        raise ExportError(f"candidate {g}/{c} cannot be exported: it {BROKEN[metrics['status']]} when checked "
                          f"({why}); nothing was written; pick another with --candidate")
    text = render_export(source, task, origin=f"{run_dir.name} candidate {g}/{c}", fitness=fitness)
    compile(text, str(out), "exec")  # never write a file that does not parse
    atomic_write_text(Path(out), text)
    return Path(out)


def render_export(source: str, task: dict, origin: str = "", fitness: float | None = None) -> str:
    """The exported file's text for a reward ``source`` and a task dict (``Task.to_dict()``)."""
    env_id = task.get("env")
    fit = task.get("fitness") or {}
    params = ", ".join(f"{k}={v}" for k, v in (fit.get("params") or {}).items())
    header = (
        f'"""Reward exported by rewardgen from {origin or "a reward file"}.\n\n'
        f"Task: {task.get('id', '?')} ({env_id or task.get('mjcf') or '?'}): {task.get('description', '').strip()}\n"
        f"Trusted fitness: {fit.get('name', '?')}({params})"
        + (f" = {fitness:.6g}" if isinstance(fitness, (int, float)) else "") + "\n\n"
        "Standalone: needs gymnasium, mujoco, numpy and torch (not rewardgen).\n\n"
        "    env = make_env()                 # the task's env with this reward; info has the components\n"
        "    env = RewardWrapper(other_env)   # or wrap an env of the same model yourself\n\n"
        "The reward below is verbatim; everything after it builds its ``s`` the way rewardgen does.\n"
        '"""\n'
    )
    consts = (
        f"ENV_ID = {env_id!r}\n"
        f"EPISODE_LENGTH = {int(task.get('episode_length', 1000))!r}\n"
        f"ENV_KWARGS = {json.loads(json.dumps(task.get('env_kwargs') or {}))!r}\n"
        f"FRAME_SKIP = {int(task.get('frame_skip', 5))!r}\n"
    )
    return (header + "\n# ---- reward (verbatim) " + "-" * 70 + "\n\n" + source.rstrip() + "\n\n\n"
            + "# ---- State builder and gymnasium wrapper (exported by rewardgen) " + "-" * 28 + "\n\n"
            + "import math as _rg_math  # noqa: E402,F401\n" + _RUNTIME + "\n" + consts + _MAKE_ENV)


_RUNTIME = '''import gymnasium as _rg_gym  # noqa: E402
import mujoco as _rg_mujoco  # noqa: E402
import numpy as _rg_np  # noqa: E402
import torch as _rg_torch  # noqa: E402

_RG_SLIDE = int(_rg_mujoco.mjtJoint.mjJNT_SLIDE)
_RG_HINGE = int(_rg_mujoco.mjtJoint.mjJNT_HINGE)
_RG_JOINT_TRN = (int(_rg_mujoco.mjtTrn.mjTRN_JOINT), int(_rg_mujoco.mjtTrn.mjTRN_JOINTINPARENT))


class RG_Named:
    """Read-only name -> tensor[:, i] view (s.body_pos["torso"] etc.)."""

    def __init__(self, names, stacked):
        self._names, self._index, self._stacked = tuple(names), {n: i for i, n in enumerate(names)}, stacked

    def __getitem__(self, name):
        if name not in self._index:
            raise KeyError(f"{name!r} is not in this model; known names: {', '.join(self._names)}")
        return self._stacked[:, self._index[name]]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def __contains__(self, name):
        return name in self._index

    def keys(self):
        return list(self._names)

    def items(self):
        return [(n, self[n]) for n in self._names]

    def values(self):
        return [self[n] for n in self._names]


class RG_State:
    """The reward's ``s``: a batch of worlds (here one), float32 tensors with a leading batch dimension."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    @property
    def num_worlds(self):
        return int(self.qpos.shape[0])


def _rg_name(model, obj, index, prefix):
    name = _rg_mujoco.mj_id2name(model, obj, index)
    return name if name else f"{prefix}{index}"


def _rg_refresh_derived(model, data):
    """Bring positions/velocities derived from qpos/qvel up to date after mj_step (dynamics untouched)."""
    _rg_mujoco.mj_kinematics(model, data)
    _rg_mujoco.mj_comPos(model, data)
    _rg_mujoco.mj_comVel(model, data)
    _rg_mujoco.mj_subtreeVel(model, data)


class RG_StateBuilder:
    """Names and indices from the MjModel (as rewardgen's schema derives them), State from MjData."""

    def __init__(self, model, frame_skip):
        self.model = model
        obj = _rg_mujoco.mjtObj
        self.body_ids = _rg_np.arange(1, model.nbody)
        self.bodies = tuple(_rg_name(model, obj.mjOBJ_BODY, int(b), "body") for b in self.body_ids)
        joints = [j for j in range(model.njnt) if int(model.jnt_type[j]) in (_RG_SLIDE, _RG_HINGE)]
        self.joints = tuple(_rg_name(model, obj.mjOBJ_JOINT, j, "joint") for j in joints)
        self.qadr = _rg_np.asarray([int(model.jnt_qposadr[j]) for j in joints], dtype=_rg_np.int64)
        self.dadr = _rg_np.asarray([int(model.jnt_dofadr[j]) for j in joints], dtype=_rg_np.int64)
        self.site_ids = _rg_np.arange(model.nsite)
        self.sites = tuple(_rg_name(model, obj.mjOBJ_SITE, int(s), "site") for s in self.site_ids)
        self.roots = model.body_rootid[self.body_ids]
        self.robot_root = 1 if model.nbody > 1 else 0
        for a in range(model.nu):
            if int(model.actuator_trntype[a]) in _RG_JOINT_TRN:
                self.robot_root = int(model.body_rootid[model.jnt_bodyid[model.actuator_trnid[a, 0]]])
                break
        self.dt = float(model.opt.timestep * frame_skip)

    def build(self, data, action, step, device="cpu"):
        """The State of one world from ``data`` (derived quantities must be current)."""
        b = self.body_ids
        xpos = data.xpos[b]
        cvel = data.cvel[b]
        ang, lin = cvel[:, :3], cvel[:, 3:]

        def t(a):
            return _rg_torch.tensor(_rg_np.asarray(a, dtype=_rg_np.float32)[None], device=device)

        return RG_State(
            qpos=t(data.qpos), qvel=t(data.qvel), action=t(action), ctrl=t(data.ctrl), dt=self.dt, step=t(float(step)),
            body_pos=RG_Named(self.bodies, t(xpos)),
            body_quat=RG_Named(self.bodies, t(data.xquat[b])),
            body_linvel=RG_Named(self.bodies, t(lin + _rg_np.cross(ang, xpos - data.subtree_com[self.roots]))),
            body_angvel=RG_Named(self.bodies, t(ang)),
            body_up=RG_Named(self.bodies, t(data.xmat[b][:, 2::3])),
            joint_pos=RG_Named(self.joints, t(data.qpos[self.qadr])),
            joint_vel=RG_Named(self.joints, t(data.qvel[self.dadr])),
            site_pos=RG_Named(self.sites, t(data.site_xpos[self.site_ids] if len(self.site_ids)
                                            else _rg_np.zeros((0, 3)))),
            com_pos=t(data.subtree_com[self.robot_root]), com_vel=t(data.subtree_linvel[self.robot_root]),
            contact_force=RG_Named(self.bodies, t(_rg_np.linalg.norm(data.cfrc_ext[b, 3:], axis=1))),
        )


class RewardWrapper(_rg_gym.Wrapper):
    """Replaces the env's reward by ``compute_reward``'s total on the State after each step.

    ``info["reward_components"]`` holds the components (floats), ``info["env_reward"]`` the env's own
    reward. Apply it outermost, on an env whose actions are in [-1, 1] (``make_env`` does): ``s.action``
    is the action given to ``step``. ``s.step`` counts steps since the last reset, from 1.
    """

    def __init__(self, env, device="cpu"):
        super().__init__(env)
        u = env.unwrapped
        self.builder = RG_StateBuilder(u.model, int(getattr(u, "frame_skip", FRAME_SKIP)))
        self.device = device
        self.episode_step = 0
        self.last_state = None

    def reset(self, **kwargs):
        self.episode_step = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        self.episode_step += 1
        u = self.env.unwrapped
        _rg_refresh_derived(u.model, u.data)
        self.last_state = self.builder.build(u.data, action, self.episode_step, self.device)
        total, components = compute_reward(self.builder.build(u.data, action, self.episode_step, self.device))
        info = dict(info)
        info["env_reward"] = float(env_reward)
        info["reward_components"] = {str(k): float(v.reshape(-1)[0]) for k, v in components.items()}
        return obs, float(total.reshape(-1)[0]), terminated, truncated, info
'''

_MAKE_ENV = '''

def make_env(render_mode=None, **kwargs):
    """The run's env with this reward: gymnasium ``ENV_ID``, ``EPISODE_LENGTH`` steps, actions in [-1, 1]."""
    if ENV_ID is None:
        raise RuntimeError("this run used an MJCF task; build its env yourself and wrap it: RewardWrapper(env)")
    env = _rg_gym.make(ENV_ID, max_episode_steps=EPISODE_LENGTH, render_mode=render_mode, **{**ENV_KWARGS, **kwargs})
    low, high = env.action_space.low, env.action_space.high
    if not (_rg_np.allclose(low, -1.0) and _rg_np.allclose(high, 1.0)):
        env = _rg_gym.wrappers.RescaleAction(env, -1.0, 1.0)
    return RewardWrapper(env)


if __name__ == "__main__":  # smoke test: a few random steps, the components they earned
    _env = make_env()
    _env.reset(seed=0)
    for _ in range(5):
        _, _r, _term, _trunc, _info = _env.step(_env.action_space.sample())
        print(f"reward {_r:+.4f}", _info["reward_components"])
        if _term or _trunc:
            break
    _env.close()
'''
