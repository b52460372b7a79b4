"""Loading a candidate reward and enforcing the reward contract on what it returns.

This module runs only inside a worker process (see ``rewardgen.sandbox``): the orchestrator never
imports or executes candidate code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rewardgen.contract.state import State

RewardFn = Callable[[State], Any]


class ContractError(ValueError):
    """The reward broke the contract (shape, type, finiteness); the message says how."""


def load_reward(source: str, filename: str = "reward.py") -> RewardFn:
    """Execute the reward source in a fresh module namespace and return its ``compute_reward``."""
    code = compile(source, filename, "exec")
    namespace: dict[str, Any] = {"__name__": "candidate_reward", "__file__": filename}
    exec(code, namespace)  # the worker is the sandbox
    fn = namespace.get("compute_reward")
    if not callable(fn):
        raise ContractError("the reward file defines no function compute_reward(s)")
    return fn


def check_output(result: Any, n: int, finite: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Validate ``(total, components)`` for a batch of ``n`` worlds; return float32 tensors.

    ``finite=False`` leaves the NaN/inf check to the caller (``nonfinite_error`` on counts it kept
    on the device), so training on a GPU need not read every step's values back to the host.
    """
    if not isinstance(result, tuple) or len(result) != 2:
        raise ContractError(f"compute_reward must return (total, components), got {type(result).__name__}")
    total, components = result
    if not isinstance(components, dict):
        raise ContractError(f"the second value must be a dict of components, got {type(components).__name__}")
    total = _as_batch("total", total, n, finite)
    checked: dict[str, torch.Tensor] = {}
    for name, value in components.items():
        if not isinstance(name, str) or not name:
            raise ContractError(f"component names must be non-empty strings, got {name!r}")
        checked[name] = _as_batch(f"component {name!r}", value, n, finite)
    return total, checked


def nonfinite_error(labels: list[str], bad_counts: list[int], n: int) -> ContractError | None:
    """The error ``check_output`` raises for the first of ``labels`` with non-finite values, if any."""
    for label, bad in zip(labels, bad_counts):
        if bad:
            return ContractError(f"{label} has {int(bad)} non-finite value(s) (NaN or inf) out of {n}")
    return None


def _as_batch(label: str, value: Any, n: int, finite: bool = True) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ContractError(f"{label} must be a torch.Tensor of shape ({n},), got {type(value).__name__}")
    if tuple(value.shape) != (n,):
        raise ContractError(f"{label} has shape {tuple(value.shape)}, expected ({n},)")
    value = value.detach().to(torch.float32)
    if finite and (err := nonfinite_error([label], [int((~torch.isfinite(value)).sum())], n)):
        raise err
    return value

