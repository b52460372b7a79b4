"""MuJoCo's warnings, routed through Python instead of the terminal and ``MUJOCO_LOG.TXT``.

MuJoCo's default warning handler prints ``WARNING: ...`` straight to the process's stdout (past any
live progress display) and appends it to ``MUJOCO_LOG.TXT`` in the current directory. ``install()``
(called when the ``rewardgen`` package is imported, so in the CLI, the sandboxed workers, the
evaluator and the video renderer alike) replaces it with ``mujoco.set_mju_user_warning``:

- known noise is dropped: gymnasium's own model files (HalfCheetah) use the ``settotalmass``
  compiler attribute, which MuJoCo 3.3+ reports as deprecated on every load; the user can do
  nothing about it and the model still compiles as before;
- any other warning becomes one Python ``MujocoWarning`` per distinct message (``warnings`` shows
  it once on stderr; in a worker it lands in the candidate's ``train.log``).

Nothing is written to the current directory.
"""

from __future__ import annotations

import warnings

IGNORED = ("compiler attribute 'settotalmass' is deprecated",)


class MujocoWarning(UserWarning):
    """A warning MuJoCo's C library raised (model compilation, simulation instability)."""


def on_warning(message: str) -> None:
    text = str(message).strip()
    if any(text.startswith(p) for p in IGNORED):
        return
    warnings.warn(f"MuJoCo: {text}", MujocoWarning, stacklevel=2)


def install() -> bool:
    """Route MuJoCo's warnings through ``on_warning``; False when mujoco is not importable."""
    try:
        import mujoco
    except ImportError:  # pragma: no cover - mujoco is a dependency
        return False
    if mujoco.get_mju_user_warning() is not on_warning:
        mujoco.set_mju_user_warning(on_warning)
    return True
