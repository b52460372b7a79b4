"""Which OpenGL backend MuJoCo renders with: a headless one, chosen by rewardgen, when there is no display.

MuJoCo picks its backend once, when ``mujoco`` is imported, from ``MUJOCO_GL``; unset, it takes
``glfw``, which needs a display (X11 or Wayland) and fails on a headless machine ("set
MUJOCO_GL=egl"). rewardgen only ever renders offscreen (videos, frames), so ``choose()`` (called
when the ``rewardgen`` package is imported, before anything imports mujoco) sets ``MUJOCO_GL`` when
the user did not and there is no display: ``egl`` (Mesa's software EGL on a machine without a GPU),
or ``osmesa`` where only OSMesa is installed. A value the user set is never changed; with a display,
mujoco's own default stays.

``CHOICE`` records what happened, for the places where it matters (``rewardgen --version``, a
video's ``video.json``, the error when rendering cannot work).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from dataclasses import dataclass

HEADLESS = ("egl", "osmesa")


@dataclass(frozen=True)
class Choice:
    """The backend in force (``""``: mujoco's default, glfw) and why."""

    backend: str
    reason: str

    def describe(self) -> str:
        return f"{self.backend or 'glfw'} ({self.reason})"


def has_display(environ: dict | os._Environ = os.environ) -> bool:
    """Whether a windowing system is reachable: an X11 or Wayland display is named."""
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def _headless_backend() -> str:
    """``egl`` unless only OSMesa's library can be found."""
    if ctypes.util.find_library("EGL") is None and ctypes.util.find_library("OSMesa") is not None:
        return "osmesa"
    return "egl"


def choose(environ: dict | os._Environ = os.environ) -> Choice:
    """Set ``MUJOCO_GL`` in ``environ`` to a headless backend when it is unset and there is no display."""
    given = (environ.get("MUJOCO_GL") or "").strip().lower()
    if given:
        return Choice(given, "MUJOCO_GL was set")
    if has_display(environ):
        return Choice("", "a display is available")
    backend = _headless_backend()
    environ["MUJOCO_GL"] = backend  # child processes (workers, renderers) inherit it
    if "mujoco" in sys.modules and environ is os.environ:  # too late for this process
        return Choice("", f"mujoco was imported before rewardgen, without MUJOCO_GL; child processes use {backend}")
    return Choice(backend, "chosen by rewardgen: no display")


#: what ``choose()`` found when the package was imported (set in ``rewardgen/__init__.py``)
CHOICE: Choice | None = None


def install() -> Choice:
    """``choose()`` for this process, once; the choice is kept in ``CHOICE``."""
    global CHOICE
    if CHOICE is None:
        CHOICE = choose()
    return CHOICE
