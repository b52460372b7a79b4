"""How fast MuJoCo Warp steps a task on a device (``rewardgen bench warp``)."""

from __future__ import annotations

import time

import torch

from rewardgen.sim.warp import WarpSim
from rewardgen.tasks.spec import get_task


def warp_throughput(task_id: str, num_worlds: int = 4096, seconds: float = 10.0, device: str = "cuda",
                    seed: int = 0) -> dict:
    """Physics-only env-steps/s of MuJoCo Warp for a task (random constant actions, no policy, no reward),
    and the env-steps/s of the full ``WarpSim.step`` (observations, termination, env reward, State
    fields, resets; torch output, no host copies).

    Physics-only means ``frame_skip`` substeps plus what gym reads (the CUDA graph ``WarpSim`` replays
    per env step), i.e. the number to compare with the ">= 1M physics env-steps/s" target.
    """
    task = get_task(task_id)
    t0 = time.perf_counter()
    sim = WarpSim(task, num_worlds, seed=seed, device=device, output="torch")
    sim.reset()
    g = torch.Generator(device=sim.device).manual_seed(seed)
    actions = torch.rand((16, num_worlds, sim.act_dim), generator=g, device=sim.device) * 2 - 1
    for i in range(3):  # compile, load modules, capture graphs
        sim.step(actions[i])
    sim.synchronize()
    setup_s = time.perf_counter() - t0

    def timed(fn, budget: float) -> tuple[int, float]:
        steps, start = 0, time.perf_counter()
        while True:
            for _ in range(8):
                fn(steps)
                steps += 1
            sim.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= budget:
                return steps, elapsed

    sim._v["ctrl"].copy_(actions[0])
    phys_steps, phys_s = timed(lambda i: sim._run("physics", sim._physics), seconds / 2)
    sim.reset()
    full_steps, full_s = timed(lambda i: sim.step(actions[i % 16]), seconds / 2)
    out = {
        "task": task_id, "device": str(sim.wp_device), "num_worlds": num_worlds,
        "cuda_graphs": bool(sim._use_graph),
        "physics_env_steps_per_s": phys_steps * num_worlds / phys_s,
        "physics_substeps_per_s": phys_steps * num_worlds * sim.frame_skip / phys_s,
        "warpsim_env_steps_per_s": full_steps * num_worlds / full_s,
        "setup_s": setup_s, "frame_skip": sim.frame_skip,
    }
    sim.close()
    return out
