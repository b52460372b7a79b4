"""N worlds of one task on MuJoCo Warp (GPU), with ``BatchSim``'s interface and semantics.

``WarpSim`` is the GPU counterpart of :class:`rewardgen.sim.cpu.BatchSim`: the same constructor
arguments (plus ``device``), the same ``reset() / step(actions) -> StepResult / state(device)``
API, the same gymnasium rules per world (observation layout, termination, the env's own reward,
time limit, auto-reset with the task's reset noise). The difference is where the work happens:

* physics runs in MuJoCo Warp (``mujoco_warp.step`` over ``nworld`` worlds). On CUDA the per-env-step
  physics (``frame_skip`` substeps, the contact-force pass, the refresh of derived quantities) and
  the per-world reset are captured once in CUDA graphs (``wp.ScopedCapture``) and replayed;
* MuJoCo Warp's arrays are viewed as torch tensors without copying (``wp.to_torch``), and
  everything else (action rescaling, observations, termination, the env reward, the reward
  contract's derived State fields, reset noise) is torch on the same device and the same stream;
  nothing goes to the host per step unless you ask for numpy output.

Semantics, mirroring ``BatchSim`` (see its docstring):

* observations and the env reward read what gymnasium reads after ``mj_step``: for single-stage
  integrators (Euler, implicit) body positions and ``cfrc_ext`` of the last substep's start (MuJoCo
  Warp's ``step`` leaves them there, like MuJoCo's ``mj_step``); for RK4, those of the new state;
* what the env's rules (``rewardgen.sim.rules``, shared with BatchSim) read is MuJoCo Warp's own
  arrays as the physics left them (``xpos``, ``xipos``, ``cinert``, ``cvel``, ``site_xpos``,
  ``qfrc_actuator``, ``qfrc_constraint``, ``cfrc_ext``), copied before the refresh below;
* the reward's State describes the new state: ``kinematics``, ``com_pos``, ``com_vel`` and
  ``subtree_vel`` are recomputed after the step (``refresh_derived``); body linear velocity is
  ``cvel``'s linear part moved from the root's subtree com to the body origin
  (``v = lin + ang x (xpos - subtree_com[root])``), body_up is ``xmat``'s third column,
  contact_force is ``|cfrc_ext[body, 3:]|`` as the step produced it;
* a finished world is reset with ``mujoco_warp.reset_data`` (masked) and its qpos/qvel drawn by the
  env's rules. The draws come from one torch generator on the device (seeded by ``seed``; rejection
  sampling redraws a fixed ``REJECTION_ROUNDS`` times), not from per-world numpy generators, so
  WarpSim and BatchSim with the same seed start from different (identically distributed) states.
  ``set_world_state`` puts a world in a given state.

Precision: MuJoCo Warp computes in float32 (BatchSim in float64), so trajectories agree to float32
rounding for a few steps and then drift apart like any chaotic system; statistics agree.

Nothing here imports warp until a WarpSim is built. Install with ``pip install "rewardgen[gpu]"``.
Kernels are compiled once per machine and cached (``REWARDGEN_WARP_CACHE`` or
``~/.cache/rewardgen/warp``); on Warp's CPU device the first compile of the step takes about a
minute, which makes the CPU device useful for tests only.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch
from array_api_compat import torch as xt

from rewardgen.contract.state import State
from rewardgen.sim import StepResult
from rewardgen.sim.cpu import BatchSim
from rewardgen.sim.rules import EnvMirror, init_from_env
from rewardgen.tasks.spec import Task, box

#: redraws of every world's sample in ``_DeviceDraw.until`` (no host round trip to ask whether all
#: were accepted): with an acceptance rate of 0.6 or more a world is left unaccepted with probability
#: below 1e-12
REJECTION_ROUNDS = 32


class WarpUnavailable(RuntimeError):
    """MuJoCo Warp cannot run here (not installed, or the device does not exist); message is for the user."""


# ------------------------------------------------------------------------------------------------
# warp loading
_WP: Any = None
_MJW: Any = None


def kernel_cache_dir() -> Path:
    """Where compiled Warp kernels are kept: ``$REWARDGEN_WARP_CACHE``, else ``~/.cache/rewardgen/warp``,
    else (home not writable) a directory under the system temp dir."""
    env = os.environ.get("REWARDGEN_WARP_CACHE")
    candidates = [Path(env)] if env else []
    candidates += [Path.home() / ".cache" / "rewardgen" / "warp", Path(tempfile.gettempdir()) / "rewardgen-warp-cache"]
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    return candidates[-1]


def load_warp() -> tuple[Any, Any]:
    """Import and initialise warp and mujoco_warp (once), with the persistent kernel cache.

    Raises WarpUnavailable with an install hint when either is missing.
    """
    global _WP, _MJW
    if _WP is not None:
        return _WP, _MJW
    try:
        import warp as wp
    except ImportError as exc:
        raise WarpUnavailable(f"the Warp backend needs warp-lang and mujoco-warp: pip install \"rewardgen[gpu]\" "
                              f"({exc})") from None
    # must be set before wp.init() for the first time; harmless if warp was initialised already
    if not getattr(wp.config, "_rewardgen_cache_set", False):  # our own flag on warp's config module
        wp.config.kernel_cache_dir = str(kernel_cache_dir())
        setattr(wp.config, "_rewardgen_cache_set", True)  # noqa: B010 - not an attribute warp declares
    if hasattr(wp, "LOG_WARNING"):  # no init banner / per-module load lines in worker logs
        wp.config.log_level = wp.LOG_WARNING
    else:  # older warp, whose config has ``quiet`` instead
        setattr(wp.config, "quiet", True)  # noqa: B010 - absent from the installed warp's config
    wp.init()
    try:
        import mujoco_warp as mjw
    except ImportError as exc:
        raise WarpUnavailable(f"the Warp backend needs mujoco-warp: pip install \"rewardgen[gpu]\" ({exc})") from None
    _WP, _MJW = wp, mjw
    return wp, mjw


def _resolve_device(wp: Any, device: str) -> Any:
    try:
        return wp.get_device(device)
    except (RuntimeError, ValueError) as exc:
        have = ", ".join(str(d) for d in wp.get_devices()) or "none"
        hint = " (no CUDA device or driver found: use --device cpu or --sim cpu)" if device.startswith("cuda") else ""
        raise WarpUnavailable(f"Warp device {device!r} is not available{hint}; devices: {have} ({exc})") from None


# ------------------------------------------------------------------------------------------------
class _TensorView:
    """``rules.base.GymView`` of every world, from MuJoCo Warp's arrays (``gym``: copies of what the
    env reads after its step; ``xpos_now``: positions after the refresh)."""

    # set from ``gym``: the quantities the rules read (``EnvRules.reads``), the others are absent
    xpos: torch.Tensor
    xipos: torch.Tensor
    cinert: torch.Tensor
    cvel: torch.Tensor
    site_xpos: torch.Tensor
    qfrc_actuator: torch.Tensor
    qfrc_constraint: torch.Tensor

    def __init__(self, n: int, qpos: torch.Tensor, qvel: torch.Tensor, gym: dict[str, torch.Tensor],
                 xpos_now: torch.Tensor, cfrc_ext: torch.Tensor, *, qpos_before: torch.Tensor | None = None,
                 action: torch.Tensor | None = None, ctrl: torch.Tensor | None = None, after_reset: bool = False):
        self.n, self.qpos, self.qvel, self.qpos_before = n, qpos, qvel, qpos_before
        self.action, self.ctrl, self.after_reset = action, ctrl, after_reset
        self.xpos_now, self.cfrc_ext = xpos_now, cfrc_ext
        for name, value in gym.items():
            setattr(self, name, value)


class _DeviceDraw:
    """``rules.base.Draw`` for every world at once from one torch generator on the device."""

    def __init__(self, n: int, gen: torch.Generator, device: torch.device):
        self.n, self.gen, self.device = n, gen, device

    def uniform(self, low: float, high: float, size: int) -> torch.Tensor:
        return low + (high - low) * torch.rand((self.n, size), generator=self.gen, device=self.device)

    def normal(self, size: int) -> torch.Tensor:
        return torch.randn((self.n, size), generator=self.gen, device=self.device)

    def rows(self, vector: torch.Tensor) -> torch.Tensor:
        return vector[None, :].repeat(self.n, 1)

    def until(self, sample, accept) -> torch.Tensor:
        x = sample()
        for _ in range(REJECTION_ROUNDS):
            x = torch.where(accept(x)[:, None], x, sample())
        return x


class WarpSim(EnvMirror):
    """N worlds of ``task`` on MuJoCo Warp; ``BatchSim``'s API, gymnasium semantics per world, auto-reset.

    :param task: the task (gymnasium v5 env or MJCF file).
    :param num_worlds: N.
    :param seed: seeds the reset-noise generator (one torch generator on the device).
    :param device: Warp device, ``"cuda"``, ``"cuda:1"`` or ``"cpu"`` (CPU: slow, for tests).
    :param output: ``"numpy"`` (BatchSim-compatible StepResult arrays, one device-to-host copy of
        obs/reward/flags per step) or ``"torch"`` (tensors on the device, no host round trip).
    :param graph: capture the step in CUDA graphs (default: on CUDA devices).
    :param nconmax, njmax: contact / constraint capacity per world (MuJoCo Warp's defaults if None).
    """

    def __init__(self, task: Task, num_worlds: int, seed: int = 0, device: str = "cuda", output: str = "numpy",
                 graph: bool | None = None, nconmax: int | None = None, njmax: int | None = None,
                 nthread: int | None = None, world_seeds: list[int] | None = None):
        del nthread, world_seeds  # accepted for BatchSim signature compatibility; not used on Warp
        if output not in ("numpy", "torch"):
            raise ValueError("output must be 'numpy' or 'torch'")
        wp, mjw = load_warp()
        self._wp, self._mjw = wp, mjw
        self.wp_device = _resolve_device(wp, device)
        self.device = torch.device("cuda", self.wp_device.ordinal) if self.wp_device.is_cuda else torch.device("cpu")
        self.output = output
        self.task = task
        self.n = int(num_worlds)
        if self.n <= 0:
            raise ValueError("num_worlds must be positive")

        init_from_env(self, task)  # ValueError for an env no rules reproduce
        u = self.u
        m = self.model
        self._rk4 = m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4

        # the env's model as loaded from its file, with the env's options (BatchSim does the same)
        spec = mujoco.MjSpec.from_file(u.fullpath)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mjm = spec.compile()
        assert mjm.nq == m.nq and mjm.nv == m.nv and mjm.nu == m.nu and mjm.nbody == m.nbody
        BatchSim._copy_options(m, mjm)
        self._mjm = mjm

        with wp.ScopedDevice(self.wp_device):
            try:
                self._m = mjw.put_model(mjm)
            except NotImplementedError as exc:  # e.g. the humanoids' PGS solver
                self._env.close()
                raise WarpUnavailable(f"MuJoCo Warp cannot run the model of {task.id}: {exc} (use --sim cpu)") from None
            self._d = mjw.make_data(mjm, nworld=self.n, nconmax=nconmax, njmax=njmax)
        self._stream = None
        if self.wp_device.is_cuda:  # warp and torch on one stream: ordered, no synchronisation
            self._stream = wp.stream_from_torch(torch.cuda.current_stream(self.device))
        self._use_graph = bool(self.wp_device.is_cuda if graph is None else graph) and self.wp_device.is_cuda
        self._graphs: dict[str, Any] = {}
        self._need_cfrc = True  # contact_force in the State reads cfrc_ext

        # zero-copy views of MuJoCo Warp's arrays (the simulator's own memory)
        d, tt = self._d, wp.to_torch
        self._v = {name: tt(getattr(d, name)) for name in (
            "qpos", "qvel", "ctrl", "xpos", "xquat", "xmat", "cvel", "subtree_com", "subtree_linvel",
            "cfrc_ext", "time")}
        self._v["site_xpos"] = tt(d.site_xpos) if m.nsite else None
        for name in ("xipos", "cinert", "qfrc_actuator", "qfrc_constraint"):
            self._v[name] = tt(getattr(d, name))
        # what gym reads after its step, copied before the refresh moves it to the new state
        self._gym_reads = sorted(self.rules.reads & {"xpos", "xipos", "cinert", "cvel", "site_xpos", "qfrc_actuator",
                                                     "qfrc_constraint"})
        # a reset's view needs actuator or constraint forces: a full forward pass instead of the refresh
        self._reset_forward = bool(self.rules.reads & {"qfrc_actuator", "qfrc_constraint"})
        self._reset_mask = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        self._reset_mask_wp = wp.from_torch(self._reset_mask, dtype=wp.bool)

        dev, f32 = self.device, torch.float32
        self._init_qpos = torch.as_tensor(np.asarray(u.init_qpos), dtype=f32, device=dev)
        self._init_qvel = torch.as_tensor(np.asarray(u.init_qvel), dtype=f32, device=dev)
        act = box(u.action_space)
        low, high = act.low, act.high
        self._act_low = torch.as_tensor(low, dtype=f32, device=dev)
        self._act_high = torch.as_tensor(high, dtype=f32, device=dev)
        self._gen = torch.Generator(device=dev).manual_seed(int(seed))

        sc = self.schema
        idx = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64), device=dev)  # noqa: E731 - a one-line local helper
        self._bodies = idx(sc.body_ids)
        self._body_roots = idx(m.body_rootid[np.asarray(sc.body_ids, dtype=np.int64)])
        self._sites = idx(sc.site_ids)
        self._qadr = idx(sc.joint_qpos_adr)
        self._dadr = idx(sc.joint_dof_adr)
        self._root = int(sc.robot_root)

        self.episode_step = torch.zeros(self.n, dtype=torch.int64, device=dev)
        self._last_action = torch.zeros((self.n, self.act_dim), dtype=f32, device=dev)
        self._last_ctrl = torch.zeros((self.n, self.nu), dtype=f32, device=dev)
        self._xy_before = torch.zeros((self.n, 2), dtype=f32, device=dev)
        self._state_tensors: dict[str, torch.Tensor] | None = None
        self.obs: Any = None

    # ------------------------------------------------------------------------------------------
    # Warp work, captured in CUDA graphs where possible
    def _physics(self) -> None:
        """One env step: frame_skip substeps, then what gym reads (cfrc_ext; for RK4 the new state)."""
        mjw, m, d = self._mjw, self._m, self._d
        for _ in range(self.frame_skip):
            mjw.step(m, d)
        if self._rk4:  # BatchSim's probe with constraints on: positions and contacts of the new state
            mjw.forward(m, d)
        if self._need_cfrc:
            mjw.rne_postconstraint(m, d)

    def _refresh(self) -> None:
        """``rewardgen.contract.state.refresh_derived``: kinematics, com, cvel, subtree velocities of the new state."""
        mjw, m, d = self._mjw, self._m, self._d
        mjw.kinematics(m, d)
        mjw.com_pos(m, d)
        mjw.com_vel(m, d)
        mjw.subtree_vel(m, d)

    def _forward(self) -> None:
        self._mjw.forward(self._m, self._d)

    def _reset_data(self) -> None:
        self._mjw.reset_data(self._m, self._d, reset=self._reset_mask_wp)

    def _run(self, name: str, fn) -> None:
        wp = self._wp
        with wp.ScopedDevice(self.wp_device):
            if self._stream is not None:
                with wp.ScopedStream(self._stream):
                    self._run_on_stream(name, fn)
            else:
                fn()

    def _run_on_stream(self, name: str, fn) -> None:
        wp = self._wp
        if not self._use_graph:
            fn()
            return
        graph = self._graphs.get(name)
        if graph is None:
            fn()  # load every module outside the capture (and do this call's work)
            try:
                with wp.ScopedCapture(stream=self._stream) as cap:
                    fn()
            except Exception as exc:  # fall back to plain launches, keep going
                warnings.warn(f"WarpSim: CUDA graph capture of {name!r} failed ({exc}); running without graphs",
                              RuntimeWarning, stacklevel=2)
                self._use_graph = False
                self._graphs.clear()
                return
            self._graphs[name] = cap.graph
            # the captured work must not run twice for this call: the graph is only built here.
            # fn() ran once before capture; the capture itself does not execute on CUDA.
            return
        wp.capture_launch(graph, stream=self._stream)

    # ------------------------------------------------------------------------------------------
    def _out(self, x: torch.Tensor) -> Any:
        return x.detach().cpu().numpy() if self.output == "numpy" else x

    def _apply_reset(self, done: torch.Tensor) -> torch.Tensor:
        """Reset worlds where ``done``; return fresh observations for every world (valid where done)."""
        v = self._v
        self._reset_mask.copy_(done)
        self._run("reset", self._reset_data)
        draw = _DeviceDraw(self.n, self._gen, self.device)
        qpos, qvel = self.rules.reset(xt, draw, self._init_qpos, self._init_qvel)
        mask = done[:, None]
        v["qpos"].copy_(torch.where(mask, qpos, v["qpos"]))
        v["qvel"].copy_(torch.where(mask, qvel, v["qvel"]))
        self.episode_step.masked_fill_(done, 0)
        # derived quantities after set_state (gym's mj_forward)
        if self._reset_forward:
            self._run("reset_forward", self._forward)
        else:
            self._run("refresh", self._refresh)
        view = _TensorView(self.n, v["qpos"], v["qvel"], {q: v[q] for q in self._gym_reads}, v["xpos"],
                           torch.zeros_like(v["cfrc_ext"]), after_reset=True)
        obs = self.rules.observation(xt, view)
        progress = self.rules.progress(xt, view)
        if progress is not None:  # "before" of the first step is what the env reads after set_state
            self._xy_before.copy_(torch.where(mask, progress.to(self._xy_before.dtype), self._xy_before))
        return obs

    def reset(self) -> Any:
        """Reset every world; return observations (N, obs_dim)."""
        done = torch.ones(self.n, dtype=torch.bool, device=self.device)
        self._obs_t = self._apply_reset(done)
        self._state_tensors = None
        self.obs = self._out(self._obs_t)
        return self.obs

    @property
    def qpos(self) -> Any:
        return self._out(self._v["qpos"].clone())

    @property
    def qvel(self) -> Any:
        return self._out(self._v["qvel"].clone())

    def set_world_state(self, i: int, qpos, qvel) -> None:
        """Overwrite world i's qpos/qvel (tests)."""
        self._v["qpos"][i] = torch.as_tensor(np.asarray(qpos), dtype=torch.float32, device=self.device)
        self._v["qvel"][i] = torch.as_tensor(np.asarray(qvel), dtype=torch.float32, device=self.device)

    def step(self, action) -> StepResult:
        """Advance every world by one env step with ``action`` (N, act_dim) in [-1, 1] (numpy or a
        tensor); auto-reset. StepResult holds numpy arrays or device tensors (``output``)."""
        v = self._v
        a = torch.as_tensor(action, dtype=torch.float32, device=self.device).reshape(self.n, self.act_dim)
        ctrl = (self._act_low + (self._act_high - self._act_low) * (a + 1.0) * 0.5) if self._rescale is not None else a
        self._last_action.copy_(a)
        self._last_ctrl.copy_(ctrl)
        v["ctrl"].copy_(ctrl)
        qpos_before = v["qpos"].clone()
        self._run("physics", self._physics)
        # what gym reads after mj_step, before the refresh moves the derived data to the new state
        gym = {q: v[q].clone() for q in self._gym_reads}
        cfrc = v["cfrc_ext"].clone()
        self._run("refresh", self._refresh)
        qpos, qvel = v["qpos"].clone(), v["qvel"].clone()
        view = _TensorView(self.n, qpos, qvel, gym, v["xpos"], cfrc, qpos_before=qpos_before, action=ctrl, ctrl=ctrl)
        obs, terminated, reward, progress = self.rules.after_step(xt, view, self._xy_before)
        if progress is not None:
            self._xy_before.copy_(progress)
        self.episode_step += 1
        truncated = (self.episode_step >= self.episode_length) & ~terminated
        self._build_state(qpos, qvel, cfrc)
        done = terminated | truncated
        if self.device.type == "cuda" or bool(done.any()):  # branchless on CUDA: no host sync
            next_obs = torch.where(done[:, None], self._apply_reset(done), obs)
        else:
            next_obs = obs
        self._obs_t = next_obs
        self.obs = self._out(next_obs)
        return StepResult(self.obs, self._out(reward), self._out(terminated), self._out(truncated), self._out(obs))

    # ------------------------------------------------------------------------------------------
    # the reward's State
    def _build_state(self, qpos: torch.Tensor, qvel: torch.Tensor, cfrc: torch.Tensor) -> None:
        v, b = self._v, self._bodies
        xpos = v["xpos"][:, b]
        cvel = v["cvel"][:, b]
        ang, lin = cvel[..., :3], cvel[..., 3:]
        offset = xpos - v["subtree_com"][:, self._body_roots]
        n = self.n
        site = (v["site_xpos"][:, self._sites] if len(self._sites)
                else torch.zeros((n, 0, 3), device=self.device))
        self._state_tensors = {
            "qpos": qpos, "qvel": qvel, "action": self._last_action.clone(), "ctrl": self._last_ctrl.clone(),
            "step": self.episode_step.float(),
            "body_pos": xpos, "body_quat": v["xquat"][:, b], "body_up": v["xmat"][:, b, :, 2],
            "body_linvel": lin + torch.cross(ang, offset, dim=-1), "body_angvel": ang.clone(),
            "joint_pos": qpos[:, self._qadr], "joint_vel": qvel[:, self._dadr],
            "site_pos": site,
            "com_pos": v["subtree_com"][:, self._root].clone(), "com_vel": v["subtree_linvel"][:, self._root].clone(),
            "contact_force": cfrc[:, b, 3:].norm(dim=-1),
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The last step's State fields as float32 tensors on the sim's device (before auto-reset)."""
        if self._state_tensors is None:
            raise RuntimeError("step() first: the State describes the worlds after a step")
        return self._state_tensors

    def state_arrays(self) -> dict[str, np.ndarray]:
        """``BatchSim.state_arrays``: the last step's State fields as float32 numpy arrays."""
        return {k: t.detach().cpu().numpy() for k, t in self.state_tensors().items()}

    def state(self, device: str | torch.device | None = None) -> State:
        """The reward's State for the last step; fresh tensors (writing into them changes nothing)."""
        a, sc = self.state_tensors(), self.schema
        dev = self.device if device is None else torch.device(device)

        return State.from_arrays(sc, a, lambda x: x.to(dev, copy=True))

    def synchronize(self) -> None:
        """Wait for the device to finish (timing)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        else:
            self._wp.synchronize_device(self.wp_device)

    def close(self) -> None:
        self._graphs.clear()
        self._env.close()


def prewarm(task: Task, device: str = "cuda") -> None:
    """Load warp and compile/load every kernel a WarpSim of ``task`` launches, in this process.

    The sandboxed worker calls this before it installs seccomp and the audit hook (which refuse the
    ``ctypes`` loads and cache writes this needs); a WarpSim built afterwards, of any size, only
    launches modules that are already loaded (and captures its CUDA graphs, which opens no files).
    """
    sim = WarpSim(task, 2, device=device, output="torch", graph=False)
    sim.reset()
    for _ in range(2):
        sim.step(torch.zeros((2, sim.act_dim), device=sim.device))
    sim.state()
    sim.synchronize()
    sim.close()
