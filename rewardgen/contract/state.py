"""The batched State a reward reads, and the buffers that fill it from MuJoCo data.

``State`` is the reward contract's ``s``: every tensor has a leading dimension N (worlds), float32,
on the simulation's device. Rewards get fresh tensors each step, never views of simulator memory,
so writing into them cannot change the simulation. Named fields are read-only mappings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import torch

from rewardgen.contract.schema import Schema


class Named(Mapping[str, torch.Tensor]):
    """Read-only ``name -> tensor[:, i]`` view over one stacked (N, K, ...) tensor."""

    __slots__ = ("_index", "_names", "_stacked")

    def __init__(self, names: tuple[str, ...], stacked: torch.Tensor):
        self._names = names
        self._index = {n: i for i, n in enumerate(names)}
        self._stacked = stacked

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            i = self._index[name]
        except KeyError:
            raise KeyError(f"{name!r} is not in this model; known names: {', '.join(self._names)}") from None
        return self._stacked[:, i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"Named({list(self._names)})"

    @property
    def stacked(self) -> torch.Tensor:
        """All names at once: the (N, K, ...) tensor the views index."""
        return self._stacked


def field_shapes(schema: Schema) -> dict[str, tuple[int, ...]]:
    """Each array field of the State and its shape per world, in a fixed order (the reward jail lays
    its shared memory out by it)."""
    nb, nj, ns = len(schema.bodies), len(schema.joints), len(schema.sites)
    return {"qpos": (schema.nq,), "qvel": (schema.nv,), "action": (schema.nu,), "ctrl": (schema.nu,), "step": (),
            "body_pos": (nb, 3), "body_quat": (nb, 4), "body_linvel": (nb, 3), "body_angvel": (nb, 3),
            "body_up": (nb, 3), "joint_pos": (nj,), "joint_vel": (nj,), "site_pos": (ns, 3), "com_pos": (3,),
            "com_vel": (3,), "contact_force": (nb,)}


@dataclass(frozen=True, eq=False)
class State:
    """A batch of N simulated worlds at one environment step (see README "The reward contract")."""

    qpos: torch.Tensor
    qvel: torch.Tensor
    action: torch.Tensor
    ctrl: torch.Tensor
    dt: float
    step: torch.Tensor
    body_pos: Named
    body_quat: Named
    body_linvel: Named
    body_angvel: Named
    body_up: Named
    joint_pos: Named
    joint_vel: Named
    site_pos: Named
    com_pos: torch.Tensor
    com_vel: torch.Tensor
    contact_force: Named

    @property
    def num_worlds(self) -> int:
        return int(self.qpos.shape[0])

    def arrays(self) -> dict[str, torch.Tensor]:
        """Every array field as one stacked tensor (named fields as (N, K, ...)), keyed as ``field_shapes``."""
        out = {}
        for name in ("qpos", "qvel", "action", "ctrl", "step", "body_pos", "body_quat", "body_linvel", "body_angvel",
                     "body_up", "joint_pos", "joint_vel", "site_pos", "com_pos", "com_vel", "contact_force"):
            value = getattr(self, name)
            out[name] = value.stacked if isinstance(value, Named) else value
        return out

    @classmethod
    def from_arrays(cls, schema: Schema, arrays: Mapping[str, Any], convert: Callable[[Any], torch.Tensor]) -> State:
        """Assemble a State from stacked per-field arrays (``arrays[field]``), each through ``convert``
        (which must copy, so the reward never holds simulator memory)."""
        c, a = convert, arrays
        return cls(
            qpos=c(a["qpos"]), qvel=c(a["qvel"]), action=c(a["action"]), ctrl=c(a["ctrl"]),
            dt=float(schema.dt), step=c(a["step"]),
            body_pos=Named(schema.bodies, c(a["body_pos"])), body_quat=Named(schema.bodies, c(a["body_quat"])),
            body_linvel=Named(schema.bodies, c(a["body_linvel"])),
            body_angvel=Named(schema.bodies, c(a["body_angvel"])), body_up=Named(schema.bodies, c(a["body_up"])),
            joint_pos=Named(schema.joints, c(a["joint_pos"])), joint_vel=Named(schema.joints, c(a["joint_vel"])),
            site_pos=Named(schema.sites, c(a["site_pos"])),
            com_pos=c(a["com_pos"]), com_vel=c(a["com_vel"]),
            contact_force=Named(schema.bodies, c(a["contact_force"])),
        )


def refresh_derived(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """Recompute positions and velocities derived from the current qpos/qvel.

    After ``mj_step`` the derived quantities (xpos, cvel, ...) still describe the state before the
    last integration; this brings them up to date without touching the dynamics.
    """
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)
    mujoco.mj_comVel(model, data)
    mujoco.mj_subtreeVel(model, data)


class StateBuffers:
    """Preallocated float32 arrays for N worlds, filled world by world, turned into one State."""

    def __init__(self, schema: Schema, model: mujoco.MjModel, num_worlds: int):
        self.schema = schema
        self.model = model
        self.n = num_worlds
        nb, nj, ns = len(schema.bodies), len(schema.joints), len(schema.sites)
        f32 = np.float32
        self.qpos = np.zeros((num_worlds, model.nq), f32)
        self.qvel = np.zeros((num_worlds, model.nv), f32)
        self.action = np.zeros((num_worlds, model.nu), f32)
        self.ctrl = np.zeros((num_worlds, model.nu), f32)
        self.step = np.zeros((num_worlds,), f32)
        self.body_pos = np.zeros((num_worlds, nb, 3), f32)
        self.body_quat = np.zeros((num_worlds, nb, 4), f32)
        self.body_linvel = np.zeros((num_worlds, nb, 3), f32)
        self.body_angvel = np.zeros((num_worlds, nb, 3), f32)
        self.body_up = np.zeros((num_worlds, nb, 3), f32)
        self.joint_pos = np.zeros((num_worlds, nj), f32)
        self.joint_vel = np.zeros((num_worlds, nj), f32)
        self.site_pos = np.zeros((num_worlds, ns, 3), f32)
        self.com_pos = np.zeros((num_worlds, 3), f32)
        self.com_vel = np.zeros((num_worlds, 3), f32)
        self.contact_force = np.zeros((num_worlds, nb), f32)
        self._bodies = np.asarray(schema.body_ids, dtype=np.int64)
        self._roots = model.body_rootid[self._bodies]
        self._qadr = np.asarray(schema.joint_qpos_adr, dtype=np.int64)
        self._dadr = np.asarray(schema.joint_dof_adr, dtype=np.int64)
        self._sites = np.asarray(schema.site_ids, dtype=np.int64)

    def fill(self, i: int, data: mujoco.MjData, action: np.ndarray, step: int) -> None:
        """Copy world ``i``'s state from ``data`` (derived quantities must be current)."""
        b = self._bodies
        self.qpos[i] = data.qpos
        self.qvel[i] = data.qvel
        self.action[i] = action
        self.ctrl[i] = data.ctrl
        self.step[i] = step
        xpos = data.xpos[b]
        self.body_pos[i] = xpos
        self.body_quat[i] = data.xquat[b]
        self.body_up[i] = data.xmat[b][:, 2::3]
        cvel = data.cvel[b]
        ang, lin = cvel[:, :3], cvel[:, 3:]
        self.body_angvel[i] = ang
        self.body_linvel[i] = lin + np.cross(ang, xpos - data.subtree_com[self._roots])
        self.joint_pos[i] = data.qpos[self._qadr]
        self.joint_vel[i] = data.qvel[self._dadr]
        if len(self._sites):
            self.site_pos[i] = data.site_xpos[self._sites]
        root = self.schema.robot_root
        self.com_pos[i] = data.subtree_com[root]
        self.com_vel[i] = data.subtree_linvel[root]
        self.contact_force[i] = np.linalg.norm(data.cfrc_ext[b, 3:], axis=1)

    def to_state(self, device: str | torch.device = "cpu") -> State:
        """A State holding copies of the buffers (the reward cannot write back into them)."""
        return State.from_arrays(self.schema, vars(self), lambda a: torch.tensor(a, device=device))
