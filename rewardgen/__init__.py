"""rewardgen: writes, trains and selects reward functions for MuJoCo robots.

The public API (everything else is internal)::

    import rewardgen

    rewardgen.list_tasks()                              # the built-in tasks (rewardgen.get_task(id): one)
    summary = rewardgen.evolve("halfcheetah-run", progress=True)  # a new run, with the terminal's live display
    summary = rewardgen.resume("runs/<run-id>")         # continue an interrupted run
    verdict = rewardgen.check(source, "hopper-hop")     # static checks + a sandboxed smoke run
    result = rewardgen.train(source, "hopper-hop")      # one reward: its policy's trusted fitness
    report = rewardgen.debug(source, "hopper-hop")      # what each term of a reward does
    rewardgen.export("runs/<run-id>", "best_reward.py") # the best reward as a standalone file
    rewardgen.report("runs/<run-id>")                   # the run's HTML report
    rewardgen.export_policy("runs/<run-id>", "policy/") # the trained policy as a torch module (+ loader)
    rewardgen.play("runs/<run-id>", "best.mp4")         # a video of the policy (and a window with a display)

Every mistake a caller can make raises ``rewardgen.UserError`` (the CLI prints its one line and exits
with 2). See ``rewardgen.api`` for the parameters and docs/architecture.md for the package map.
"""

from typing import Any as _Any

from rewardgen import glbackend as _glbackend
from rewardgen import mjlog as _mjlog
from rewardgen.errors import UserError

__version__ = "0.1.0"
__all__ = ["UserError", "check", "debug", "evolve", "export", "get_task", "list_tasks", "report", "resume", "train"]

_glbackend.install()  # before anything imports mujoco: a headless renderer when there is no display
_mjlog.install()  # MuJoCo's warnings go through Python, not to the terminal or ./MUJOCO_LOG.TXT

_API = {"check", "debug", "evolve", "export", "get_task", "list_tasks", "report", "resume", "train"}
# taking a run home (docs/policies.md)
__all__ += ["export_policy", "play"]
_API |= {"export_policy", "play"}


#: the calls that run training and take ``progress``: ``progress=True`` shows the CLI's live display
_SHOWN = {"evolve", "resume", "train"}


def __getattr__(name: str) -> _Any:
    # imported on first use: `import rewardgen` (and the CLI's start) stays cheap
    if name in _API:
        from rewardgen import api

        fn = getattr(api, name)
        return _with_display(fn) if name in _SHOWN else fn
    raise AttributeError(f"module 'rewardgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)


def _with_display(fn):
    """``fn`` (an ``api`` call that takes ``progress``) where ``progress=True`` means the live display
    ``rewardgen evolve`` shows in the terminal (bars, time left, the summary's events)."""
    import functools

    @functools.wraps(fn)
    def call(*args: _Any, progress: _Any = None, **kwargs: _Any) -> _Any:
        if progress is True:
            from rich.console import Console

            from rewardgen.cli.display import RichProgress

            with RichProgress(Console(highlight=False)) as display:
                return fn(*args, progress=display, **kwargs)
        return fn(*args, progress=progress or None, **kwargs)

    return call
