"""How every process the orchestrator starts is held: one ``Confinement`` record.

A training or debug worker, the trusted evaluator, the video renderer, the viewer window, an
exported reward's host and the zygote itself are held by a ``Confinement``, applied by one function
(``Confinement.apply``) in the just-forked child before any of its own code runs
(``rewardgen.procs.launch`` starts them):

- its own session and process group; it dies with its parent (parent-death signal);
- the environment policy (``Confinement.environment``): an allowlist, nothing of the orchestrator's
  but PATH, locale and the GL backend (and, for a window only, the display), so no API key or other
  secret reaches it; its own scratch folder as HOME and TMPDIR;
- no descriptor of the orchestrator's but its standard streams and its result pipe;
- the rlimits (``Confinement.rlimits``: no core dumps, and the address space, CPU time and file size
  the record names), its own network namespace where asked and allowed, niceness or ``SCHED_IDLE``.

Its standard input carries frames to it, its result pipe frames back (``rewardgen.procs.frames``);
its stdout and stderr are kept bounded (``BoundedLog``).
"""

from __future__ import annotations

import os
import resource
from dataclasses import asdict, dataclass
from typing import Any

from rewardgen.resources import PACKAGE_PARENT
from rewardgen.sandbox.oslevel import enter_netns, keep_priority_in_session, set_parent_death_signal

#: the only variables of the orchestrator's environment a child sees
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "MUJOCO_GL", "PYOPENGL_PLATFORM")
#: and, for a child that opens a window (``Confinement.display``), the display's
DISPLAY_ENV = ("DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR")


def headless_gl() -> str:
    """The headless GL backend a rendering child uses: this process's when it chose one (``osmesa``
    where ``rewardgen.glbackend`` found only OSMesa), else ``egl``."""
    chosen = os.environ.get("MUJOCO_GL", "")
    return chosen if chosen in ("egl", "osmesa") else "egl"


@dataclass(frozen=True)
class Confinement:
    """What holds one child process: its environment, rlimits, namespaces and priority.

    :param memory_bytes: address-space limit (RLIMIT_AS); None: none (a CUDA context reserves more
        address space than any useful limit).
    :param cpu_seconds: CPU-time limit (RLIMIT_CPU); None: none.
    :param file_bytes: largest file it may write (RLIMIT_FSIZE); None: none.
    :param netns: enter a new network namespace (where the OS allows it; the caller observes it).
    :param nice: niceness added; ``idle``: ``SCHED_IDLE`` too (work nobody waits on).
    :param threads: OpenMP/MKL threads.
    :param display: pass the display's variables (a window); nothing else of the orchestrator's.
    :param env: variables set over the policy's, as pairs (e.g. ``MUJOCO_GL``).
    """

    memory_bytes: int | None = None
    cpu_seconds: int | None = None
    file_bytes: int | None = None
    netns: bool = False
    nice: int = 0
    idle: bool = False
    threads: int = 1
    display: bool = False
    env: tuple[tuple[str, str], ...] = ()

    def environment(self, home: str) -> dict[str, str]:
        """The child's whole environment (the one environment policy): an allowlist of the
        orchestrator's variables, then fixed values; ``home`` is its scratch folder."""
        names = PASSED_ENV + (DISPLAY_ENV if self.display else ())
        env = {k: os.environ[k] for k in names if k in os.environ}
        env.update({
            "HOME": home, "TMPDIR": home, "PYTHONPATH": PACKAGE_PARENT, "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads), "PYTHONHASHSEED": "0",
            "SB3_LOGDIR": home,  # SB3 makes its (unused) log folder here; it exists, so nothing is created
        })
        env.update(dict(self.env))
        return env

    def rlimits(self) -> list[tuple[int, int, int]]:
        """``(resource, soft, hard)`` for every limit (the one rlimit builder): never a core dump."""
        out = [(resource.RLIMIT_CORE, 0, 0)]
        for res, value in ((resource.RLIMIT_AS, self.memory_bytes), (resource.RLIMIT_CPU, self.cpu_seconds),
                           (resource.RLIMIT_FSIZE, self.file_bytes)):
            if value is not None:
                out.append((res, int(value), int(value)))
        return out

    def apply(self) -> None:
        """In the just-forked child, before its own code runs: die with the parent, set the priority
        (its session's too: ``keep_priority_in_session``), leave the network (when asked), set the
        rlimits. The session, descriptors and environment are set by the caller (``subprocess`` for a
        fresh child, the zygote for a forked one)."""
        set_parent_death_signal()
        # its session as nice as the command (a user's `nice rewardgen`), before a user namespace could
        # cost the privilege to write it at once; the renderer's own nice 19 and SCHED_IDLE order it
        # within its session only, so that a video is not starved past its wall-clock limit by training
        keep_priority_in_session(nice=os.getpriority(os.PRIO_PROCESS, 0))
        if self.nice:
            os.nice(self.nice)
        if self.idle and hasattr(os, "SCHED_IDLE"):
            try:
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            except OSError:
                pass
        if self.netns:
            try:
                enter_netns()
            except Exception:  # the parent observes whether it worked (``netns_of``)
                pass
        for res, soft, hard in self.rlimits():
            resource.setrlimit(res, (soft, hard))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Confinement:
        """The record as the zygote receives it (JSON: lists for tuples)."""
        return cls(**{**raw, "env": tuple((str(k), str(v)) for k, v in raw.get("env", ()))})


class BoundedLog:
    """Keeps the first and last ``limit/2`` bytes of a stream and counts what was dropped."""

    def __init__(self, limit: int):
        self.half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > self.half:
            cut = len(self.tail) - self.half
            self.dropped += cut
            del self.tail[:cut]

    def text(self) -> str:
        mid = f"\n[... {self.dropped} bytes of output dropped ...]\n" if self.dropped else ""
        return (bytes(self.head) + mid.encode() + bytes(self.tail)).decode("utf-8", "replace")

    def last_line(self) -> str:
        lines = self.text().strip().splitlines()
        return lines[-1] if lines else "(no output)"
