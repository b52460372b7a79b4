"""Statistics shared by the trainers' per-episode books and the reward debugger (plain numpy), and the
test every reader of untrusted JSON numbers uses (``finite``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np


def finite(x: Any) -> TypeGuard[float]:
    """A real number (not bool, NaN or infinite): what a figure read from a run's files may be used as."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def pearson(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float | None:
    """Pearson correlation of the pairs where both values are finite; None when it is undefined:
    fewer than 3 such pairs, or a side with no variance (std below 1e-12 of its mean magnitude)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return None
    x, y = x[ok], y[ok]
    if x.std() < 1e-12 * (1 + np.abs(x).mean()) or y.std() < 1e-12 * (1 + np.abs(y).mean()):
        return None
    return float(np.corrcoef(x, y)[0, 1])


__all__ = ["pearson"]
