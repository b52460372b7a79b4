"""TensorBoard scalars for one trained candidate, written from its ``metrics.json`` (no reward code needed).

The orchestrator calls ``write_scalars(logdir, metrics)`` after a candidate finishes; the worker
never writes files. Tags (x axis: env steps):

- ``reward/total`` and ``reward/total_min``/``_max``: the candidate's per-step total through training;
- ``components/<name>`` (mean), ``components/<name>_min``, ``components/<name>_max``;
- ``episode/return``, ``episode/length``, ``episode/fitness`` (worker-side fitness), ``episode/count``;
- ``fitness/trusted`` (and ``fitness/trusted_std``) at the last env step: the evaluator's number;
- ``perf/env_steps_per_second``, ``perf/train_seconds`` at the last env step;
- ``loss/<name>``: losses, if present as ``metrics["training"]["losses"]`` or ``metrics["extra"]["losses"]``,
  either ``{name: value}`` (written at the last step) or ``{name: [{"step", "value"}...]}`` or
  ``[{"step", name: value, ...}...]``;
- ``reward/fitness_correlation`` at the last step, and ``hacking/alarm`` (1 when the reward-hacking
  alarm fires, else 0).

Written with the ``tensorboard`` package's own event-file writer and protocol buffers, not torch's
``SummaryWriter``: the orchestrator never imports torch (a second or more on every command's critical
path, to start and to tear down).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardgen.stats import finite


def _loss_points(raw: Any, last_step: int) -> list[tuple[str, int, float]]:
    out: list[tuple[str, int, float]] = []
    if isinstance(raw, dict):
        for name, v in raw.items():
            if finite(v):
                out.append((str(name), last_step, float(v)))
            elif isinstance(v, list):
                for p in v:
                    if isinstance(p, dict) and finite(p.get("value")) and finite(p.get("step")):
                        out.append((str(name), int(p["step"]), float(p["value"])))
    elif isinstance(raw, list):
        for p in raw:
            if isinstance(p, dict) and finite(p.get("step")):
                for name, v in p.items():
                    if name != "step" and finite(v):
                        out.append((str(name), int(p["step"]), float(v)))
    return out


def write_scalars(logdir: Path, metrics: dict[str, Any]) -> Path:
    """Write the candidate's training statistics as TensorBoard event files under ``logdir``; returns it.

    Missing pieces (a failed candidate has no ``training``) are skipped; nothing raises for them.
    """
    import time

    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from rewardgen.evaluate.hacking import hacking_alarm
    from rewardgen.safetext import clean

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    training = metrics.get("training") or {}
    env_steps = metrics.get("env_steps")
    steps_seen = [0]
    writer = EventFileWriter(str(logdir))
    try:
        def add(tag: str, value: Any, step: Any) -> None:
            if finite(value) and finite(step):
                # component names come from reward code: a lone surrogate in one made the protobuf
                # encoder raise and stopped the candidate's logging
                summary = Summary(value=[Summary.Value(tag=clean(tag), simple_value=float(value))])
                writer.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))
                steps_seen.append(int(step))

        for p in training.get("total_reward") or []:
            add("reward/total", p.get("mean"), p.get("step"))
            add("reward/total_min", p.get("min"), p.get("step"))
            add("reward/total_max", p.get("max"), p.get("step"))
        for name, points in (training.get("components") or {}).items():
            for p in points or []:
                add(f"components/{name}", p.get("mean"), p.get("step"))
                add(f"components/{name}_min", p.get("min"), p.get("step"))
                add(f"components/{name}_max", p.get("max"), p.get("step"))
        for p in training.get("episodes") or []:
            for key in ("return", "length", "fitness", "ended_early"):
                add(f"episode/{key}", p.get(key), p.get("step"))
            add("episode/count", p.get("episodes"), p.get("step"))
        last = int(env_steps) if finite(env_steps) else max(steps_seen)
        evaluation = metrics.get("evaluation") or {}
        add("fitness/trusted", metrics.get("fitness"), last)
        add("fitness/trusted_std", evaluation.get("fitness_std"), last)
        add("perf/env_steps_per_second", metrics.get("env_steps_per_second"), last)
        add("perf/train_seconds", metrics.get("train_seconds"), last)
        add("reward/fitness_correlation", training.get("reward_fitness_correlation"), last)
        losses = training.get("losses") or (metrics.get("extra") or {}).get("losses")
        for name, step, value in _loss_points(losses, last):
            add(f"loss/{name}", value, step)
        if training:
            add("hacking/alarm", 1.0 if hacking_alarm(training) else 0.0, last)
        writer.flush()
    finally:
        writer.close()
    return logdir


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files under ``logdir``: ``{tag: [(step, value), ...]}`` (for tests and tools)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags().get("scalars", [])}
