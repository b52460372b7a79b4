"""Jinja2 prompt templates (``prompts/``): what a proposer is told about the task and robot.

``rewardgen describe TASK`` renders the same system and task templates a proposer receives, so a
user sees exactly what the proposer sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from rewardgen.resources import PROMPTS_DIR


def environment(directory: Path | None = None) -> jinja2.Environment:
    # a --prompts folder overrides templates one by one; any it lacks come from prompts/
    folders = [str(directory), str(PROMPTS_DIR)] if directory else [str(PROMPTS_DIR)]
    return jinja2.Environment(loader=jinja2.FileSystemLoader(folders),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


def render(name: str, directory: Path | None = None, **context: Any) -> str:
    """Render ``prompts/<name>.j2`` with ``context``."""
    return environment(directory).get_template(f"{name}.j2").render(**context)


def task_prompts(task, directory: Path | None = None, plan=None) -> dict[str, str]:
    """The system and task prompts for ``task`` (what ``describe`` prints). ``plan`` (a
    ``taskfacts.TrainingPlan``) adds the training budget, the trainer and the schedule."""
    from rewardgen.proposers.taskfacts import fitness_lines, judging_lines, plan_lines, pose_lines, termination_lines
    from rewardgen.sim.termination import termination_of

    termination = termination_of(task)
    ends = termination_lines(termination)
    seconds = f"{task.episode_length * task.schema.dt:.3g}"
    ends[0] = ends[0].replace(" env steps (", f" env steps, {seconds} s (", 1)
    return {
        "system": render("system", directory),
        "task": render("task", directory, task=task, schema=task.schema, fitness_lines=fitness_lines(task, termination),
                       judging_lines=judging_lines(plan, task), termination_lines=ends,
                       training_lines=plan_lines(plan, task) if plan else [],
                       schedule_lines=list(plan.schedule_lines) if plan else [], pose_lines=pose_lines(task)),
    }
