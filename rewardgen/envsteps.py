"""Env-step counts as people write and read them: one format everywhere, and the forms a flag accepts.

``fmt`` is the only way rewardgen shows a number of env-steps (or env-steps per second) to a
person, in the terminal, the report and the web UI alike: up to three significant digits with a
k/M/B suffix from a thousand on (``768``, ``2.05k``, ``30.7k``, ``300k``, ``1.5M``), so a budget,
a count and a progress fraction read the same wherever they appear. JSON keeps the exact integers.

``parse`` reads what a person types for a count: ``100000``, ``100_000``, ``100k``, ``1.5M``,
``1e5``, ``2.5e6``; the value must come out a whole number. Anything else raises ``ValueError``
with the reason, which the CLI turns into its one-line error.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

#: suffixes, largest first: the value they multiply by
UNITS = (("B", 1_000_000_000), ("M", 1_000_000), ("k", 1_000))
#: the largest count ``parse`` accepts (a trillion env-steps: decades of CPU time)
LARGEST = 10**12

_FORM = re.compile(r"(?P<num>(?:\d+(?:_\d+)*)?(?:\.\d+(?:_\d+)*)?)(?:[eE](?P<exp>[+-]?\d+))?(?P<unit>[kKmMbB]?)")


def fmt(n: Any) -> str:
    """``n`` env-steps for people: three significant digits, k/M/B from a thousand on; "-" for None.

    >>> [fmt(x) for x in (768, 2048, 12288, 30720, 300000, 1_000_000, 1_536_000)]
    ['768', '2.05k', '12.3k', '30.7k', '300k', '1M', '1.54M']
    """
    if n is None:
        return "-"
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n):
        return str(n)
    sign, v = ("-" if n < 0 else ""), abs(float(n))
    if v < 1000:
        return f"{sign}{round(v):d}"
    for i, (unit, size) in enumerate(UNITS):
        if v >= size or i == len(UNITS) - 1:
            scaled = float(f"{v / size:.3g}")
            if scaled >= 1000 and i > 0:  # 999,950 rounds up to 1000k: say 1M
                unit, scaled = UNITS[i - 1][0], float(f"{v / UNITS[i - 1][1]:.3g}")
            return f"{sign}{scaled:g}{unit}"
    raise AssertionError("unreachable")


def parse(text: str) -> int:
    """A positive whole number of env-steps from ``100000``, ``100_000``, ``100k``, ``1.5M``, ``1e5``.

    :raises ValueError: anything else, with a message for a person.
    """
    raw = str(text).strip()
    m = _FORM.fullmatch(raw)
    if not raw or m is None or not m.group("num").strip("._") or (m.group("exp") and m.group("unit")):
        raise ValueError(f"expected a number of env-steps such as 100000, 100_000, 100k, 1.5M or 1e5, got {text!r}")
    unit = m.group("unit").upper().replace("K", "k")
    try:
        value = Decimal(m.group("num").replace("_", "")) * Decimal(10) ** int(m.group("exp") or 0)
    except (ArithmeticError, ValueError):  # InvalidOperation, Overflow; an exponent too long for int
        raise ValueError(f"expected a number of env-steps such as 100k or 1e5, got {text!r}") from None
    value *= dict(UNITS).get(unit, 1)
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is {value.normalize():f} env-steps: not a whole number")
    if value <= 0:
        raise ValueError(f"expected a positive number of env-steps, got {text!r}")
    if value > LARGEST:
        raise ValueError(f"{text!r} env-steps is more than 1e12; give a smaller budget")
    return int(value)
