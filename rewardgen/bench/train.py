"""Benchmarks: training throughput and learning quality, rewardgen PPO vs SB3 PPO, side by side.

``throughput`` measures in one run, interleaved: (a) the raw batched simulator with random actions
(no policy, no reward), (b) rewardgen PPO training with a representative multi-component reward,
by default inside the same sandboxed worker process evolve uses (``run_worker``, mode "train",
trainer "ppo"; env-steps/s as the worker measured them, and the worker's peak RSS), (c) SB3 PPO
(our ``SB3Trainer`` settings) over 8 gymnasium envs with the same reward; then b/c and b/a, and where
b's time went (physics, rules, policy, reward, update: the trainer's own clocks). ``throughput_table``
does that for several tasks in one run, by default one per gymnasium env (``THROUGHPUT_TASKS``), every
repeat going over all of them before the next.
``learning`` compares the two trainers on the env's own reward at equal steps.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rewardgen.contract.policy import PolicyExport
from rewardgen.contract.reward import load_reward
from rewardgen.loadavg import load_text
from rewardgen.sim.cpu import BatchSim
from rewardgen.tasks.fitness import make_fitness
from rewardgen.tasks.spec import Task, get_task
from rewardgen.trainers.base import BatchReward, TrainConfig, TrainingStats, TrainOutput

# A reward in the contract that touches what typical candidates touch: a body velocity, heights and
# orientations, joint velocities, actions and contact forces, five components.
REPRESENTATIVE_REWARD = '''
import torch

def compute_reward(s):
    root = next(iter(s.body_pos))
    forward = s.body_linvel[root][:, 0]
    upright = s.body_up[root][:, 2]
    height = s.body_pos[root][:, 2]
    effort = -0.1 * (s.action ** 2).sum(dim=1)
    if len(s.joint_vel):
        jv = torch.stack([s.joint_vel[j] for j in s.joint_vel], dim=1)
        smooth = -1e-3 * (jv ** 2).sum(dim=1)
    else:
        smooth = torch.zeros_like(forward)
    contact = -1e-4 * torch.stack([s.contact_force[b] for b in s.contact_force], dim=1).clamp(max=100.0).sum(dim=1)
    total = forward + 0.1 * upright + 0.05 * height + effort + smooth + contact
    return total, {"forward": forward, "upright": upright, "height": height, "effort": effort,
                   "smooth": smooth, "contact": contact}
'''

TrainRunner = Callable[[Task, str, TrainConfig], TrainOutput]


def peak_rss_mb() -> float:
    """Peak resident set size of this process (MB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def _batch_reward(task: Task, source: str, steps: int, num_envs: int) -> BatchReward:
    return BatchReward(load_reward(source), make_fitness(task.fitness, task.schema), TrainingStats(steps),
                       num_envs, task.episode_length)


def in_process_ppo(task: Task, source: str, config: TrainConfig, **hp: Any) -> TrainOutput:
    """Train rewardgen PPO in this process (the default runner for ``throughput``); ``hp`` over the
    task's own settings (``Task.ppo``) over the defaults, as the worker does."""
    from rewardgen.trainers.ppo import PPOHyperparams, PPOTrainer

    hparams = PPOHyperparams(**(task.ppo | hp))
    n = int(hparams.num_envs or config.num_envs)
    return PPOTrainer(hparams).train(task, _batch_reward(task, source, config.steps, n), config, lambda s: None)


def raw_sim(task: Task, num_worlds: int, seconds: float, seed: int = 0) -> dict:
    """(a) BatchSim stepping with random actions, plus bare ``mujoco.rollout`` of the same model."""
    sim = BatchSim(task, num_worlds, seed=seed)
    sim.reset()
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (64, num_worlds, sim.act_dim)).astype(np.float32)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sim.step(actions[steps % 64])
        sim.state()
        steps += 1
    batchsim_sps = steps * num_worlds / (time.perf_counter() - start)
    # bare physics: mujoco.rollout of the unmodified model, frame skip inside, no sensors/obs/resets
    import mujoco
    from mujoco import _rollout

    m = sim.model
    pool = _rollout.Rollout(nthread=sim.nthread if sim.nthread > 1 else 0)
    datas = [mujoco.MjData(m) for _ in range(max(sim.nthread, 1))]
    state = sim._state.copy()
    out = np.empty((num_worlds, sim.frame_skip, state.shape[1]))
    sens = np.empty((num_worlds, sim.frame_skip, 0))
    ctrl = np.empty((num_worlds, sim.frame_skip, m.nu))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        ctrl[:] = actions[steps % 64][:, None, :]
        pool.rollout([m] * num_worlds, datas, sim.frame_skip, int(mujoco.mjtState.mjSTATE_CTRL), state, None,
                     ctrl, out, sens, None)
        state = out[:, -1].copy()
        steps += 1
    rollout_sps = steps * num_worlds / (time.perf_counter() - start)
    sim.close()
    return {"batchsim_env_steps_per_s": batchsim_sps, "rollout_env_steps_per_s": rollout_sps,
            "num_worlds": num_worlds, "threads": sim.nthread}


class _torch_threads:
    """Run a block with ``n`` torch threads (as the worker does: 1), then restore the setting.

    SB3 with torch's default (one thread per core) was measured up to 30x slower on the shared 2-core
    machine (OpenMP threads spinning against the physics and other work), so (c) runs as SB3 runs
    in the worker, with one thread.
    """

    def __init__(self, n: int):
        self.n = n

    def __enter__(self) -> None:
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.before)


def sb3_throughput(task: Task, source: str, steps: int, seed: int = 0, num_envs: int = 8) -> dict:
    """(c) SB3 PPO with its defaults (our SB3Trainer setup) over DummyVecEnv of ``num_envs`` envs, 1 torch thread."""
    import stable_baselines3  # noqa: F401 - imported before the clock starts: training speed only

    from rewardgen.trainers.sb3 import SB3Trainer

    reward = _batch_reward(task, source, steps, num_envs)
    start = time.perf_counter()
    with _torch_threads(1):
        out = SB3Trainer().train(task, reward, TrainConfig(steps=steps, seed=seed, num_envs=num_envs),
                                 lambda s: None)
    seconds = time.perf_counter() - start
    return {"env_steps": out.env_steps, "seconds": seconds, "env_steps_per_s": out.env_steps / seconds}


def _measure_worker_main() -> None:
    """Entry point of the fresh process ``worker_ppo`` starts: one worker job from stdin, a JSON line out.

    The worker's peak RSS: as the zygote reaped it (``WorkerResult.peak_rss_kb``), or, for a fresh
    worker (the only child of this process), RUSAGE_CHILDREN's max RSS.
    """
    from rewardgen.procs import WorkerLimits, run_worker

    job = json.loads(sys.stdin.read())
    wall = float(job.pop("wall_seconds", 1800.0))
    res = run_worker(job, WorkerLimits(wall_seconds=wall))
    # forked from the zygote, the worker is the zygote's child: the zygote reports its peak RSS
    rss_kb = res.peak_rss_kb or resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = res.result or {}
    print(json.dumps({"stage": res.stage, "error": res.error, "env_steps": r.get("env_steps"),
                      "seconds": r.get("seconds"), "timing": (r.get("extra") or {}).get("timing"),
                      "wall_seconds": res.seconds, "isolation": res.isolation,
                      "worker_peak_rss_mb": rss_kb / 1024.0 if sys.platform != "darwin" else rss_kb / 2**20}))


def worker_ppo(task: Task, source: str, config: TrainConfig, wall_seconds: float = 1800.0) -> dict:
    """(b) through the isolation evolve uses: ``run_worker`` job mode "train", trainer "ppo" (its defaults).

    Runs in a fresh Python process so the worker's peak RSS can be read exactly. Returns the
    worker's own ``env_steps`` and ``seconds`` (training time measured inside the worker, from
    building the simulator to the last update; interpreter start and imports excluded),
    ``wall_seconds`` (the whole worker, start-up included) and ``worker_peak_rss_mb``.
    """
    job = {"mode": "train", "task": task.to_dict(), "source": source, "steps": int(config.steps),
           "seed": int(config.seed), "trainer": "ppo", "num_envs": int(config.num_envs),
           "wall_seconds": wall_seconds}
    env = dict(os.environ)
    from rewardgen.resources import PACKAGE_PARENT as root
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-c", "from rewardgen.bench.train import _measure_worker_main as m; m()"],
                          input=json.dumps(job), capture_output=True, text=True, env=env,
                          timeout=wall_seconds + 120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker benchmark failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(lines[-1])
    if out["stage"] != "ok":
        raise RuntimeError(f"worker training failed ({out['stage']}): {out['error']}")
    out["env_steps_per_s"] = out["env_steps"] / out["seconds"]
    return out


#: one task per gymnasium MuJoCo env (the eleven behind the sixteen tasks), cheapest physics first: the
#: suite's task where there is one, as users train it (with the task's own PPO settings)
THROUGHPUT_TASKS = ("inverted-pendulum-balance", "double-pendulum-balance", "reacher-reach", "pusher-push",
                    "swimmer-swim", "halfcheetah-run", "hopper-hop", "walker-run", "ant-run", "humanoid-stand-up",
                    "humanoid-run")

#: where (b)'s training time goes, from the trainer's ``timing`` (seconds of its threads; with the helper
#: thread physics and rules run beside the reward's booking, so the shares can add up to more than 1)
SPLIT_KEYS = ("physics", "rules", "policy", "reward", "update", "setup")


def _split(timing: dict | None) -> dict[str, float] | None:
    """Shares of the training's wall time (``total_s``): physics (``mujoco.rollout``, dynamics and probe),
    rules (the simulator's Python: observations, terminations, env reward, State, resets), policy (per-step
    inference: normalisation, the actor, the observation statistics; and the batched passes after a rollout),
    reward (the candidate's function and its books), update (PPO's epochs), setup (simulator and networks)."""
    if not timing or not timing.get("total_s") or "physics_s" not in timing:
        return None
    total = timing["total_s"]
    return {k: timing.get(f"{k}_s", 0.0) / total for k in SPLIT_KEYS}


def _one_repeat(task: Task, num_worlds: int, ppo_steps: int, sb3_steps: int, sim_seconds: float, seed: int,
                reward_source: str, mode: str, run: TrainRunner) -> dict:
    """(a), (b) and (c) of one task, once, in turn."""
    raw = raw_sim(task, num_worlds, sim_seconds, seed=seed)
    out = {"a_batchsim": raw["batchsim_env_steps_per_s"], "a_rollout": raw["rollout_env_steps_per_s"]}
    config = TrainConfig(steps=ppo_steps, seed=seed, num_envs=num_worlds)
    if mode == "worker":
        w = worker_ppo(task, reward_source, config)
        out |= {"b": w["env_steps_per_s"], "b_worker_wall": w["env_steps"] / w["wall_seconds"],
                "rss": w["worker_peak_rss_mb"], "isolation": w["isolation"], "timing": w.get("timing")}
    else:
        start = time.perf_counter()
        res = run(task, reward_source, config)
        out |= {"b": res.env_steps / (time.perf_counter() - start), "rss": peak_rss_mb(), "timing": res.timing}
    out["c"] = sb3_throughput(task, reward_source, sb3_steps, seed=seed)["env_steps_per_s"]
    return out


def _summarise(task_id: str, num_worlds: int, repeats: list[dict], mode: str, ppo_steps: int, sb3_steps: int) -> dict:
    """Medians over repeats (ratios: medians of the per-repeat ratios, so that a slow phase of a shared
    machine, which hits a repeat's a, b and c alike, cancels out)."""
    med = statistics.median
    col = {k: [r[k] for r in repeats] for k in ("a_batchsim", "a_rollout", "b", "c")}
    a_sim, a_roll, b, c = col["a_batchsim"], col["a_rollout"], col["b"], col["c"]
    result = {
        "task": task_id, "env": get_task(task_id).env_id, "num_worlds": num_worlds, "repeats": len(repeats),
        "b_mode": mode, "ppo_steps": ppo_steps, "sb3_steps": sb3_steps,
        "a_raw_batchsim_env_steps_per_s": med(a_sim),
        "a_raw_rollout_env_steps_per_s": med(a_roll),
        "b_rewardgen_ppo_env_steps_per_s": med(b),
        "c_sb3_ppo_env_steps_per_s": med(c),
        "ratio_b_over_c": med([x / y for x, y in zip(b, c)]),
        "ratio_b_over_a_batchsim": med([x / y for x, y in zip(b, a_sim)]),
        "ratio_b_over_a_rollout": med([x / y for x, y in zip(b, a_roll)]),
        "peak_rss_mb": max(r["rss"] for r in repeats),
        "runs": {"a_batchsim": a_sim, "a_rollout": a_roll, "b": b, "c": c},
    }
    splits = [s for s in (_split(r.get("timing")) for r in repeats) if s]
    if splits:
        result["b_split"] = {k: med([s[k] for s in splits]) for k in SPLIT_KEYS}
        result["runs"]["b_timing"] = [r.get("timing") for r in repeats]
    if mode == "worker":  # the worker's whole life, interpreter start and imports included
        result["b_worker_wall_env_steps_per_s"] = med([r["b_worker_wall"] for r in repeats])
        result["runs"]["b_worker_wall"] = [r["b_worker_wall"] for r in repeats]
        result["b_worker_isolation"] = repeats[-1]["isolation"]
    return result


def throughput(task_id: str, ppo_steps: int = 200_000, sb3_steps: int = 16_384, sim_seconds: float = 5.0,
               num_worlds: int | None = None, repeats: int = 3, seed: int = 0,
               reward_source: str = REPRESENTATIVE_REWARD, in_process: bool = False,
               runner: TrainRunner | None = None, **ppo_hp: Any) -> dict:
    """Side-by-side throughput of (a) raw sim, (b) rewardgen PPO training, (c) SB3 PPO training.

    :param num_worlds: worlds of (a) and (b); default: the task's PPO setting, else PPO's default.
    :param repeats: run (a), (b), (c) in turn this many times; medians (and medians of the per-repeat
        ratios) are reported, so slow phases of a shared machine hit all three alike.
    :param in_process: train (b) in this process instead of the sandboxed worker (then ``ppo_hp``
        overrides PPOHyperparams, e.g. rollout_steps=16, and the peak RSS is this process's).
    :param runner: custom (b): ``runner(task, reward_source, TrainConfig) -> TrainOutput`` (in process).
    """
    return throughput_table([task_id], ppo_steps=ppo_steps, sb3_steps=sb3_steps, sim_seconds=sim_seconds,
                            num_worlds=num_worlds, repeats=repeats, seed=seed, reward_source=reward_source,
                            in_process=in_process, runner=runner, **ppo_hp)["rows"][0]


def throughput_table(tasks: list[str] | tuple[str, ...] = THROUGHPUT_TASKS, ppo_steps: int = 200_000,
                     sb3_steps: int = 16_384, sim_seconds: float = 5.0, num_worlds: int | None = None,
                     repeats: int = 3, seed: int = 0, reward_source: str = REPRESENTATIVE_REWARD,
                     in_process: bool = False, runner: TrainRunner | None = None,
                     say: Callable[[str], None] | None = None, **ppo_hp: Any) -> dict:
    """``throughput`` of several tasks side by side in one run: every repeat runs (a), (b), (c) of each
    task in turn before the next repeat starts, so a slow phase of the machine spreads over the tasks.
    Returns ``{"rows": [one throughput result per task], "load": {"before", "after"}, ...}``."""
    from rewardgen.trainers.ppo import PPOHyperparams

    if ppo_hp and not in_process and runner is None:
        raise ValueError("PPO hyperparameter overrides need in_process=True "
                         "(the worker trains with the task's settings over the defaults)")
    mode = "in-process" if (in_process or runner is not None) else "worker"
    plan = []
    for task_id in tasks:
        task = get_task(task_id)
        n = int(num_worlds or task.ppo.get("num_envs") or PPOHyperparams().num_envs or 8)
        run = runner or functools.partial(in_process_ppo, num_envs=n, **ppo_hp)
        plan.append((task_id, task, n, run))
    load_before = load_text()
    per_task: dict[str, list[dict]] = {task_id: [] for task_id, *_ in plan}
    for r in range(repeats):
        for task_id, task, n, run in plan:
            one = _one_repeat(task, n, ppo_steps, sb3_steps, sim_seconds, seed + r, reward_source, mode, run)
            per_task[task_id].append(one)
            if say is not None:
                say(f"repeat {r + 1}/{repeats} {task_id}: a {one['a_rollout']:,.0f}, b {one['b']:,.0f}, "
                    f"c {one['c']:,.0f} env-steps/s (b/a {one['b'] / one['a_rollout']:.2f}, "
                    f"b/c {one['b'] / one['c']:.1f}); load {load_text()}")
    rows = [_summarise(task_id, n, per_task[task_id], mode, ppo_steps, sb3_steps) for task_id, _, n, _ in plan]
    return {"rows": rows, "repeats": repeats, "ppo_steps": ppo_steps, "sb3_steps": sb3_steps,
            "sim_seconds": sim_seconds, "b_mode": mode, "cores": os.cpu_count(),
            "load": {"before": load_before, "after": load_text()}}


def _fitness(task: Task, export: PolicyExport, episodes: int, seed: int) -> float:
    from rewardgen.evaluate.evaluator import evaluate_policy

    return float(evaluate_policy(task, export, episodes, seed)["fitness"])


def learning(task_id: str, steps: int, seeds: list[int] | tuple[int, ...] = (0, 1, 2), episodes: int | None = None,
             include_sb3: bool = True, **ppo_hp: Any) -> dict:
    """rewardgen PPO vs SB3 PPO on the env's own reward at equal steps; median trusted fitness.
    rewardgen PPO trains with the task's own settings (``Task.ppo``) under ``ppo_hp``."""
    from rewardgen.trainers.ppo import PPOHyperparams, PPOTrainer

    task = get_task(task_id)
    episodes = episodes or task.eval_episodes
    rows: dict[str, list[dict]] = {"rewardgen_ppo": [], "sb3_ppo": []}
    for seed in seeds:
        start = time.perf_counter()
        out = PPOTrainer(PPOHyperparams(**(task.ppo | ppo_hp)), env_reward=True).train(
            task, None, TrainConfig(steps=steps, seed=seed), lambda s: None)
        rows["rewardgen_ppo"].append({"seed": seed, "seconds": time.perf_counter() - start,
                                      "fitness": _fitness(task, out.policy, episodes, 10_000 + seed)})
        if include_sb3:
            start = time.perf_counter()
            out = _sb3_env_reward(task, steps, seed)
            rows["sb3_ppo"].append({"seed": seed, "seconds": time.perf_counter() - start,
                                    "fitness": _fitness(task, out, episodes, 10_000 + seed)})
    summary = {k: {"median_fitness": statistics.median(r["fitness"] for r in v),
                   "median_seconds": statistics.median(r["seconds"] for r in v), "runs": v}
               for k, v in rows.items() if v}
    return {"task": task_id, "steps": steps, "seeds": list(seeds), "episodes": episodes, **summary,
            "peak_rss_mb": peak_rss_mb()}


def _sb3_env_reward(task: Task, steps: int, seed: int):
    """SB3 PPO exactly as SB3Trainer sets it up, but on the gymnasium env's own reward."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rewardgen.trainers.sb3 import export_policy

    envs = DummyVecEnv([task.make_env for _ in range(8)])
    envs.seed(seed)
    venv = VecNormalize(envs, norm_obs=True, norm_reward=True, gamma=0.99)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=64, n_epochs=10, learning_rate=3e-4,
                gae_lambda=0.95, gamma=0.99, ent_coef=0.0, seed=seed, verbose=0)
    with _torch_threads(1):
        model.learn(total_timesteps=steps)
    return export_policy(model, venv)
