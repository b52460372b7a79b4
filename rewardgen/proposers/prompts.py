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


def task_prompts(task, directory: Path | None = None) -> dict[str, str]:
    """The system and task prompts for ``task`` (what ``describe`` prints)."""
    from rewardgen.tasks.fitness import make_fitness

    fitness = make_fitness(task.fitness, task.schema)
    return {
        "system": render("system", directory),
        "task": render("task", directory, task=task, schema=task.schema, fitness_doc=fitness.doc),
    }
