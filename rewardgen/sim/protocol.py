"""What a trainer may call on a batched simulator: the protocols ``BatchSim`` and ``WarpSim`` meet.

``BatchSimulator`` is what every backend offers. ``ResumableSimulator`` adds the snapshot a resumed
training continues its worlds from, and ``TimedSimulator`` the clocks a trainer reports; a trainer
asks for either with ``isinstance`` and goes without where a backend lacks it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch-heavy, and only types here
    import numpy as np
    import torch

    from rewardgen.contract.state import State
    from rewardgen.sim import StepResult


@runtime_checkable
class BatchSimulator(Protocol):
    """N worlds of one task stepped together.

    ``step(action)`` takes (N, act_dim) actions in [-1, 1], advances every world one env step and
    resets the worlds that finished; observations come back as numpy arrays (``BatchSim``) or tensors
    on the simulator's device (``WarpSim``).
    """

    n: int
    """worlds simulated together"""
    obs_dim: int
    """length of one world's observation"""
    act_dim: int
    """length of one world's action"""

    def reset(self) -> Any:
        """Reset every world; their observations, shape (N, obs_dim)."""
        ...

    def step(self, action: Any) -> StepResult:
        """One env step of every world (auto-reset included)."""
        ...

    def state(self, device: str | torch.device = "cpu") -> State:
        """The State a reward sees of every world now (a copy: later steps do not change it)."""
        ...

    def close(self) -> None:
        """Release native threads and buffers."""
        ...


@runtime_checkable
class ResumableSimulator(BatchSimulator, Protocol):
    """A simulator whose worlds can be saved mid-episode and continued later (``BatchSim``)."""

    def snapshot(self) -> tuple[dict, dict[str, np.ndarray]]:
        """Every world's physics state and reset generator: a JSON-able header and arrays."""
        ...

    def restore(self, header: dict, arrays: dict[str, np.ndarray]) -> Any:
        """Continue the worlds of a ``snapshot``; their observations. ValueError for a snapshot of
        other worlds (nothing is changed then)."""
        ...


@runtime_checkable
class TimedSimulator(BatchSimulator, Protocol):
    """A simulator that clocks its own work (``BatchSim``: physics and rules, in seconds)."""

    timing: dict[str, float]
