"""What one gymnasium env's rules are made of, for every batched simulator.

An env's rules (``EnvRules``: observation, termination, the env's own reward, reset) are written once
over an array namespace ``xp`` (array-api-compat's numpy or torch) and read what the env reads from
MuJoCo after its step through a ``GymView``. ``BatchSim`` (numpy, float64) and ``WarpSim`` (torch,
float32 on a device) each provide the view and a ``Draw`` of reset noise; neither knows any env.

Termination is declared as data (``Bound``, one per quantity that must stay in range): the same
objects decide when an episode ends and tell the prompt why (``Termination.describe``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import mujoco

#: an array of the simulator's namespace (numpy.ndarray or torch.Tensor), leading dimension N worlds
Array = Any

#: what a view can provide beyond ``qpos``, ``qvel``, ``qpos_before``, ``action`` and ``ctrl`` (``EnvRules.reads``)
VIEW_QUANTITIES = frozenset({"xpos", "xipos", "cinert", "cvel", "cfrc_ext", "site_xpos", "qfrc_actuator",
                             "qfrc_constraint", "xpos_now"})


class GymView(Protocol):
    """A batch of worlds as a gymnasium MuJoCo env sees ``MjData`` right after its step (or its reset).

    gymnasium calls ``mj_step`` ``frame_skip`` times, then ``mj_rnePostConstraint``, and reads
    ``data``: ``qpos``/``qvel`` are the new state, but every derived quantity (``xpos``, ``xipos``,
    ``cinert``, ``cvel``, ``site_xpos``, ``qfrc_actuator``, ``qfrc_constraint``, ``cfrc_ext``) is what
    the last substep's forward pass left, before its integration: stale by one substep with single-stage
    integrators, and at RK4's last stage with RK4 (which no simulator here sees: they give the new
    state's values instead, so for RK4 models these quantities are close, not equal). After a reset,
    derived quantities are the new state's (``set_state`` calls ``mj_forward``) and ``cfrc_ext`` is
    zero (``mj_forward`` does not compute it).

    Shapes: (N, nbody, 3) for ``xpos``/``xipos``/``xpos_now``, (N, nbody, 10) ``cinert``, (N, nbody, 6)
    ``cvel``/``cfrc_ext`` (row 0, the world, included), (N, nsite, 3) ``site_xpos``, (N, nv)
    ``qfrc_actuator``/``qfrc_constraint``. ``action`` is the action the unwrapped env's ``step`` got
    (after any RescaleAction), ``ctrl`` the same as ``data.ctrl`` holds it (float64 on the CPU).
    ``xpos_now`` is body positions recomputed at the new state (``mj_kinematics`` after the step);
    ``qpos_before`` the positions the step started from (not after a reset). Only the quantities an
    ``EnvRules`` names in ``reads`` are available.
    """

    n: int
    after_reset: bool
    qpos: Array
    qvel: Array
    qpos_before: Array
    action: Array
    ctrl: Array

    # derived quantities: read-only (a view may compute them on first use)
    @property
    def xpos(self) -> Array: ...

    @property
    def xipos(self) -> Array: ...

    @property
    def cinert(self) -> Array: ...

    @property
    def cvel(self) -> Array: ...

    @property
    def cfrc_ext(self) -> Array: ...

    @property
    def site_xpos(self) -> Array: ...

    @property
    def qfrc_actuator(self) -> Array: ...

    @property
    def qfrc_constraint(self) -> Array: ...

    @property
    def xpos_now(self) -> Array: ...


class Draw(Protocol):
    """Reset noise for a batch of ``n`` worlds, in the simulator's namespace.

    BatchSim draws one world at a time (``n == 1``) from that world's numpy generator, consuming it
    exactly as gymnasium's ``np_random`` is consumed (``uniform(low, high, size)``,
    ``standard_normal(size)``), so a world and ``env.reset(seed=...)`` start alike. WarpSim draws every
    world at once from one torch generator (same distributions, different numbers).
    """

    n: int

    def uniform(self, low: float, high: float, size: int) -> Array:
        """(n, size) uniform on [low, high)."""

    def normal(self, size: int) -> Array:
        """(n, size) standard normal."""

    def rows(self, vector: Array) -> Array:
        """A fresh, writable (n, len(vector)) array of copies of ``vector``."""

    def until(self, sample: Callable[[], Array], accept: Callable[[Array], Array]) -> Array:
        """Rejection sampling: ``sample()`` (n, k) again for every world whose draw ``accept`` (n,) refuses."""


# ------------------------------------------------------------------------------------------------
# termination as data
def _num(v: float) -> str:
    return f"{v:g}"


@dataclass(frozen=True)
class Bound:
    """One quantity an episode must keep within ``low``..``high`` to go on (None: no bound on that
    side). ``inclusive``: whether a value equal to a bound is still inside. ``quantity`` names it in
    the reward contract's fields, so a reward can read exactly what the rule reads."""

    quantity: str
    meaning: str
    low: float | None
    high: float | None
    inclusive: bool
    unit: str = ""

    def holds(self, x: Array) -> Array:
        """Where ``x`` is inside (elementwise; NaN is never inside)."""
        lo = -math.inf if self.low is None else self.low
        hi = math.inf if self.high is None else self.high
        if self.inclusive:
            return (lo <= x) & (x <= hi)
        return (lo < x) & (x < hi)

    def broken_text(self, value: float, several: bool = False) -> str:
        """Why this bound ended an episode, in words: 'the torso's height 0.69 m, not above 0.7 m'."""
        u = f" {self.unit}" if self.unit else ""
        what = f"{self.meaning}: one reached" if several else self.meaning
        inside = self.inside().replace(" (exclusive)", "").replace(" (inclusive)", "")
        bounds = {_num(b) for b in (self.low, self.high) if b is not None}
        shown = f"{value:.3g}"
        for digits in (4, 5, 6, 8):  # enough digits that a value just past a bound does not read as the bound
            if shown not in bounds:
                break
            shown = f"{value:.{digits}g}"
        return f"{what} {shown}{u}, not {inside}"

    def inside(self) -> str:
        """The healthy range in words: 'above 0.7 m', 'between -0.2 and 0.2 rad'."""
        lt, gt = ("at most", "at least") if self.inclusive else ("below", "above")
        u = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            how = "inclusive" if self.inclusive else "exclusive"
            return f"between {_num(self.low)} and {_num(self.high)}{u} ({how})"
        if self.low is not None:
            return f"{gt} {_num(self.low)}{u}"
        assert self.high is not None, "a Bound has a low or a high side"
        return f"{lt} {_num(self.high)}{u}"


@dataclass(frozen=True)
class Termination:
    """Every rule that ends an episode of a task before its time limit.

    ``bounds``: quantities that must stay inside their ranges; ``nonfinite``: a NaN or infinite
    state ends the episode too; ``time_limit``: env steps before the episode is truncated (not a
    failure). No bounds and no ``nonfinite``: episodes always run to the time limit.
    """

    bounds: tuple[Bound, ...]
    nonfinite: bool
    time_limit: int

    @property
    def ends_early(self) -> bool:
        return bool(self.bounds) or self.nonfinite

    def describe(self) -> list[str]:
        """Plain sentences, one per rule, for a prompt or a report."""
        lines = [f"An episode lasts at most {self.time_limit} env steps (then it is truncated, not failed)."]
        if not self.ends_early:
            lines.append("Nothing ends an episode early: every episode runs to the time limit.")
            return lines
        for b in self.bounds:
            lines.append(f"The episode ends at once unless {b.meaning} ({b.quantity}) stays {b.inside()}.")
        if self.nonfinite:
            lines.append("The episode also ends if any position or velocity becomes NaN or infinite.")
        return lines


def range_of(pair: Any) -> tuple[float | None, float | None]:
    """A gymnasium ``(low, high)`` range as Bound's sides (gymnasium writes 'no bound' as +-inf)."""
    lo, hi = pair
    return (None if lo is None or math.isinf(lo) else float(lo),
            None if hi is None or math.isinf(hi) else float(hi))


def qpos_quantity(model: mujoco.MjModel, i: int) -> str:
    """``qpos[:, i]`` in the State's words: the named slide/hinge joint there, else the raw column."""
    for j in range(model.njnt):
        if int(model.jnt_qposadr[j]) == i and int(model.jnt_type[j]) in (
                int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE)):
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
            if name:
                return f's.joint_pos["{name}"]'
    return f"s.qpos[:, {i}]"


def body_id(model: mujoco.MjModel, name: str | int) -> int:
    return name if isinstance(name, int) else mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)


# ------------------------------------------------------------------------------------------------
class EnvRules:
    """The rules of one gymnasium env class, built from one instance of it (its constants: weights,
    ranges, noise scales, observation switches are read from the env's attributes once).

    A subclass names the env class (``env_class``), the view quantities it reads (``reads``), its
    health bounds (``health``, ``nonfinite``; ``terminates``: whether leaving them ends the episode),
    and implements ``observation``, ``reward`` and, where the env's reward differences a derived
    position over the step (not ``qpos``, which the view has from before the step), ``progress``;
    ``reset`` defaults to gymnasium's uniform noise on qpos and qvel.
    Every method works on a batch and on any array namespace ``xp``.
    """

    #: the gymnasium (or rewardgen) env class these rules reproduce, e.g. "HopperEnv"
    env_class: ClassVar[str] = ""
    #: the GymView quantities the rules read beyond qpos/qvel/qpos_before/action/ctrl (``VIEW_QUANTITIES``)
    reads: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, env: Any):
        self.model = env.model
        #: health bounds (checked every step; the env's reward may pay for health even when it does not terminate)
        self.health: tuple[Bound, ...] = ()
        #: whether a NaN/inf qpos or qvel counts as unhealthy
        self.nonfinite = False
        #: whether leaving health ends the episode
        self.terminates = False
        #: reset noise scale of ``reset``'s default (gymnasium's ``reset_noise_scale``)
        self.noise = float(getattr(env, "_reset_noise_scale", 0.0))

    # --- termination ------------------------------------------------------------------------
    def bounded(self, xp: Any, v: GymView) -> tuple[Array, ...]:
        """The value of each ``health`` bound's quantity, (N,) or (N, k), in the same order."""
        return ()

    def healthy(self, xp: Any, v: GymView) -> Array:
        """(N,) bool: every health bound holds (and, with ``nonfinite``, the state is finite)."""
        ok = None
        for bound, x in zip(self.health, self.bounded(xp, v), strict=True):
            inside = bound.holds(x)
            if inside.ndim > 1:
                inside = xp.all(inside, axis=1)
            ok = inside if ok is None else ok & inside
        if self.nonfinite:
            finite = xp.all(xp.isfinite(v.qpos), axis=1) & xp.all(xp.isfinite(v.qvel), axis=1)
            ok = finite if ok is None else finite & ok
        if ok is None:
            ok = xp.ones(v.n, dtype=xp.bool, device=_device(v.qpos))
        return ok

    def broken(self, xp: Any, v: GymView) -> list[tuple[Bound, float, bool]]:
        """For world 0 of ``v``: each health bound that does not hold, with the value that broke it (for
        a bound over several quantities, the one farthest outside) and whether the bound covers several
        quantities, so a report can say which rule ended an episode. A non-finite state is not a bound:
        see ``nonfinite``."""
        out = []
        for bound, x in zip(self.health, self.bounded(xp, v), strict=True):
            inside = bound.holds(x)
            values = [float(a) for a in (x[0].reshape(-1) if x.ndim > 1 else x[:1])]
            ok = [bool(a) for a in (inside[0].reshape(-1) if inside.ndim > 1 else inside[:1])]
            bad = [a for a, fine in zip(values, ok) if not fine]
            if bad:
                lo = -math.inf if bound.low is None else bound.low
                hi = math.inf if bound.high is None else bound.high
                worst = max(bad, key=lambda a: max(lo - a, a - hi) if math.isfinite(a) else math.inf)
                out.append((bound, worst, len(values) > 1))
        return out

    def terminated(self, xp: Any, v: GymView) -> Array:
        """(N,) bool: the episode ends here (gymnasium's ``terminated``)."""
        if not self.terminates:
            return xp.zeros(v.n, dtype=xp.bool, device=_device(v.qpos))
        return ~self.healthy(xp, v)

    def termination(self, time_limit: int) -> Termination:
        """The termination rules as data, for the prompt and the report (``termination_of``)."""
        if not self.terminates:
            return Termination((), False, int(time_limit))
        return Termination(tuple(self.health), self.nonfinite, int(time_limit))

    # --- observation, reward, reset -----------------------------------------------------------
    def observation(self, xp: Any, v: GymView) -> Array:
        """(N, obs_dim): gymnasium's ``_get_obs``."""
        raise NotImplementedError

    def progress(self, xp: Any, v: GymView) -> Array | None:
        """(N, 2) or None: the position whose change over a step the env's reward pays for, as the
        env reads it after a step or reset; the simulator keeps it and hands it to the next step's
        ``reward`` as ``before``."""
        return None

    def reward(self, xp: Any, v: GymView, before: Array | None, terminated: Array) -> Array:
        """(N,): the env's own reward for the step that led to ``v`` (``before``: the previous
        ``progress``)."""
        raise NotImplementedError

    def reward_text(self) -> str | None:
        """The env's own reward per step in words, with this instance's weights, written beside
        ``reward`` so the two cannot drift (None: not described)."""
        return None

    def after_step(self, xp: Any, v: GymView, before: Array | None) -> tuple[Array, Array, Array, Array | None]:
        """(observation, terminated, reward, progress) for the step that led to ``v``, in the order
        gymnasium computes them (the reward may read ``terminated``); one sequence for every simulator."""
        obs = self.observation(xp, v)
        terminated = self.terminated(xp, v)
        return obs, terminated, self.reward(xp, v, before, terminated), self.progress(xp, v)

    def reset(self, xp: Any, draw: Draw, init_qpos: Array, init_qvel: Array) -> tuple[Array, Array]:
        """(qpos, qvel), each (n, nq)/(n, nv): gymnasium's ``reset_model`` draw (default: uniform
        noise of ``noise`` on both)."""
        c = self.noise
        qpos = init_qpos + draw.uniform(-c, c, self.model.nq)
        qvel = init_qvel + draw.uniform(-c, c, self.model.nv)
        return qpos, qvel


def _device(x: Array) -> Any:
    return getattr(x, "device", "cpu")

