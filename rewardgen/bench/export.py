"""``bench export``: what the exported reward costs per env step, against the raw env, side by side.

The file ``rewardgen export`` writes is rendered for the task (its reward: ``--reward FILE``, else the
offline proposer's canonical reward for the task, goal plus control cost) and imported. Interleaved,
``repeats`` times, each form steps ``steps`` env-steps with the same random actions (resetting at episode
ends), and the medians are reported:

- ``raw``: the task's env as ``make_env`` builds it, without the reward wrapper;
- ``plain``: ``RewardWrapper`` (the reward in this process); ``sandboxed``: ``SandboxedRewardWrapper``;
- ``state``: the plain wrapper building its State each step (derived quantities, one fill of the fields
  the reward reads, one copy) but calling no reward: what the wrapper itself adds; the rest of
  ``plain`` (``reward_us``) is the reward's own torch calls, measured in the loop where they run (their
  cost there is two to three times their cost in a tight loop: the simulator step evicts the caches);
- the vectorised forms for ``envs`` envs (SB3's ``DummyVecEnv``): raw, plain and sandboxed, per env-step.

The issue's target is the plain wrapper within 1.3x of the raw env's step time. The wrapper cannot
make the reward's own torch calls cheaper; ``state_ratio`` says what the wrapper itself adds.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rewardgen.tasks.spec import Task, get_task


def canonical_reward(task: Task) -> str:
    """The offline proposer's first reward for ``task`` (its goal at full weight and a light control cost)."""
    from rewardgen.proposers.library import LibrarySpace, render_source

    genome, _, _ = LibrarySpace(task).start()
    return render_source(task, genome, "canonical start")


def _module(text: str, folder: Path):
    path = folder / "rewardgen_bench_export.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("rewardgen_bench_export", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Clock:
    """Wall time and this process's CPU time, together (on a loaded machine the CPU time is the steadier:
    it leaves out the time other processes held the cores; the sandboxed forms' jail is another process,
    so for them only the wall time counts)."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> _Clock:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


def _per_step(env, actions: np.ndarray) -> tuple[float, float]:
    """(wall, cpu) seconds per ``env.step`` over ``actions`` (a reset at each episode end, not timed)."""
    env.reset(seed=0)
    clock = _Clock()
    for a in actions:
        with clock:
            _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return clock.wall / len(actions), clock.cpu / len(actions)


def _per_env_step(venv, actions: np.ndarray) -> tuple[float, float]:
    """(wall, cpu) seconds per env-step of a VecEnv over ``actions`` (steps, envs, act_dim); auto-reset included."""
    venv.seed(0)
    venv.reset()
    with _Clock() as clock:
        for a in actions:
            venv.step(a)
    n = len(actions) * actions.shape[1]
    return clock.wall / n, clock.cpu / n


def bench_export(task_id: str, reward: str | None = None, steps: int = 2000, repeats: int = 5, envs: int = 8,
                 say: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Microseconds per env step of the exported reward's forms and the raw env; ratios of the medians."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rewardgen.inspect.export import render_export

    task = get_task(task_id)
    source = reward or canonical_reward(task)
    with tempfile.TemporaryDirectory(prefix="rewardgen-bench-export-") as folder:
        mod = _module(render_export(source, task.to_dict(), origin=f"bench export {task.id}"), Path(folder))
        raw, plain, jailed = mod._rg_base_env(), mod.make_env(), mod.make_env(sandboxed=True)
        rng = np.random.default_rng(0)
        act_dim = raw.action_space.shape[0]
        actions = rng.uniform(-1, 1, (steps, act_dim)).astype(np.float32)
        vec_actions = rng.uniform(-1, 1, (max(1, steps // envs), envs, act_dim)).astype(np.float32)
        vec_raw = DummyVecEnv([mod._rg_base_env for _ in range(envs)])
        vec_plain, vec_jailed = mod.make_vec_env(envs), mod.make_vec_env(envs, sandboxed=True)
        # the plain wrapper with its State built each step but no reward called: what the wrapper itself adds
        state = mod.make_env()

        def no_reward(data, action, wrapper=state):
            wrapper.builder.fill(0, data, action, wrapper.episode_step)
            wrapper.builder.state(1)
            return 0.0, {}

        state._evaluate = no_reward
        forms: dict[str, Callable[[], tuple[float, float]]] = {
            "raw": lambda: _per_step(raw, actions), "plain": lambda: _per_step(plain, actions),
            "state": lambda: _per_step(state, actions), "sandboxed": lambda: _per_step(jailed, actions),
            "vec_raw": lambda: _per_env_step(vec_raw, vec_actions),
            "vec_plain": lambda: _per_env_step(vec_plain, vec_actions),
            "vec_sandboxed": lambda: _per_env_step(vec_jailed, vec_actions)}
        for f in forms.values():  # warm-up
            f()
        wall: dict[str, list[float]] = {k: [] for k in forms}
        cpu: dict[str, list[float]] = {k: [] for k in forms}
        for r in range(repeats):
            for name, f in forms.items():
                w, c = f()
                wall[name].append(w * 1e6)
                cpu[name].append(c * 1e6)
            say(f"repeat {r + 1}/{repeats} (cpu us): " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in cpu.items()))
        for env in (raw, plain, state, jailed, vec_raw, vec_plain, vec_jailed):
            env.close()
    wm = {k: statistics.median(v) for k, v in wall.items()}
    cm = {k: statistics.median(v) for k, v in cpu.items()}
    return {"task": task.id, "env": task.env_id, "steps": steps, "repeats": repeats, "envs": envs,
            "reward": "given" if reward else "the offline proposer's canonical reward",
            "us_per_step_wall": {k: round(v, 1) for k, v in wm.items()},
            "us_per_step_cpu": {k: round(v, 1) for k, v in cm.items()},
            # this process's CPU time: the plain forms run here entirely
            "plain_ratio": round(cm["plain"] / cm["raw"], 3),
            "state_ratio": round(cm["state"] / cm["raw"], 3),
            "reward_us": round(cm["plain"] - cm["state"], 1),
            "vec_plain_ratio": round(cm["vec_plain"] / cm["vec_raw"], 3),
            # wall time: the jail and its host are other processes
            "plain_ratio_wall": round(wm["plain"] / wm["raw"], 3),
            "sandboxed_ratio_wall": round(wm["sandboxed"] / wm["raw"], 3),
            "vec_sandboxed_ratio_wall": round(wm["vec_sandboxed"] / wm["vec_raw"], 3),
            "samples_cpu_us": {k: [round(x, 1) for x in v] for k, v in cpu.items()},
            "samples_wall_us": {k: [round(x, 1) for x in v] for k, v in wall.items()}}


__all__ = ["bench_export", "canonical_reward"]

if __name__ == "__main__":  # pragma: no cover
    print(bench_export(sys.argv[1] if len(sys.argv) > 1 else "hopper-hop"))
