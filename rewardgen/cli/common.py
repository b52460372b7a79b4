"""What every command shares: the one-line usage error, reading a task, a reward file or the run settings from
arguments, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rewardgen.errors import UserError

EXIT_FAILED = 1  # the command ran but produced nothing usable (a run with no trained candidate)


EXIT_USAGE = 2


class UsageError(UserError):
    """Bad input on the command line: reported in one line with exit code 2.

    ``prog`` names the command in the printed line (``rewardgen evolve: error: ...``)."""

    def __init__(self, message: str, prog: str = "rewardgen"):
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and no prefix matching: ``--generation 2`` is refused, never
    taken for ``--generations``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        """Also keeps the defaults of the (sub)command that parsed, as ``parser_defaults``: a command can
        tell a flag that was given from one left at its default."""
        ns, rest = super().parse_known_args(args, namespace)
        if not hasattr(ns, "parser_defaults"):  # the subcommand's, set first, wins over the top level's
            ns.parser_defaults = {a.dest: a.default for a in self._actions if a.dest != argparse.SUPPRESS}
        return ns, rest

    def error(self, message: str):  # one line, exit 2, no usage dump
        raise UsageError(f"{message} (see {self.prog} --help)", prog=self.prog)


def number_type(kind: type, ok, wanted: str):
    """An argparse type: parse ``kind`` and require ``ok(value)``, saying ``wanted`` when not."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value
    return parse


# --------------------------------------------------------------------------- progress display
#: the run directory of the command in progress, for the Ctrl-C message
CURRENT_RUN: dict[str, str] = {}


# --------------------------------------------------------------------------- commands
def consoles(as_json: bool):
    from rich.console import Console

    out = Console(stderr=as_json, highlight=False)
    return out


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def task_named(name: str):
    """The task ``name`` (an id or a YAML path), checked to build its env: TaskError (exit 2) if not."""
    from rewardgen.tasks.spec import check_loads, get_task

    task = get_task(name)
    check_loads(task)
    return task


def config_from_args(args):
    from rewardgen.run.config import EvolveConfig

    llm = {k: getattr(args, k) for k in ("llm", "model", "base_url", "temperature", "llm_timeout", "critic", "prompts",
                                         "schedule", "mode", "interactive", "executor", "ray_address", "sim",
                                         "device", "confirm_seeds", "prompt_chars")
           if hasattr(args, k)}
    if hasattr(args, "no_video"):
        llm["video"] = not args.no_video
    return EvolveConfig(task=args.task, samples=getattr(args, "samples", 1), generations=getattr(args, "generations", 1),
                        steps=args.steps, seed=args.seed, workers=args.workers, trainer=args.trainer,
                        num_envs=args.num_envs, timeout=args.timeout, eval_episodes=args.eval_episodes, **llm)


def task_from_env_args(args):
    from rewardgen.tasks.spec import task_from_mjcf

    if not args.describe or not args.fitness:
        raise UsageError("--env needs --describe \"what to do\" and --fitness \"name(param=value)\"")
    extra = {k: v for k, v in (("episode_length", args.episode_length), ("success_threshold", args.success_threshold),
                               ("frame_skip", args.frame_skip), ("task_id", args.id)) if v is not None}
    if getattr(args, "steps", None):
        extra["default_steps"] = args.steps
    return task_from_mjcf(args.env, args.describe, args.fitness, **extra)


#: the brought-robot flags that only describe a model file's robot: refused with --task
ROBOT_ONLY = (("episode_length", "--episode-length"), ("frame_skip", "--frame-skip"), ("id", "--id"))


def task_with_overrides(task, args):
    """``task`` with the brought-robot flags that make sense for it applied (``--fitness``,
    ``--success-threshold``, ``--describe``), and one line per change; UsageError for those that
    only describe a model file (``--episode-length``, ``--frame-skip``, ``--id``)."""
    from rewardgen.sim.termination import termination_of
    from rewardgen.tasks.spec import with_overrides

    for dest, flag in ROBOT_ONLY:
        if getattr(args, dest, None) is not None:
            raise UsageError(f"{flag} goes with --env ROBOT.xml, not --task: to change a task's {flag[2:]}, "
                             "copy its YAML file, edit it and pass the copy to --task", prog="rewardgen evolve")
    fitness, threshold, describe = (getattr(args, k, None) for k in ("fitness", "success_threshold", "describe"))
    if fitness is None and threshold is None and describe is None:
        return task, []
    terminates = termination_of(task).ends_early if fitness is not None else True
    return with_overrides(task, fitness=fitness, success_threshold=threshold, describe=describe,
                          terminates=terminates)


#: flags whose values a replay takes from the replayed run: given with --replay, they would be ignored
REPLAYED = ("task", "env", "describe", "fitness", "episode_length", "success_threshold", "frame_skip", "id",
            "steps", "seed", "samples", "generations", "mode", "trainer", "num_envs", "timeout", "eval_episodes",
            "schedule", "confirm_seeds", "model", "base_url", "temperature", "critic", "llm")
# not refused: --prompts and --ray-address, which a replay of a run made with templates or on a cluster
# needs again (a run's own templates are code and its cluster a place: rewardgen uses only those the
# user names; run.config.continue_settings)


def refuse_with_replay(args) -> None:
    """UsageError for a flag given with ``--replay`` that the replay would not use (it reruns the
    recorded run's own settings)."""
    defaults = getattr(args, "parser_defaults", {})
    given = [d for d in REPLAYED if d in defaults and getattr(args, d, None) != defaults[d]]
    if given:
        flags = ", ".join("--" + d.replace("_", "-") for d in given)
        raise UsageError(f"--replay reruns the recorded run with its own settings; {flags} would be ignored: "
                         "leave them out (or start a new run without --replay)", prog="rewardgen evolve")


def read_reward(path_text: str) -> str:
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"no such reward file: {path}")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def writable_output(out: Path) -> Path:
    """``out`` when a file can be written there: UsageError (one line) for a directory, a missing or
    unwritable folder, before any work is done."""
    if out.is_dir():
        raise UsageError(f"-o {out} is a directory; give a file name")
    folder = out.parent
    if not folder.exists():
        raise UsageError(f"-o {out}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise UsageError(f"-o {out}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"-o {out}: cannot write to {folder} (permission denied)")
    return out


def env_steps(text: str) -> int:
    """An argparse type for a count of env-steps: 100000, 100_000, 100k, 1.5M, 1e5 (``rewardgen.envsteps``)."""
    from rewardgen.envsteps import parse

    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: argparse types: a wrong value is one clear line
positive_int = number_type(int, lambda v: v > 0, "a positive integer")
non_negative_int = number_type(int, lambda v: v >= 0, "an integer >= 0")
positive_float = number_type(float, lambda v: v > 0, "a positive number")
port_number = number_type(int, lambda v: 1 <= v <= 65535, "a TCP port from 1 to 65535")


def resume_command(run_dir: str | Path) -> str:
    """The ``rewardgen resume`` line that continues this command's own run, for the user to copy: the run
    path quoted as one shell word, and the endpoint (or prompt templates) this command was given, which
    ``resume`` takes only from its command line (docs/sandbox.md, "What rewardgen trusts")."""
    import shlex

    from rewardgen.store import RunStore

    words = ["rewardgen", "resume", str(run_dir)]
    try:
        config = RunStore(Path(run_dir)).read_run().get("config") or {}
    except (UserError, OSError):
        config = {}
    for flag, key in (("--base-url", "base_url"), ("--prompts", "prompts"), ("--ray-address", "ray_address")):
        if isinstance(config.get(key), str) and config.get(key):
            words += [flag, config[key]]
    return " ".join(shlex.quote(w) for w in words)
