"""When a task's episode ends early, as data: the bounds its env checks after every step.

Each env's rules class (``rewardgen.sim.rules``) declares its health bounds once: the simulators end
episodes by them and the prompt states them, so what a proposer is told about termination is
exactly what the simulators enforce (tests/test_termination.py checks both for every task).
Quantities are named in the reward contract's own fields, so a reward can read exactly what the
rule reads.
"""

from __future__ import annotations

from rewardgen.sim.rules import rules_for
from rewardgen.sim.rules.base import Bound, Termination
from rewardgen.tasks.spec import Task

__all__ = ["Bound", "Termination", "env_reward_text", "termination_of"]


def termination_of(task: Task) -> Termination:
    """The early-termination rules of ``task``'s env (ValueError for an env no rules reproduce)."""
    env = task.make_env()
    try:
        try:
            rules = rules_for(env)
        except ValueError:
            raise ValueError(f"the termination rules of {type(env.unwrapped).__name__} are not known") from None
        return rules.termination(int(task.episode_length))
    finally:
        env.close()


def env_reward_text(task: Task) -> str | None:
    """The env's own reward per step in words, from the same rules class that computes it (None: an
    env no rules reproduce, or one whose rules do not describe it)."""
    env = task.make_env()
    try:
        try:
            return rules_for(env).reward_text()
        except ValueError:
            return None
    finally:
        env.close()
