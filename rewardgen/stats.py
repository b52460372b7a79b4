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


def gap_in_standard_errors(a: Sequence[float], b: Sequence[float]) -> float | None:
    """How far mean(a) is above mean(b) in standard errors of that difference (Welch's t statistic,
    each side's sample variance over its count): the seeds' own noise as the unit, so a gap between two
    rewards' training outcomes can be read as luck or not. None with fewer than 2 values a side;
    +-inf where neither side varies and the means differ; 0 where they are equal."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    mx, my = float(x.mean()), float(y.mean())
    se = math.sqrt(float(x.var(ddof=1)) / len(x) + float(y.var(ddof=1)) / len(y))
    if se <= 1e-12 * (1 + abs(mx) + abs(my)):
        return 0.0 if abs(mx - my) <= 1e-12 * (1 + abs(mx)) else math.copysign(math.inf, mx - my)
    return (mx - my) / se


__all__ = ["finite", "gap_in_standard_errors", "pearson"]
