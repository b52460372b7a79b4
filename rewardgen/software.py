"""Which install a result was computed with: Python and the packages that decide what a seed trains.

Training is deterministic per seed within one install, but not across installs: the same commit and
seed trained other policies after the machine's packages were installed again (docs/benchmarks.md,
"The suite"). So every final training records the versions it ran under, and a table that puts rows
together says whether they share one install.

A record read back from a run directory is untrusted (runs are shared): ``read_software`` keeps only
the known names with plain version strings.
"""

from __future__ import annotations

import platform
import re
from importlib import metadata
from typing import Any

#: the distributions whose versions change what a seed trains (and rewardgen itself), in display order
PACKAGES = ("rewardgen", "torch", "mujoco", "numpy", "gymnasium")
#: a version as packaging writes them ("2.13.0+cpu", "4.0.0", "1.4.0.dev3"); anything else is not one
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}")


def software() -> dict[str, str]:
    """This process's Python and package versions (``"not installed"`` for a package that is not)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def read_software(raw: Any) -> dict[str, str] | None:
    """A recorded ``software()`` as it may safely be shown: the known names whose values are plain
    version strings; None where ``raw`` holds none (an older record, or not a mapping)."""
    if not isinstance(raw, dict):
        return None
    out = {name: raw[name] for name in ("python", *PACKAGES)
           if isinstance(raw.get(name), str) and (raw[name] == "not installed" or _VERSION.fullmatch(raw[name]))}
    return out or None


def software_text(versions: dict[str, str]) -> str:
    """One line for a table or a log: "Python 3.11.7, rewardgen 0.1.0, torch 2.13.0+cpu, ..."."""
    names = {"python": "Python"}
    return ", ".join(f"{names.get(k, k)} {v}" for k, v in versions.items())
