"""``play``: watch a candidate's trained policy: a video of one rollout, and a window when a display exists.

The rollout is the trusted evaluator's first episode by default (the run's evaluation seed), so what
you watch is what was measured. Both the video and the window are drawn in confined children that read
the policy as plain arrays (``rewardgen.procs.trusted``): the video with the offscreen renderer
(``MUJOCO_GL=egl``, works on a headless machine), the window with MuJoCo's viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardgen.evaluate.window import display_available
from rewardgen.inspect.policy_export import PolicyExportError, TrainedPolicy, trained_policy
from rewardgen.store import RunRecord


def evaluation_seed(run: RunRecord) -> int:
    """The first seed of the run's trusted evaluation (``Evolution.eval_seed``)."""
    config = run.get("config")
    seed = config.get("seed") if isinstance(config, dict) else 0
    return 10_000 + 1000 * (seed if isinstance(seed, int) and not isinstance(seed, bool) else 0)


def default_video_name(run_dir: Path, label: str) -> str:
    """Where ``play`` writes its video unless told: ``<run id>-<candidate>.mp4`` in the current folder."""
    return f"{Path(run_dir).resolve().name}-{label}.mp4"


def play(run_dir: Path, candidate: tuple[int, int] | None = None, out: Path | None = None, seed: int | None = None,
         seconds: float = 10.0, window: bool | None = None, width: int = 640, height: int = 480,
         trained: TrainedPolicy | None = None) -> dict[str, Any]:
    """Render the policy of ``candidate`` (default: the run's best) to the mp4 ``out`` and, with
    ``window`` (None: when a display exists), show the same rollout in a window.

    :returns: ``{"candidate", "video": {path, frames, seconds, steps, terminated, ...}, "window": {...} | None,
        "window_error": str | None, "seed"}``.
    :param trained: the candidate's policy when the caller has read it already (``trained_policy``).
    :raises PolicyExportError: (a UserError) no such candidate or no trained policy."""
    from rewardgen.procs.trusted import render_in_child, show_in_window

    if not seconds > 0:
        raise PolicyExportError(f"--seconds must be positive, got {seconds}")
    trained = trained or trained_policy(run_dir, candidate)
    seed = evaluation_seed(trained.run) if seed is None else int(seed)
    out = Path(out) if out is not None else Path(default_video_name(run_dir, trained.label))
    video = render_in_child(trained.task, trained.export, out, seed, width=width, height=height, max_seconds=seconds)
    shown, error = None, None
    if window is None:
        window = display_available()
    if window:
        try:
            shown = show_in_window(trained.task, trained.export, seed, max_seconds=seconds)
        except RuntimeError as exc:  # no GL for a window here: the video is still there
            error = str(exc)
    return {"candidate": trained.label, "task": trained.task.id, "seed": seed, "video": video, "window": shown,
            "window_error": error, "fitness": trained.fitness}


__all__ = ["default_video_name", "evaluation_seed", "play"]
