"""PPO in torch over a batched simulator, in the spirit of CleanRL: ``PPOTrainer.train`` reads top to bottom.

Per iteration: collect a rollout (step all worlds ``rollout_steps`` times; the candidate reward is
called once per step on the whole batch: ``rollout``), compute GAE advantages (``gae``), then a few
epochs of clipped-objective minibatch updates (``ppo_loss``). Details that matter:

* observations are normalised with a running mean/var (exported as ``obs_mean``/``obs_var``, the
  same formula as ``DeterministicPolicy``); rewards are scaled by the running std of the
  discounted return (like SB3's VecNormalize), so rewards of any scale train alike (``normalize``);
* a world that hits the time limit is not "dead": its last reward gets ``gamma * V(final_obs)``
  added (bootstrap on truncation), a terminated world gets nothing;
* actor and critic are separate tanh MLPs (64x64); the actor's mean is the exported policy,
  clipped to [-1, 1] as the env expects; the Gaussian's log-std is a state-independent parameter
  (``agent``);
* on the CPU one helper thread uses the second core (``rollout.PipelinedCollector``): it steps the
  physics while this thread books the previous step's reward, and backpropagates the critic's loss
  while this thread does the actor's. Neither changes a number: the same seed gives the same weights
  with or without it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rewardgen.contract.policy import PolicyExport
from rewardgen.sim import make_sim
from rewardgen.sim.protocol import TimedSimulator
from rewardgen.tasks.spec import Task
from rewardgen.trainers.agent import ActorCritic
from rewardgen.trainers.base import (
    BatchReward,
    ProgressFn,
    ResumeStateError,
    TrainConfig,
    Trainer,
    TrainOutput,
    pack_resume_state,
    unpack_resume_state,
)
from rewardgen.trainers.gae import bootstrap_truncations, gae
from rewardgen.trainers.normalize import Normalization, RunningMeanStd
from rewardgen.trainers.ppo_loss import approx_kl, clipped_objective, value_loss
from rewardgen.trainers.rollout import Batch, Minibatch, PipelinedCollector, RolloutCollector, Worlds


@dataclass
class PPOHyperparams:
    """PPO's settings; the defaults are tuned for 2 CPU cores (docs/benchmarks.md). A task may set
    its own (``Task.ppo``)."""

    num_envs: int | None = 128
    """worlds simulated together; None: ``TrainConfig.num_envs``"""
    rollout_steps: int = 16
    """steps per world per iteration (a rollout is num_envs * rollout_steps env-steps)"""
    # 2 epochs x 4 minibatches of 512 at a constant 2e-3: on halfcheetah-run at 300k steps, median fitness
    # 4.0 over 10 seeds against 1.6 for 3 x 4 at 4e-4 (and SB3 PPO's 1.9), in two thirds of the update
    # time; also better at 1M steps and on ant-run and halfcheetah-run-backward (docs/benchmarks.md)
    epochs: int = 2
    """passes over each rollout"""
    minibatches: int = 4
    """minibatches per pass (each rollout_steps * num_envs / minibatches samples)"""
    learning_rate: float = 2e-3
    """Adam's step size"""
    anneal_lr: bool = False
    """anneal the learning rate linearly to 0 over the training (over short budgets it cost a third of
    the fitness)"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE's lambda: 0 trusts the critic's one-step estimate, 1 the observed returns"""
    clip_coef: float = 0.2
    """how far an update may move the probability ratio of an action from 1"""
    clip_vloss: bool = False
    """clip the critic's update by clip_coef as the policy's (CleanRL's option)"""
    ent_coef: float = 0.0
    """weight of the entropy bonus"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    max_grad_norm: float = 0.5
    """the gradients' global norm is clipped to this"""
    target_kl: float | None = None
    """stop a rollout's updates once the approximate KL from the collecting policy exceeds this; None: never"""
    hidden: tuple[int, ...] = (64, 64)
    """hidden layer sizes of the actor and of the critic"""
    init_log_std: float = -0.5
    """initial log-std of the exploration noise: std 0.61 in action units, each action spanning [-1, 1]
    (1.0 learned far worse)"""
    clip_obs: float = 10.0
    """normalised observations are clipped to +-this (the exported policy does the same)"""
    clip_reward: float = 10.0
    """normalised rewards are clipped to +-this"""
    normalize_reward: bool = True
    """divide rewards by the running std of the discounted return"""
    torch_threads: int | None = 1
    """torch's threads: 1, since the update's matrices are tiny and the physics has its own native pool
    (measured faster than 2 on 2 cores, docs/benchmarks.md); None leaves torch's setting alone"""
    sim_threads: int | None = None
    """native physics threads; None: all cores"""
    sim: str = "cpu"
    """simulator: "cpu" (BatchSim on mujoco.rollout) or "warp" (MuJoCo Warp, rewardgen[gpu])"""
    sim_device: str | None = None
    """Warp's device; None: ``TrainConfig.device``"""
    use_helper_thread: bool = True
    """on the CPU, collect with ``PipelinedCollector``: a helper thread runs step t+1's physics while
    this one books step t's reward, and the critic's backward pass while this one does the actor's.
    Same results to the bit, faster on 2 cores (docs/benchmarks.md)"""


def describe_ppo(hp: PPOHyperparams) -> list[str]:
    """What training does with a reward, in sentences (for the proposer), from these settings."""
    n, T = int(hp.num_envs or 8), hp.rollout_steps
    hidden = "x".join(str(h) for h in hp.hidden)
    lines = [f"Training is rewardgen's PPO: each update collects {T} steps of all {n} worlds ({n * T:,} env-steps), "
             f"then runs {hp.epochs} epochs of {hp.minibatches} minibatches at learning rate {hp.learning_rate:g}"
             f"{' (annealed to 0)' if hp.anneal_lr else ''}; discount gamma {hp.gamma:g}, GAE lambda "
             f"{hp.gae_lambda:g}, clip {hp.clip_coef:g}. Policy and critic are separate {hidden} tanh MLPs; exploration "
             f"is Gaussian noise with a learned std starting at {math.exp(hp.init_log_std):.2f} in action units (each "
             "action spans -1 to 1).",
             f"With gamma {hp.gamma:g} the value PPO learns looks about {1 / (1 - hp.gamma):,.0f} steps ahead (1/(1 - "
             f"gamma)): an episode's end {3 / (1 - hp.gamma):,.0f} steps off lowers the discounted worth of a constant "
             f"per-step bonus by only about {hp.gamma ** round(3 / (1 - hp.gamma)):.0%}, so where a failure begins "
             "long before the episode ends, the states on the way to it have to pay less themselves."]
    if hp.normalize_reward:
        lines.append(f"Before PPO uses your reward it is divided by a running estimate of the standard deviation of "
                     f"the discounted return and clipped to +-{hp.clip_reward:g}: the reward's overall scale matters "
                     "little, the relative size of its terms does.")
    lines.append("A world that reaches the time limit is not treated as failed (its value is bootstrapped); a world "
                 "that terminates gets no further reward.")
    return lines


class PPOTrainer(Trainer):
    """Fast on-policy training: batched native physics + torch PPO (see module docstring).

    :param hp: hyperparameters (defaults tuned for 2 CPU cores, see docs/benchmarks.md).
    :param env_reward: train on the gymnasium env's own reward instead of the candidate's
        (the "human" baseline; ``reward`` may then be None).
    The trainer never writes files: the policy and the resume state come back in ``TrainOutput``.
    """

    name = "ppo"
    supports_resume = True  # TrainConfig.resume: see resume_state/restore_state below

    def __init__(self, hp: PPOHyperparams | None = None, env_reward: bool = False):
        self.hp = hp or PPOHyperparams()
        self.env_reward = env_reward

    def export(self, agent: ActorCritic, obs_rms: RunningMeanStd) -> PolicyExport:
        arrays = {"obs_mean": obs_rms.mean.cpu().numpy().astype(np.float32),
                  "obs_var": obs_rms.var.cpu().numpy().astype(np.float32)}
        layers = [m for m in agent.actor if isinstance(m, nn.Linear)]
        for i, lin in enumerate(layers):
            arrays[f"w{i}"] = lin.weight.detach().cpu().numpy().copy()
            arrays[f"b{i}"] = lin.bias.detach().cpu().numpy().copy()
        return PolicyExport(arrays, activation="tanh", clip_obs=self.hp.clip_obs, epsilon=1e-8)

    def train(self, task: Task, reward: BatchReward | None, config: TrainConfig,
              progress: ProgressFn) -> TrainOutput:
        hp, start = self.hp, time.perf_counter()
        # ---- set up: seeds, the simulated worlds, actor-critic, optimiser, normalisation ----------
        if hp.torch_threads:
            torch.set_num_threads(hp.torch_threads)
        device = torch.device(config.device)
        torch.manual_seed(config.seed)  # the weights' initialisation
        gen = torch.Generator(device=device).manual_seed(config.seed)  # the action noise and the shuffles
        n = int(hp.num_envs or config.num_envs)
        # BatchSim hands back numpy arrays (viewed as CPU tensors without copying); WarpSim hands back
        # tensors on its device. Either way the whole rollout stays on ``device``.
        sim = make_sim(task, n, seed=config.seed, sim=hp.sim, device=hp.sim_device or config.device,
                       nthread=hp.sim_threads, output="torch")
        agent = ActorCritic(sim.obs_dim, sim.act_dim, hp.hidden, hp.init_log_std).to(device)
        # fused Adam: one kernel for all parameters instead of a dozen small ops per parameter
        optimizer = torch.optim.Adam(agent.parameters(), lr=hp.learning_rate, eps=1e-5, fused=True)
        norm = Normalization(sim.obs_dim, n, hp.gamma, hp.clip_obs, hp.clip_reward, hp.normalize_reward, device)
        resumed_from, worlds = 0, None  # env-steps of earlier slices, and their worlds where they left them
        if config.resume is not None:
            resumed_from, worlds = restore_state(config.resume, agent, optimizer, norm.obs_rms, norm.ret_rms, gen)
        # the helper thread pays on the CPU only: on a GPU the kernels are asynchronous already
        pipelined = hp.use_helper_thread and hp.sim == "cpu" and device.type == "cpu"
        timing = dict.fromkeys(("sim_s", "reward_s", "policy_s", "collect_s", "update_s"), 0.0)
        collector = (PipelinedCollector if pipelined else RolloutCollector)(
            sim, agent, norm, reward, hp.rollout_steps, self.env_reward, device, gen, timing)
        iterations = max(1, -(-int(config.steps) // (n * hp.rollout_steps)))
        losses: dict[str, float] = {}
        with collector:
            collector.start(worlds)
            setup_s = time.perf_counter() - start
            for it in range(iterations):
                if hp.anneal_lr:
                    optimizer.param_groups[0]["lr"] = hp.learning_rate * (1.0 - it / iterations)
                # ---- collect a rollout --------------------------------------------------------
                t_collect = time.perf_counter()
                rollout = collector.collect()
                # ---- compute advantages -------------------------------------------------------
                with torch.inference_mode():
                    rewards = bootstrap_truncations(rollout.rewards, rollout.truncated, rollout.truncated_values,
                                                    hp.gamma)
                    advantages, returns = gae(rewards, rollout.values, rollout.dones, rollout.next_value, hp.gamma,
                                              hp.gae_lambda)
                batch = rollout.batch(advantages, returns)
                # ---- update -------------------------------------------------------------------
                t_update = time.perf_counter()
                timing["collect_s"] += t_update - t_collect
                losses = update(agent, optimizer, batch, hp, gen, collector.beside)
                timing["update_s"] += time.perf_counter() - t_update
                # ---- log ----------------------------------------------------------------------
                progress(collector.env_steps)
            seconds = time.perf_counter() - start
            stats = reward.summary() if reward is not None else {}
            worlds = collector.snapshot()
        steps = collector.env_steps
        sim_timing = sim.timing if isinstance(sim, TimedSimulator) else {}
        return TrainOutput(policy=self.export(agent, norm.obs_rms), stats=stats, env_steps=resumed_from + steps,
                           seconds=seconds, slice_env_steps=steps, resumed_from=resumed_from,
                           resume_state=resume_state(resumed_from + steps, agent, optimizer, norm.obs_rms,
                                                     norm.ret_rms, gen, worlds),
                           losses=losses, num_envs=n,
                           timing={"setup_s": setup_s, **timing, **sim_timing, "total_s": seconds})


def update(agent: ActorCritic, optimizer: torch.optim.Optimizer, batch: Batch, hp: PPOHyperparams,
           gen: torch.Generator, beside: Callable[..., Callable[[], torch.Tensor]]) -> dict[str, float]:
    """``hp.epochs`` passes of minibatch updates over one rollout (stopping early past ``hp.target_kl``);
    the last minibatch's losses.

    The critic's part of the loss touches only the critic's weights and the actor's only the actor's,
    so backpropagating them apart gives the summed loss's gradients exactly: ``beside`` runs the
    critic's part (on the collector's helper thread, if it has one) while this thread does the actor's.
    """
    for mb in batch.minibatches(hp.epochs, hp.minibatches, gen):
        optimizer.zero_grad(set_to_none=True)
        critic = beside(_critic_backward, agent, mb, hp)
        pg_loss, ratio, log_ratio = clipped_objective(agent.log_prob(mb.obs, mb.act), mb.log_prob, mb.neg_advantages,
                                                      hp.clip_coef)
        actor_loss = (pg_loss - hp.ent_coef * agent.entropy()) if hp.ent_coef else pg_loss
        actor_loss.backward()
        v_loss = critic()
        nn.utils.clip_grad_norm_(agent.parameters(), hp.max_grad_norm)
        optimizer.step()
        if hp.target_kl is not None and approx_kl(ratio, log_ratio) > hp.target_kl:
            break
    return {"policy_loss": float(pg_loss.detach()), "value_loss": float(v_loss.detach()),
            "entropy": float(agent.entropy().detach()), "approx_kl": approx_kl(ratio, log_ratio)}


def _critic_backward(agent: ActorCritic, mb: Minibatch, hp: PPOHyperparams) -> torch.Tensor:
    """The critic's part of a minibatch's loss, backpropagated (weighted by ``vf_coef``)."""
    loss = value_loss(agent.value(mb.obs), mb.returns, mb.values, hp.clip_coef if hp.clip_vloss else None)
    (hp.vf_coef * loss).backward()
    return loss


# -- resumable state (TrainConfig.resume): npz + JSON header, no pickles --------------------------
def resume_state(env_steps: int, agent: ActorCritic, optimizer: torch.optim.Optimizer, obs_rms: RunningMeanStd,
                 ret_rms: RunningMeanStd, gen: torch.Generator, worlds: Worlds | None = None) -> bytes:
    """Weights, Adam moments, normalisation statistics, the env-step counter and the noise RNG; and
    ``worlds``, the simulator's snapshot (``BatchSim.snapshot`` plus the per-world discounted returns),
    so that the next slice continues each world mid-episode."""
    arrays = {f"agent/{k}": v.detach().cpu().numpy() for k, v in agent.state_dict().items()}
    optim = optimizer.state_dict()
    for idx, entry in optim["state"].items():
        for key, value in entry.items():
            arrays[f"optim/{int(idx)}/{key}"] = torch.as_tensor(value).detach().cpu().numpy()
    for name, rms in (("obs_rms", obs_rms), ("ret_rms", ret_rms)):
        arrays |= {f"{name}/mean": rms.mean.cpu().numpy(), f"{name}/var": rms.var.cpu().numpy(),
                   f"{name}/count": np.asarray(rms.count)}
    arrays["rng/generator"] = gen.get_state().numpy()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in optim["param_groups"]]
    header = {"trainer": "ppo", "env_steps": int(env_steps), "optim_param_groups": groups}
    if worlds is not None:
        header["worlds"] = worlds[0]
        arrays |= {f"worlds/{k}": v for k, v in worlds[1].items()}
    return pack_resume_state(header, arrays)


def restore_state(raw: bytes, agent: ActorCritic, optimizer: torch.optim.Optimizer, obs_rms: RunningMeanStd,
                  ret_rms: RunningMeanStd, gen: torch.Generator) -> tuple[int, Worlds | None]:
    """Load ``resume_state`` bytes into a freshly built trainer; returns the env-steps done before and
    the simulator's snapshot (``(header, arrays)``, None in a state that has none)."""
    header, arrays = unpack_resume_state(raw, trainer="ppo")
    own = agent.state_dict()
    loaded = {}
    for key, tensor in own.items():
        value = arrays.get(f"agent/{key}")
        if value is None or tuple(value.shape) != tuple(tensor.shape):
            raise ResumeStateError(f"resume state lacks or mis-sizes parameter {key!r} (other task or hidden sizes?)")
        loaded[key] = torch.from_numpy(np.array(value))
    agent.load_state_dict(loaded)
    state: dict[int, dict] = {}
    for key, value in arrays.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = torch.from_numpy(np.array(value))
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in header["optim_param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    for name, rms in (("obs_rms", obs_rms), ("ret_rms", ret_rms)):
        rms.mean = torch.as_tensor(np.array(arrays[f"{name}/mean"]), dtype=torch.float64, device=rms.mean.device)
        rms.var = torch.as_tensor(np.array(arrays[f"{name}/var"]), dtype=torch.float64, device=rms.var.device)
        rms.count = float(arrays[f"{name}/count"])
    gen.set_state(torch.from_numpy(np.array(arrays["rng/generator"], dtype=np.uint8)))
    worlds = None
    if isinstance(header.get("worlds"), dict) and "worlds/discounted" in arrays:
        worlds = (header["worlds"], {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("worlds/")})
    return int(header["env_steps"]), worlds
