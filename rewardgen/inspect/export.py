"""``export_reward``: a candidate's reward as one standalone Python file, honest about what it is.

The reward is untrusted code (an LLM wrote it); outside rewardgen only what the user chooses contains
it. So the export:

- refuses what ``rewardgen check`` refuses statically (``validate_source``; a broken candidate too);
- writes every fact of the run (task text, fitness, env settings, the run's name) as a Python literal
  checked to read back equal (``_literal``): nothing from ``run.json`` can become code, and the reward
  itself is data too (``REWARD_SOURCE``, one escaped literal per line): importing the file runs none of it;
- says in plain words at the top that the reward runs unsandboxed in the user's process with
  ``RewardWrapper``/``make_env()``/``make_vec_env()``, and offers the sandboxed form
  (``SandboxedRewardWrapper``, ``make_env(sandboxed=True)``, ``make_vec_env(sandboxed=True)``), which
  evaluates it in rewardgen's jail (``rewardgen.procs.standalone``) when rewardgen is installed;
- builds the State once per step into preallocated arrays (the fields of
  ``rewardgen.contract.state.StateBuffers``, names derived from the MjModel as
  ``rewardgen.contract.schema`` does), and the vectorised form evaluates all its envs in one call.

The file imports only gymnasium, mujoco, numpy, torch and math (stable-baselines3 for
``make_vec_env``, rewardgen for the sandboxed forms). Its own names start with ``RG_``/``_rg_`` (plus the
public ones: ``RewardWrapper``, ``make_env``...), so the reward's helpers are not shadowed.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

from rewardgen.contract.syntax import parse
from rewardgen.errors import UserError, flatten
from rewardgen.inspect.pages import as_dict
from rewardgen.store import (
    MAX_SOURCE_BYTES,
    METRICS_FILE,
    REWARD_FILE,
    RUN_FILE,
    RunStore,
    RunStoreError,
    Stage,
    atomic_write_text,
    candidate_label,
    parse_candidate_label,
)


class ExportError(UserError):
    """The run or candidate cannot be exported; the message is for the user."""


#: candidate statuses (metrics.json) of a reward that does not work: exporting it would mislead
BROKEN = {Stage.STATIC: "failed the static checks", Stage.CONTRACT: "broke the reward contract",
          Stage.RUNTIME: "failed at runtime", Stage.PROPOSAL: "was never a usable reward"}


def parse_candidate(text: str) -> tuple[int, int]:
    """``"g1c0"`` (or ``"1/0"``) -> (1, 0)."""
    parsed = parse_candidate_label(text)
    if parsed is None:
        raise ExportError(f"candidate must look like g1c0 (generation 1, candidate 0; 1/0 works too), got {text!r}")
    return parsed


def _select(run_dir: Path, run: dict, candidate: tuple[int, int] | None) -> tuple[int, int]:
    if candidate is not None:
        return candidate
    best = run.get("best")
    if isinstance(best, dict) and isinstance(best.get("generation"), int) and isinstance(best.get("candidate"), int):
        return best["generation"], best["candidate"]
    raise ExportError(f"run {run_dir} has no best candidate yet; name one with --candidate, e.g. g1c0")


def export_reward(run_dir: Path, candidate: tuple[int, int] | None, out: Path) -> Path:
    """Write the standalone reward file for ``candidate`` (default: the run's best) to ``out``.

    Raises ``ExportError`` (a message for the user) when the run or candidate does not exist, its
    reward is refused by the static check ``rewardgen check`` runs, or the candidate failed when checked.
    An MJCF task is exported with ``ENV_ID = None`` (``RewardWrapper`` works on any env of the model)."""
    from rewardgen.sandbox.validate import validate_source

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
    label = candidate_label(g, c)
    cand_dir = store.cand_dir(g, c)
    try:
        source = store.read_text(cand_dir / REWARD_FILE, MAX_SOURCE_BYTES)
    except RunStoreError as exc:
        raise ExportError(str(exc)) from None
    except (OSError, UnicodeDecodeError):
        raise ExportError(f"no reward for candidate {candidate_label(g, c)} ({cand_dir / 'reward.py'} is missing)") from None
    metrics: dict = {}
    try:
        metrics = store.read_json(cand_dir / METRICS_FILE) or {}
    except RunStoreError:
        pass
    metrics = metrics if isinstance(metrics, dict) else {}
    try:
        compile(source, str(cand_dir / REWARD_FILE), "exec")
    except SyntaxError as exc:
        raise ExportError(f"candidate {label} cannot be exported: its reward.py does not parse (SyntaxError: "
                          f"{exc.msg}, line {exc.lineno}); nothing was written") from None
    issues = validate_source(source)
    if issues:
        more = f" (and {len(issues) - 1} more issue(s))" if len(issues) > 1 else ""
        raise ExportError(f"candidate {label} cannot be exported: rewardgen check refuses its reward.py ({issues[0]}"
                          f"{more}); nothing was written")
    if metrics.get("status") in BROKEN:
        why = flatten(metrics.get("error") or "no detail", 200)
        raise ExportError(f"candidate {label} cannot be exported: it {BROKEN[metrics['status']]} when checked "
                          f"({why}); nothing was written; pick another with --candidate")
    fitness = metrics.get("fitness")
    text = render_export(source, task, origin=f"{run_dir.name} candidate {label}",
                         fitness=fitness if isinstance(fitness, (int, float)) else None)
    compile(text, str(out), "exec")  # never write a file that does not parse
    atomic_write_text(Path(out), text)
    return Path(out)


# ----- every value from the run becomes a literal that reads back equal, or the export stops
def _literal(value: Any, depth: int = 0) -> str:
    """``value`` (JSON-like data from ``run.json``) as Python source that evaluates to it, and nothing
    else: strings through ``repr`` (quotes, newlines, backslashes and lone surrogates escaped), numbers
    finite, containers of those. ``ExportError`` for anything else."""
    if depth > 20:
        raise ExportError("run.json holds data nested too deeply to export")
    if value is None or isinstance(value, bool):
        text = repr(value)
    elif isinstance(value, int):
        text = repr(int(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ExportError(f"run.json holds a non-finite number ({value}); cannot export it")
        text = repr(float(value))
    elif isinstance(value, str):
        text = repr(str(value))
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_literal(v, depth + 1) for v in value) + "]"
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ExportError("run.json holds a mapping with keys that are not text; cannot export it")
        text = "{" + ", ".join(f"{_literal(k)}: {_literal(v, depth + 1)}" for k, v in value.items()) + "}"
    else:
        raise ExportError(f"run.json holds a {type(value).__name__}; cannot export it")
    if depth == 0 and ast.literal_eval(text) != (list(value) if isinstance(value, tuple) else value):
        raise ExportError("a value of run.json does not read back as itself; cannot export it")
    return text


def _source_literal(source: str) -> str:
    """The reward's source as a readable expression of literals: one escaped string per line, joined.
    Checked by parsing it back: a list of string constants equal to the lines, nothing else."""
    lines = source.rstrip("\n").split("\n")
    body = "".join(f"    {_literal(line)},\n" for line in lines)
    text = f'"\\n".join([\n{body}]) + "\\n"'
    expr = parse(text, mode="eval").body
    call = expr.left if isinstance(expr, ast.BinOp) and isinstance(expr.left, ast.Call) else None
    joined = call.args[0] if call is not None and call.args else None
    items = joined.elts if isinstance(joined, ast.List) else None
    if items is None or [getattr(x, "value", None) for x in items] != lines \
            or not all(isinstance(x, ast.Constant) for x in items):
        raise ExportError("the reward's source does not read back as itself; cannot export it")
    return text


STATE_FIELDS = ("qpos", "qvel", "action", "ctrl", "step", "body_pos", "body_quat", "body_linvel", "body_angvel",
                "body_up", "joint_pos", "joint_vel", "site_pos", "com_pos", "com_vel", "contact_force")


def state_fields_read(source: str) -> list[str]:
    """The State fields ``source`` reads: every attribute (or match-pattern attribute) named like one.
    Sound for a source the validator accepted, which builds no attribute name at runtime."""
    tree = parse(source)
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a for n in ast.walk(tree) if isinstance(n, ast.MatchClass) for a in n.kwd_attrs}
    if "num_worlds" in names:
        names.add("qpos")
    return [f for f in STATE_FIELDS if f in names]


def render_export(source: str, task: dict, origin: str = "", fitness: float | None = None) -> str:
    """The exported file's text for a reward ``source`` and a task dict (``Task.to_dict()``)."""
    fit = as_dict(task.get("fitness"))
    params = as_dict(fit.get("params"))
    env_id = task.get("env") if isinstance(task.get("env"), str) else None
    consts = (
        f"RUN = {_literal(origin or 'a reward file')}  # where it was exported from\n"
        f"TASK_ID = {_literal(str(task.get('id', '?')))}\n"
        f"TASK_DESCRIPTION = {_literal(str(task.get('description', '')))}\n"
        f"TRUSTED_FITNESS = {_literal({'name': str(fit.get('name', '?')), 'params': params})}\n"
        f"FITNESS = {_literal(float(fitness) if fitness is not None and math.isfinite(fitness) else None)}"
        "  # the candidate's trusted fitness in the run\n"
        f"ENV_ID = {_literal(env_id)}\n"
        f"MJCF = {_literal(str(task.get('mjcf')) if task.get('mjcf') else None)}\n"
        f"EPISODE_LENGTH = {_literal(int(task.get('episode_length', 1000)))}\n"
        f"ENV_KWARGS = {_literal(task.get('env_kwargs') or {})}\n"
        f"FRAME_SKIP = {_literal(int(task.get('frame_skip', 5)))}\n"
    )
    reward = ("# The reward's code, as data: it runs only when a wrapper is made (load_reward: in this process;\n"
              "# the sandboxed forms: in rewardgen's jail). Read it before you use the unsandboxed forms.\n"
              f"REWARD_SOURCE = {_source_literal(source)}\n"
              "# The State fields the reward's code reads (found in its source: the static check refuses attribute\n"
              "# names built at runtime, so it reads no other); the unsandboxed forms build these only.\n"
              f"STATE_FIELDS_READ = {_literal(state_fields_read(source))}\n")
    text = _HEADER + "\n" + consts + "\n" + reward + _RUNTIME
    compile(text, "<export>", "exec")
    return text


_HEADER = '''"""A reward exported by rewardgen. IT IS UNTRUSTED CODE: read this before you use it.

The reward (REWARD_SOURCE below) was written by an LLM, or by whoever made the run, and rewardgen only
ever ran it inside its sandbox. Outside rewardgen nothing contains it unless you choose so:

- RewardWrapper, make_env() and make_vec_env() run it UNSANDBOXED, in YOUR Python process, with your
  files, your network, your environment variables (API keys included) and your memory. rewardgen's
  static check accepted it before export, but that check is not a sandbox.
- SandboxedRewardWrapper, make_env(sandboxed=True) and make_vec_env(sandboxed=True) run it in
  rewardgen's jail (its own namespaces, an empty root, an allowlist seccomp filter, rlimits, in a
  process that holds nothing of yours). They need rewardgen installed. Use them for any reward you
  have not read and understood yourself.

Importing this file runs none of the reward: REWARD_SOURCE is text until a wrapper is made. The run's
facts (task, fitness) are the constants below, written as data.

Needs gymnasium, mujoco, numpy and torch; make_vec_env needs stable-baselines3.

    env = make_env(sandboxed=True)          # the task's env, the reward in rewardgen's jail
    venv = make_vec_env(8, sandboxed=True)  # an SB3 VecEnv: one jailed call per step for all 8 envs
    env = make_env()                        # the reward unsandboxed in this process (read it first)
    env = RewardWrapper(other_env)          # or wrap an env of the same model yourself

info["reward_components"] holds the components, info["env_reward"] the env's own reward.
"""
'''

_RUNTIME = '''

# ---- State builder and wrappers (exported by rewardgen) ---------------------------------------------

import linecache as _rg_linecache  # noqa: E402
import math as _rg_math  # noqa: E402,F401

import gymnasium as _rg_gym  # noqa: E402
import mujoco as _rg_mujoco  # noqa: E402
import numpy as _rg_np  # noqa: E402
import torch as _rg_torch  # noqa: E402

_RG_SLIDE = int(_rg_mujoco.mjtJoint.mjJNT_SLIDE)
_RG_HINGE = int(_rg_mujoco.mjtJoint.mjJNT_HINGE)
_RG_JOINT_TRN = (int(_rg_mujoco.mjtTrn.mjTRN_JOINT), int(_rg_mujoco.mjtTrn.mjTRN_JOINTINPARENT))
_RG_FILENAME = "<rewardgen exported reward>"
_RG_EPS = _rg_np.zeros((3, 3, 3))  # the Levi-Civita symbol: a x b = einsum("ijk,j,k->i", eps, a, b)
_RG_EPS[0, 1, 2] = _RG_EPS[1, 2, 0] = _RG_EPS[2, 0, 1] = 1.0
_RG_EPS[0, 2, 1] = _RG_EPS[2, 1, 0] = _RG_EPS[1, 0, 2] = -1.0


def load_reward():
    """``compute_reward`` from REWARD_SOURCE, executed in THIS process with no sandbox (read the warning
    at the top of this file). The sandboxed forms never call this."""
    _rg_linecache.cache[_RG_FILENAME] = (len(REWARD_SOURCE), None, REWARD_SOURCE.splitlines(True), _RG_FILENAME)
    namespace = {"__name__": "rewardgen_exported_reward", "__file__": _RG_FILENAME}
    exec(compile(REWARD_SOURCE, _RG_FILENAME, "exec"), namespace)  # noqa: S102 - the user chose the unsandboxed form
    return namespace["compute_reward"]


class RG_Named:
    """Read-only name -> (worlds, ...) tensor view (s.body_pos["torso"] etc.) over the named field's columns."""

    __slots__ = ("_names", "_index", "_flat", "_width")

    def __init__(self, names, index, flat, width):
        self._names, self._index, self._flat, self._width = names, index, flat, width

    def __getitem__(self, name):
        i = self._index.get(name)
        if i is None:
            raise KeyError(f"{name!r} is not in this model; known names: {', '.join(self._names)}")
        w = self._width
        return self._flat[:, i] if w == 0 else self._flat[:, i * w:(i + 1) * w]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def __contains__(self, name):
        return name in self._index

    def get(self, name, default=None):
        return self[name] if name in self._index else default

    def keys(self):
        return list(self._names)

    def items(self):
        return [(n, self[n]) for n in self._names]

    def values(self):
        return [self[n] for n in self._names]

    @property
    def stacked(self):
        """All names at once: (worlds, names, ...)."""
        n = self._flat.shape[0]
        return self._flat if self._width == 0 else self._flat.reshape(n, len(self._names), self._width)


class RG_State:
    """The reward's ``s``: a batch of worlds, float32 tensors with a leading batch dimension."""

    __slots__ = ("qpos", "qvel", "action", "ctrl", "dt", "step", "body_pos", "body_quat", "body_linvel",
                 "body_angvel", "body_up", "joint_pos", "joint_vel", "site_pos", "com_pos", "com_vel",
                 "contact_force")

    @property
    def num_worlds(self):
        return int(self.qpos.shape[0])

    def __getattr__(self, name):  # a field this State was not built with (RG_StateBuilder's fields)
        raise AttributeError(f"s.{name}: this State was built with the fields the reward's code reads "
                             f"(STATE_FIELDS_READ = {STATE_FIELDS_READ}); build it with all of them "
                             "(RG_StateBuilder(model, frame_skip)) to read others")


def _rg_name(model, obj, index, prefix):
    name = _rg_mujoco.mj_id2name(model, obj, index)
    return name if name else f"{prefix}{index}"


def _rg_refresh_derived(model, data):
    """Bring positions/velocities derived from qpos/qvel up to date after mj_step (dynamics untouched)."""
    _rg_mujoco.mj_kinematics(model, data)
    _rg_mujoco.mj_comPos(model, data)
    _rg_mujoco.mj_comVel(model, data)
    _rg_mujoco.mj_subtreeVel(model, data)


def _rg_index(ids):
    """A slice when ``ids`` are consecutive (a view, no gather), else the index array."""
    ids = _rg_np.asarray(ids, dtype=_rg_np.int64)
    if len(ids) and _rg_np.array_equal(ids, _rg_np.arange(ids[0], ids[0] + len(ids))):
        return slice(int(ids[0]), int(ids[0]) + len(ids))
    return ids


class RG_StateBuilder:
    """Names and indices from the MjModel (as rewardgen's schema derives them); the State of up to
    ``num_worlds`` worlds, each filled into its row of one preallocated float32 block and handed to the
    reward as views of one copy of that block per step (the reward owns its tensors). ``fields``: the
    State fields to build (default: all); the reward's are ``STATE_FIELDS_READ``."""

    FIELDS = ("qpos", "qvel", "action", "ctrl", "step", "body_pos", "body_quat", "body_linvel", "body_angvel",
              "body_up", "joint_pos", "joint_vel", "site_pos", "com_pos", "com_vel", "contact_force")

    def __init__(self, model, frame_skip, num_worlds=1, fields=None):
        obj = _rg_mujoco.mjtObj
        self.body_ids = _rg_np.arange(1, model.nbody)
        self.bodies = tuple(_rg_name(model, obj.mjOBJ_BODY, int(b), "body") for b in self.body_ids)
        joints = [j for j in range(model.njnt) if int(model.jnt_type[j]) in (_RG_SLIDE, _RG_HINGE)]
        self.joints = tuple(_rg_name(model, obj.mjOBJ_JOINT, j, "joint") for j in joints)
        self.site_ids = _rg_np.arange(model.nsite)
        self.sites = tuple(_rg_name(model, obj.mjOBJ_SITE, int(s), "site") for s in self.site_ids)
        self.robot_root = 1 if model.nbody > 1 else 0
        for a in range(model.nu):
            if int(model.actuator_trntype[a]) in _RG_JOINT_TRN:
                self.robot_root = int(model.body_rootid[model.jnt_bodyid[model.actuator_trnid[a, 0]]])
                break
        self.dt = float(model.opt.timestep * frame_skip)
        self.n = int(num_worlds)
        self._b = _rg_index(self.body_ids)
        roots = model.body_rootid[self.body_ids]
        self._roots = int(roots[0]) if len(roots) and (roots == roots[0]).all() else _rg_index(roots)
        self._qadr = _rg_index([int(model.jnt_qposadr[j]) for j in joints])
        self._dadr = _rg_index([int(model.jnt_dofadr[j]) for j in joints])
        self._sites = _rg_index(self.site_ids)
        nb, nj, ns = len(self.bodies), len(self.joints), len(self.sites)
        shapes = {"qpos": (model.nq,), "qvel": (model.nv,), "action": (model.nu,), "ctrl": (model.nu,), "step": (),
                  "body_pos": (nb, 3), "body_quat": (nb, 4), "body_linvel": (nb, 3), "body_angvel": (nb, 3),
                  "body_up": (nb, 3), "joint_pos": (nj,), "joint_vel": (nj,), "site_pos": (ns, 3), "com_pos": (3,),
                  "com_vel": (3,), "contact_force": (nb,)}
        self.fields = tuple(f for f in self.FIELDS if fields is None or f in fields)
        self._sizes = [int(_rg_np.prod(shapes[f], dtype=_rg_np.int64)) for f in self.fields]
        self._block = _rg_np.zeros((self.n, sum(self._sizes)), _rg_np.float32)  # one row per world
        offset = 0
        for name, size in zip(self.fields, self._sizes):  # numpy views of each field's columns, to fill
            view = self._block[:, offset:offset + size].reshape(self.n, *shapes[name])
            if size and not _rg_np.shares_memory(view, self._block):
                raise RuntimeError(f"the State field {name} cannot be a view of its block")
            setattr(self, "_" + name, view)
            offset += size
        self._fill = [getattr(self, "_fill_" + f) for f in self.fields]
        ends = _rg_np.cumsum([0, *self._sizes])
        self._spans = [(int(ends[k]), int(ends[k + 1])) for k in range(len(self.fields))]
        by = {"body": self.bodies, "joint": self.joints, "site": self.sites}
        self._named = {}
        for name in ("body_pos", "body_quat", "body_linvel", "body_angvel", "body_up", "joint_pos", "joint_vel",
                     "site_pos", "contact_force"):
            names = by["body" if name == "contact_force" else name.split("_")[0]]
            width = shapes[name][1] if len(shapes[name]) > 1 else 0
            self._named[name] = (names, {x: i for i, x in enumerate(names)}, width)

    def fill(self, i, data, action, step):
        """World ``i``'s state from ``data`` (derived quantities must be current), the fields built only."""
        for fill in self._fill:
            fill(i, data, action, step)

    # one filler per field (the order of FIELDS); each reads what it needs from MjData
    def _fill_qpos(self, i, data, action, step):
        self._qpos[i] = data.qpos

    def _fill_qvel(self, i, data, action, step):
        self._qvel[i] = data.qvel

    def _fill_action(self, i, data, action, step):
        self._action[i] = action

    def _fill_ctrl(self, i, data, action, step):
        self._ctrl[i] = data.ctrl

    def _fill_step(self, i, data, action, step):
        self._step[i] = step

    def _fill_body_pos(self, i, data, action, step):
        self._body_pos[i] = data.xpos[self._b]

    def _fill_body_quat(self, i, data, action, step):
        self._body_quat[i] = data.xquat[self._b]

    def _fill_body_linvel(self, i, data, action, step):
        # cvel's linear part moved from the subtree's centre to the body's origin: + ang x d, in float64. The
        # cross product through the Levi-Civita symbol in one einsum: each component is the same two products
        # numpy's cross takes (plus exact zeros), so the values equal rewardgen's to the bit, in one call
        cvel = data.cvel[self._b]
        d = data.xpos[self._b] - data.subtree_com[self._roots]
        self._body_linvel[i] = cvel[:, 3:] + _rg_np.einsum("ijk,nj,nk->ni", _RG_EPS, cvel[:, :3], d)

    def _fill_body_angvel(self, i, data, action, step):
        self._body_angvel[i] = data.cvel[self._b, :3]

    def _fill_body_up(self, i, data, action, step):
        self._body_up[i] = data.xmat[self._b][:, 2::3]

    def _fill_joint_pos(self, i, data, action, step):
        self._joint_pos[i] = data.qpos[self._qadr]

    def _fill_joint_vel(self, i, data, action, step):
        self._joint_vel[i] = data.qvel[self._dadr]

    def _fill_site_pos(self, i, data, action, step):
        if len(self.site_ids):
            self._site_pos[i] = data.site_xpos[self._sites]

    def _fill_com_pos(self, i, data, action, step):
        self._com_pos[i] = data.subtree_com[self.robot_root]

    def _fill_com_vel(self, i, data, action, step):
        self._com_vel[i] = data.subtree_linvel[self.robot_root]

    def _fill_contact_force(self, i, data, action, step):
        f = data.cfrc_ext[self._b, 3:]
        self._contact_force[i] = _rg_np.sqrt(_rg_np.einsum("ij,ij->i", f, f))

    def state(self, n=None, device="cpu"):
        """A State of the first ``n`` worlds, views of one copy of the block (made once per call)."""
        n = self.n if n is None else n
        block = self._block[:n].copy()
        # a tensor per field the reward reads, each a view of the copy (from_numpy per field costs less
        # than one torch split for the few fields a reward reads)
        parts = [_rg_torch.from_numpy(block[:, a:b]) for a, b in self._spans]
        if device != "cpu":
            parts = [t.to(device) for t in parts]
        s = RG_State()
        named = self._named
        for name, t in zip(self.fields, parts):
            if name in named:
                names, index, width = named[name]
                t = RG_Named(names, index, t, width)
            elif name == "step":
                t = t.reshape(n)
            setattr(s, name, t)
        s.dt = self.dt
        return s


def _rg_values(total, components, n):
    """``(total, {name: value})`` of the reward's tensors: floats for one world, numpy arrays for n."""
    parts = [total, *components.values()]
    if not all(isinstance(p, _rg_torch.Tensor) and p.numel() == n for p in parts):
        raise ValueError(f"compute_reward must return tensors of shape ({n},); got "
                         + ", ".join(str(tuple(getattr(p, "shape", ()))) for p in parts))
    if n == 1:
        return float(total), {k: float(v) for k, v in components.items()}
    rows = _rg_torch.stack([p.detach().reshape(n).to(_rg_torch.float32).cpu() for p in parts]).numpy()
    return rows[0], {k: rows[1 + j] for j, k in enumerate(components)}


class RewardWrapper(_rg_gym.Wrapper):
    """Replaces the env's reward by ``compute_reward``'s total on the State after each step. The reward
    runs UNSANDBOXED in this process (see the top of this file; ``SandboxedRewardWrapper`` does not).

    ``info["reward_components"]`` holds the components (floats), ``info["env_reward"]`` the env's own
    reward. Apply it outermost, on an env whose actions are in [-1, 1] (``make_env`` does): ``s.action``
    is the action given to ``step``. ``s.step`` counts steps since the last reset, from 1.
    """

    def __init__(self, env, device="cpu"):
        super().__init__(env)
        self._u = u = env.unwrapped
        self.frame_skip = int(getattr(u, "frame_skip", FRAME_SKIP))
        self.builder = RG_StateBuilder(u.model, self.frame_skip, fields=STATE_FIELDS_READ)
        self.device = device
        self.episode_step = 0
        self._action = None
        self._full = None
        self._start()

    @property
    def last_state(self):
        """The full State (every field) of the simulator as it is now, after the last step."""
        if self._action is None:
            return None
        if self._full is None:
            self._full = RG_StateBuilder(self._u.model, self.frame_skip)
        self._full.fill(0, self._u.data, self._action, self.episode_step)
        return self._full.state(1, self.device)

    def _start(self):
        self.compute_reward = load_reward()

    def reset(self, **kwargs):
        self.episode_step = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        self.episode_step += 1
        u = self._u
        _rg_refresh_derived(u.model, u.data)
        total, components = self._evaluate(u.data, action)
        info = dict(info)
        info["env_reward"] = float(env_reward)
        info["reward_components"] = components
        return obs, total, terminated, truncated, info

    def _evaluate(self, data, action):
        self._action = action
        self.builder.fill(0, data, action, self.episode_step)
        state = self.builder.state(1, self.device)
        with _rg_torch.no_grad():
            total, components = self.compute_reward(state)
        return _rg_values(total, components, 1)


def _rg_jailed(model, frame_skip, capacity):
    """rewardgen's jail for REWARD_SOURCE (``rewardgen.procs.standalone.JailedReward``)."""
    try:
        from rewardgen.procs.standalone import JailedReward
    except ImportError as exc:
        raise ImportError("the sandboxed form evaluates the reward in rewardgen's jail and needs rewardgen "
                          f"installed ({exc}); the unsandboxed form runs the reward in this process") from None
    return JailedReward(REWARD_SOURCE, model, frame_skip, capacity)


class SandboxedRewardWrapper(RewardWrapper):
    """``RewardWrapper`` with the reward evaluated in rewardgen's jail (rewardgen must be installed):
    the same rewards, and the reward's code never runs in this process. ``close()`` stops the jail."""

    def _start(self):
        self.compute_reward = None
        self.jailed = _rg_jailed(self.env.unwrapped.model, self.frame_skip, 1)

    def _evaluate(self, data, action):
        self._action = action
        self.jailed.fill(0, data, action, self.episode_step)
        total, components = self.jailed(1)
        return float(total[0]), {k: float(v[0]) for k, v in components.items()}

    def close(self):
        self.jailed.close()
        return super().close()


def _rg_base_env(render_mode=None, **kwargs):
    if ENV_ID is None:
        raise RuntimeError("this run used an MJCF task; build its env yourself and wrap it: RewardWrapper(env)")
    env = _rg_gym.make(ENV_ID, max_episode_steps=EPISODE_LENGTH, render_mode=render_mode, **{**ENV_KWARGS, **kwargs})
    low, high = env.action_space.low, env.action_space.high
    if not (_rg_np.allclose(low, -1.0) and _rg_np.allclose(high, 1.0)):
        env = _rg_gym.wrappers.RescaleAction(env, -1.0, 1.0)
    return env


def make_env(render_mode=None, sandboxed=False, **kwargs):
    """The run's env with this reward: gymnasium ``ENV_ID``, ``EPISODE_LENGTH`` steps, actions in [-1, 1].
    ``sandboxed=True``: the reward in rewardgen's jail; False: unsandboxed in this process."""
    env = _rg_base_env(render_mode, **kwargs)
    return SandboxedRewardWrapper(env) if sandboxed else RewardWrapper(env)


class RG_Batch:
    """The State of a vectorised env's worlds, filled by each env as it steps and evaluated in one call."""

    def __init__(self, n_envs, sandboxed, device="cpu"):
        self.n, self.sandboxed, self.device = int(n_envs), sandboxed, device
        self.builder = self.jailed = self.compute_reward = None

    def attach(self, env):
        """Made on the first env: the State layout (every env of a VecEnv has the same model)."""
        if self.builder is None and self.jailed is None:
            u = env.unwrapped
            frame_skip = int(getattr(u, "frame_skip", FRAME_SKIP))
            if self.sandboxed:
                self.jailed = _rg_jailed(u.model, frame_skip, self.n)
            else:
                self.builder = RG_StateBuilder(u.model, frame_skip, self.n, fields=STATE_FIELDS_READ)
                self.compute_reward = load_reward()

    def fill(self, i, data, action, step):
        (self.jailed or self.builder).fill(i, data, action, step)

    def evaluate(self):
        if self.jailed is not None:
            return self.jailed(self.n)
        with _rg_torch.no_grad():
            total, components = self.compute_reward(self.builder.state(self.n, self.device))
        return _rg_values(total, components, self.n)

    def close(self):
        if self.jailed is not None:
            self.jailed.close()


class RG_Capture(_rg_gym.Wrapper):
    """One env of a vectorised env: steps it and writes its State into the batch (before any reset)."""

    def __init__(self, env, batch, index):
        super().__init__(env)
        self.batch, self.index, self.episode_step = batch, index, 0
        batch.attach(env)

    def reset(self, **kwargs):
        self.episode_step = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        out = self.env.step(action)
        self.episode_step += 1
        u = self.env.unwrapped
        _rg_refresh_derived(u.model, u.data)
        self.batch.fill(self.index, u.data, action, self.episode_step)
        return out


def make_vec_env(n_envs=8, sandboxed=False, device="cpu", **kwargs):
    """An SB3 VecEnv (``DummyVecEnv``) of ``n_envs`` copies of the run's env with this reward, evaluated
    once per step for all of them (batched: one jail call per step with ``sandboxed=True``)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper

    class RewardVecEnv(VecEnvWrapper):
        """Replaces the envs' rewards by the batch's; infos get "reward_components" and "env_reward"."""

        def __init__(self, venv, batch):
            super().__init__(venv)
            self.batch = batch

        def reset(self):
            return self.venv.reset()

        def step_wait(self):
            obs, env_rewards, dones, infos = self.venv.step_wait()
            total, components = self.batch.evaluate()
            for i, info in enumerate(infos):
                info["env_reward"] = float(env_rewards[i])
                info["reward_components"] = {k: float(v[i]) for k, v in components.items()}
            return obs, _rg_np.asarray(total, dtype=_rg_np.float32), dones, infos

        def close(self):
            self.batch.close()
            return self.venv.close()

    batch = RG_Batch(n_envs, sandboxed, device)
    venv = DummyVecEnv([(lambda i=i: RG_Capture(_rg_base_env(**kwargs), batch, i)) for i in range(n_envs)])
    return RewardVecEnv(venv, batch)


if __name__ == "__main__":  # smoke test in rewardgen's jail: a few random steps, the components they earned
    _env = make_env(sandboxed=True)
    _env.reset(seed=0)
    for _ in range(5):
        _, _r, _term, _trunc, _info = _env.step(_env.action_space.sample())
        print(f"reward {_r:+.4f}", _info["reward_components"])
        if _term or _trunc:
            break
    _env.close()
'''
