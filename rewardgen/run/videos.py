"""A run's videos: each finished candidate's policy rendered off the critical path, one at a time, at the
lowest CPU priority, while training goes on; ``video.json`` beside ``metrics.json`` says how it went."""

from __future__ import annotations

import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rewardgen import interrupt
from rewardgen.run.events import RenderingVideo, RunWarning, VideoReady
from rewardgen.run.progress import Progress
from rewardgen.store import POLICY_FILE, VIDEO_FILE, VIDEO_INFO_FILE, RunStore, Stage, candidate_label
from rewardgen.tasks.spec import Task


class VideoQueue:
    """Renders candidates' videos in the background (one at a time, ``SCHED_IDLE``), in a process
    forked from the zygote: trusted code reading plain policy arrays."""

    def __init__(self, store: RunStore, task: Task, eval_seed: int, progress: Progress):
        self.store, self.task, self.eval_seed, self.progress = store, task, eval_seed, progress
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: dict[tuple[int, int], Future[None]] = {}

    def queue(self, g: int, c: int) -> None:
        """Render candidate ``c`` of generation ``g`` (once); ``video.json`` is written when it is done."""
        with self._lock:
            if (g, c) in self._jobs:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video")
            self._jobs[(g, c)] = self._pool.submit(self._render, g, c)

    def queue_missing(self, generations: int) -> None:
        """On resume: videos of finished candidates that a killed run had not rendered yet."""
        for g in range(generations):
            gen = self.store.read_generation(g)
            for c in range(len((gen or {}).get("candidates", []))):
                m = self.store.read_metrics(g, c)
                if m is not None and m.get("status") == Stage.OK \
                        and not self.store.is_file(self.store.cand_dir(g, c) / VIDEO_INFO_FILE):
                    self.queue(g, c)

    def wait(self, generation: int | None = None) -> bool:
        """Wait for the queued videos (of ``generation``, or all); True when any was waited for."""
        with self._lock:
            jobs = [f for (g, _), f in self._jobs.items() if generation is None or g == generation]
        for fut in jobs:
            interrupt.wait(fut)
        return bool(jobs)

    def pending(self, generation: int) -> bool:
        with self._lock:
            return any(not f.done() for (g, _), f in self._jobs.items() if g == generation)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _render(self, g: int, c: int) -> None:
        info = self._video(g, c)
        # beside metrics.json, which stays as it was sealed
        self.store.write_json(self.store.cand_dir(g, c) / VIDEO_INFO_FILE, info)
        self.progress.event(VideoReady(generation=g, candidate=c, video=info))

    def _video(self, g: int, c: int) -> dict[str, Any]:
        """Render the candidate's trained policy to ``video.mp4``; its description, or the error."""
        from rewardgen.evaluate.video import video_path
        from rewardgen.procs.trusted import render_video

        d = self.store.cand_dir(g, c)
        self.progress.event(RenderingVideo(generation=g, candidate=c))
        try:
            with tempfile.TemporaryDirectory(prefix="rewardgen-video-") as scratch:  # rendered outside the run
                out = Path(scratch) / VIDEO_FILE
                info = render_video(self.task, self.store.read_bytes(d / POLICY_FILE), out, self.eval_seed,
                                    timeout=600.0, idle=True)
                self.store.write_bytes(video_path(d), out.read_bytes())
            return {"file": video_path(d).name, "seconds": info.get("seconds"), "frames": info.get("frames"),
                    "render_seconds": info.get("render_seconds"), "renderer": info.get("renderer")}
        except (RuntimeError, ValueError, OSError) as exc:
            self.progress.event(RunWarning(message=f"video of {candidate_label(g, c)} not rendered: {exc}"))
            return {"error": str(exc)}
