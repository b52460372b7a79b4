"""rewardgen's public calls, each a thin layer over the stage that does the work.

Imported lazily by ``rewardgen/__init__.py`` (``rewardgen.evolve`` etc.), so ``import rewardgen`` stays
cheap. Every mistake a caller can make (an unknown task, a bad option, a run directory that is not
one) raises ``rewardgen.UserError`` with a message for a person.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardgen.contract.policy import PolicyExport
from rewardgen.inspect.debug import DebugReport, debug_reward
from rewardgen.inspect.export import export_reward, parse_candidate
from rewardgen.inspect.report import write_report
from rewardgen.procs.check import CheckVerdict, check_reward
from rewardgen.run.config import EvolveConfig
from rewardgen.run.evolve import Evolution, start_run, train_file
from rewardgen.run.evolve import resume as _resume
from rewardgen.run.progress import Progress
from rewardgen.store import RunStore
from rewardgen.tasks.spec import Task, get_task, list_tasks  # noqa: F401 - list_tasks, get_task: public


def _task(task: str | Task) -> Task:
    return task if isinstance(task, Task) else get_task(task)


def evolve(task: str | Task, *, samples: int = 4, generations: int = 3, steps: int | None = None, seed: int = 0,
           runs_dir: str | Path = "runs", progress: Progress | None = None, **options: Any) -> dict:
    """Evolve rewards for ``task`` in a new run under ``runs_dir`` and take it to the end.

    :param samples: candidates per generation (K). :param generations: generations to run.
    :param steps: training budget per candidate (env-steps); None: the task's default.
    :param progress: receives ``event(event)`` (the typed events of ``rewardgen.run.events``) as the run
        goes (None: silent); through
        ``rewardgen.evolve``, ``True`` shows the live display ``rewardgen evolve`` shows in a terminal.
    :param options: any other ``rewardgen.run.config.EvolveConfig`` field (``llm``, ``schedule``,
        ``workers``, ``video``, ...).
    :returns: the run summary (``run_dir``, ``best``, one entry per generation).
    """
    t = _task(task)
    config = EvolveConfig(task=t.id, samples=samples, generations=generations, steps=steps, seed=seed, **options)
    store = start_run(config, Path(runs_dir), task=t)
    return Evolution(store, progress).run()


def resume(run_dir: str | Path, progress: Progress | None = None, generations: int | None = None, *,
           base_url: str | None = None, model: str | None = None, use_run_endpoint: bool = False,
           prompts: str | None = None, ray_address: str | None = None) -> dict:
    """Continue an interrupted run (finished candidates are kept, never retrained); its summary.
    ``progress`` as for ``evolve`` (``True`` through ``rewardgen.resume``: the terminal display).

    :param generations: the run's new total of generations: a finished run of 3 given 5 trains 2 more.

    The run directory is untrusted input: the LLM endpoint is ``base_url`` (else ``OPENAI_BASE_URL``, else
    OpenAI's), never silently the run's; a run made with another endpoint is refused (``ConfigError``)
    unless ``use_run_endpoint``. The run's prompt templates or Ray cluster are used only when given again."""
    from rewardgen.run.config import UserReach

    reach = UserReach(base_url=base_url, model=model, prompts=prompts, ray_address=ray_address,
                      use_run_endpoint=use_run_endpoint)
    return _resume(Path(run_dir), progress, reach, generations)


def train(source: str, task: str | Task, *, steps: int | None = None, seed: int = 0, runs_dir: str | Path = "runs",
          progress: Progress | None = None, **options: Any) -> dict:
    """Train one reward (its Python source) and measure its policy with the trusted fitness.
    ``progress`` as for ``evolve`` (``True`` through ``rewardgen.train``: the terminal display).

    :returns: ``{"run_dir", "summary", "metrics"}``; ``metrics["fitness"]`` is the trusted fitness.
    """
    t = _task(task)
    config = EvolveConfig(task=t.id, steps=steps, seed=seed, **options)
    return train_file(source, config, Path(runs_dir), progress, task=t)


def check(source: str, task: str | Task, *, steps: int = 256, seed: int = 0) -> CheckVerdict:
    """Check a reward: static validation, then a smoke run in the sandbox; the verdict explains itself."""
    return check_reward(source, _task(task), steps=steps, seed=seed)


def debug(source: str, task: str | Task, *, policy: PolicyExport | None = None, episodes: int = 5,
          seed: int = 0) -> DebugReport:
    """Run a reward on random (and a policy's) rollouts in the sandbox and say what its terms do."""
    return debug_reward(source, _task(task), policy=policy, episodes=episodes, seed=seed)


def export(run_dir: str | Path, out: str | Path, candidate: str | None = None) -> Path:
    """Write a run's best reward (or ``candidate`` "G/C") as a standalone file; its path."""
    RunStore.open(Path(run_dir))  # a clear UserError for a folder that is not a run
    return export_reward(Path(run_dir), parse_candidate(candidate) if candidate else None, Path(out))


def report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write a run's HTML report (default ``<run_dir>/report.html``); its path."""
    RunStore.open(Path(run_dir))  # a clear UserError for a folder that is not a run
    return write_report(Path(run_dir), Path(out) if out else None)


def export_policy(run_dir: str | Path, out_dir: str | Path, candidate: str | None = None, force: bool = False) -> dict:
    """Write a run's best policy (or ``candidate``, "g1c3" or "1/3") to the folder ``out_dir``:
    ``policy.pt``, the torch-only loader ``policy.py`` and ``policy.onnx`` when onnx is installed."""
    from rewardgen.inspect.policy_export import export_policy as _export_policy
    from rewardgen.store import candidate_from_text

    return _export_policy(Path(run_dir), candidate_from_text(candidate) if candidate else None, Path(out_dir),
                          force=force)


def play(run_dir: str | Path, out: str | Path, candidate: str | None = None, seed: int | None = None,
         seconds: float = 10.0, window: bool | None = None) -> dict:
    """Render a run's best policy (or ``candidate``) to the mp4 ``out`` and, with ``window`` (None: when a
    display exists), show it in MuJoCo's viewer; what was shown (``video``, ``window``)."""
    from rewardgen.inspect.play import play as _play
    from rewardgen.store import candidate_from_text

    return _play(Path(run_dir), candidate_from_text(candidate) if candidate else None, Path(out), seed=seed,
                 seconds=seconds, window=window)
