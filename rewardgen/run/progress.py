"""What a run tells whoever watches it: progress events, and the estimate of the time it will take."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol


class Progress(Protocol):
    """Receives events as the run goes (the CLI shows them; tests may record them)."""

    def event(self, kind: str, **data: Any) -> None: ...


class SilentProgress:
    def event(self, kind: str, **data: Any) -> None:
        pass


#: env-steps/s per core assumed before anything was measured (the first finished slice replaces it)
GUESSED_STEPS_PER_CORE = {"ppo": 10_000.0, "sb3": 1_500.0}
#: seconds per candidate besides its env-steps assumed before anything was measured
GUESSED_OVERHEAD_S = 1.5


class Estimate:
    """How long the run will take: planned env-steps over a rate, refined as slices finish.

    Up front (``basis`` "guess") the rate is ``GUESSED_STEPS_PER_CORE`` times the cores plus
    ``GUESSED_OVERHEAD_S`` per candidate; once this process has trained something, the rate is what
    it measured: env-steps trained here over the wall time since it started (overheads included)."""

    def __init__(self, planned: int, done: int, candidates_left: int, trainer: str, cores: int):
        self.planned, self.done, self.here = int(planned), int(done), 0
        self.candidates_left = candidates_left
        self.guess_rate = GUESSED_STEPS_PER_CORE.get(trainer, 1_500.0) * max(1, cores)
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def add(self, env_steps: int) -> None:
        with self.lock:
            self.done += int(env_steps)
            self.here += int(env_steps)

    def fields(self) -> dict[str, Any]:
        with self.lock:
            elapsed = time.monotonic() - self.started
            left_steps = max(0, self.planned - self.done)
            if self.here > 0 and elapsed > 0:
                left, basis = left_steps * elapsed / self.here, "measured"
            else:
                left, basis = left_steps / self.guess_rate + self.candidates_left * GUESSED_OVERHEAD_S, "guess"
            return {"seconds_left": round(left, 1), "seconds_total": round(elapsed + left, 1), "basis": basis,
                    "env_steps_planned": self.planned, "env_steps_done": self.done}


