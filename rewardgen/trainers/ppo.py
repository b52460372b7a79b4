"""PPO in torch over ``BatchSim``: one file, read it top to bottom (in the spirit of CleanRL).

Per iteration: step all worlds ``rollout_steps`` times (the candidate reward is called once per step
on the whole batch), compute GAE advantages, then a few epochs of clipped-objective minibatch updates.
Details that matter:

* observations are normalised with a running mean/var (exported as ``obs_mean``/``obs_var``, the
  same formula as ``DeterministicPolicy``); rewards are scaled by the running std of the
  discounted return (like SB3's VecNormalize), so rewards of any scale train alike;
* a world that hits the time limit is not "dead": its last reward gets ``gamma * V(final_obs)``
  added (bootstrap on truncation), a terminated world gets nothing;
* actor and critic are separate tanh MLPs (64x64); the actor's mean is the exported policy,
  clipped to [-1, 1] as the env expects; the Gaussian's log-std is a state-independent parameter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rewardgen.batchsim import BatchSim
from rewardgen.policy import PolicyExport
from rewardgen.tasks import Task
from rewardgen.trainers.base import BatchReward, ProgressFn, TrainConfig, Trainer, TrainOutput

CheckpointFn = Callable[[int, PolicyExport], None]


@dataclass
class PPOHyperparams:
    num_envs: int | None = 128  # worlds; None: TrainConfig.num_envs
    rollout_steps: int = 16  # steps per world per iteration (batch = num_envs * rollout_steps)
    epochs: int = 5
    minibatches: int = 4
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    hidden: tuple[int, ...] = (64, 64)
    init_log_std: float = 0.0
    clip_obs: float = 10.0
    clip_reward: float = 10.0
    normalize_reward: bool = True
    checkpoints: int = 10  # evenly spaced checkpoints kept in memory (and passed to on_checkpoint)
    # 1 thread: the update's matrices are tiny and the physics has its own native pool; measured
    # faster than 2 on 2 cores (docs/benchmarks.md). None leaves torch's setting alone.
    torch_threads: int | None = 1
    sim_threads: int | None = None  # native physics threads (None: all cores)


class RunningMeanStd:
    """Parallel-algorithm running mean/variance (float64), as SB3's VecNormalize keeps it."""

    def __init__(self, shape: tuple[int, ...] = ()):
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        b_mean, b_var, b_count = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total


def mlp(sizes: list[int], out_std: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, out_std if last else np.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], init_log_std: float):
        super().__init__()
        self.actor = mlp([obs_dim, *hidden, act_dim], out_std=0.01)
        self.critic = mlp([obs_dim, *hidden, 1], out_std=1.0)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def dist(self, x: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.actor(x), self.log_std.exp().expand(x.shape[0], -1))


class PPOTrainer(Trainer):
    """Fast on-policy training: batched native physics + torch PPO (see module docstring).

    :param hp: hyperparameters (defaults tuned for 2 CPU cores, see docs/benchmarks.md).
    :param env_reward: train on the gymnasium env's own reward instead of the candidate's
        (the "human" baseline; ``reward`` may then be None).
    :param on_checkpoint: called with (env_steps, PolicyExport) at each checkpoint; the trainer
        itself never writes files.
    """

    name = "ppo"

    def __init__(self, hp: PPOHyperparams | None = None, env_reward: bool = False,
                 on_checkpoint: CheckpointFn | None = None):
        self.hp = hp or PPOHyperparams()
        self.env_reward = env_reward
        self.on_checkpoint = on_checkpoint

    # -- export ----------------------------------------------------------------------------------
    def export(self, agent: ActorCritic, obs_rms: RunningMeanStd) -> PolicyExport:
        arrays = {"obs_mean": obs_rms.mean.astype(np.float32), "obs_var": obs_rms.var.astype(np.float32)}
        layers = [m for m in agent.actor if isinstance(m, nn.Linear)]
        for i, lin in enumerate(layers):
            arrays[f"w{i}"] = lin.weight.detach().cpu().numpy().copy()
            arrays[f"b{i}"] = lin.bias.detach().cpu().numpy().copy()
        return PolicyExport(arrays, activation="tanh", clip_obs=self.hp.clip_obs, epsilon=1e-8)

    # -- training --------------------------------------------------------------------------------
    def train(self, task: Task, reward: BatchReward | None, config: TrainConfig,
              progress: ProgressFn) -> TrainOutput:
        hp = self.hp
        start = time.perf_counter()
        if hp.torch_threads:
            torch.set_num_threads(hp.torch_threads)
        device = torch.device(config.device)
        torch.manual_seed(config.seed)
        gen = torch.Generator(device=device).manual_seed(config.seed)
        n = int(hp.num_envs or config.num_envs)
        T = hp.rollout_steps
        sim = BatchSim(task, n, seed=config.seed, nthread=hp.sim_threads)
        obs_dim, act_dim = sim.obs_dim, sim.act_dim
        agent = ActorCritic(obs_dim, act_dim, hp.hidden, hp.init_log_std).to(device)
        optimizer = torch.optim.Adam(agent.parameters(), lr=hp.learning_rate, eps=1e-5)

        obs_rms = RunningMeanStd((obs_dim,))
        ret_rms = RunningMeanStd(())
        discounted = np.zeros(n)
        eps = 1e-8

        def normalize(o: np.ndarray) -> torch.Tensor:
            x = np.clip((o - obs_rms.mean) / np.sqrt(obs_rms.var + eps), -hp.clip_obs, hp.clip_obs)
            return torch.as_tensor(x, dtype=torch.float32, device=device)

        # rollout storage
        obs_buf = torch.zeros((T, n, obs_dim), device=device)
        act_buf = torch.zeros((T, n, act_dim), device=device)
        logp_buf = torch.zeros((T, n), device=device)
        rew_buf = torch.zeros((T, n), device=device)
        done_buf = torch.zeros((T, n), device=device)
        val_buf = torch.zeros((T, n), device=device)

        raw_obs = sim.reset()
        obs_rms.update(raw_obs)
        batch = n * T
        iterations = max(1, -(-int(config.steps) // batch))
        total_steps = iterations * batch
        ckpt_every = max(batch, total_steps // max(hp.checkpoints, 1))
        checkpoints: list[tuple[int, PolicyExport]] = []
        next_ckpt = ckpt_every
        global_step = 0
        losses: dict[str, float] = {}

        for it in range(iterations):
            if hp.anneal_lr:
                optimizer.param_groups[0]["lr"] = hp.learning_rate * (1.0 - it / iterations)
            # ---- collect a rollout --------------------------------------------------------------
            with torch.no_grad():
                for t in range(T):
                    x = normalize(raw_obs)
                    dist = agent.dist(x)
                    action = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=gen, device=device)
                    obs_buf[t], act_buf[t] = x, action
                    logp_buf[t] = dist.log_prob(action).sum(-1)
                    val_buf[t] = agent.value(x)
                    res = sim.step(action.clamp(-1.0, 1.0).cpu().numpy())
                    global_step += n
                    if self.env_reward:
                        r = res.env_reward.astype(np.float64)
                        if reward is not None:
                            reward(sim.state(device), global_step)
                    else:
                        r = reward(sim.state(device), global_step)
                    done = res.done
                    if reward is not None:
                        reward.end_episodes(done, global_step)
                    if hp.normalize_reward:
                        discounted = discounted * hp.gamma + r
                        ret_rms.update(discounted)
                        r = np.clip(r / np.sqrt(ret_rms.var + eps), -hp.clip_reward, hp.clip_reward)
                        discounted[done] = 0.0
                    r_t = torch.as_tensor(r, dtype=torch.float32, device=device)
                    if res.truncated.any():  # bootstrap: the episode was cut, not ended
                        idx = np.flatnonzero(res.truncated)
                        final = normalize(res.final_obs[idx])
                        r_t[torch.as_tensor(idx, device=device)] += hp.gamma * agent.value(final)
                    rew_buf[t] = r_t
                    done_buf[t] = torch.as_tensor(done, dtype=torch.float32, device=device)
                    raw_obs = res.obs
                    obs_rms.update(raw_obs)

                # ---- GAE --------------------------------------------------------------------------
                next_value = agent.value(normalize(raw_obs))
                adv = torch.zeros((T, n), device=device)
                last = torch.zeros(n, device=device)
                for t in reversed(range(T)):
                    nv = next_value if t == T - 1 else val_buf[t + 1]
                    nonterminal = 1.0 - done_buf[t]
                    delta = rew_buf[t] + hp.gamma * nv * nonterminal - val_buf[t]
                    last = delta + hp.gamma * hp.gae_lambda * nonterminal * last
                    adv[t] = last
                returns = adv + val_buf

            # ---- optimise -----------------------------------------------------------------------
            b_obs, b_act = obs_buf.reshape(batch, obs_dim), act_buf.reshape(batch, act_dim)
            b_logp, b_adv = logp_buf.reshape(batch), adv.reshape(batch)
            b_ret, b_val = returns.reshape(batch), val_buf.reshape(batch)
            mb = batch // hp.minibatches
            for _ in range(hp.epochs):
                perm = torch.randperm(batch, generator=gen, device=device)
                kl_stop = False
                for k in range(hp.minibatches):
                    i = perm[k * mb:(k + 1) * mb]
                    dist = agent.dist(b_obs[i])
                    logp = dist.log_prob(b_act[i]).sum(-1)
                    ratio = (logp - b_logp[i]).exp()
                    a = b_adv[i]
                    a = (a - a.mean()) / (a.std() + 1e-8)
                    pg_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - hp.clip_coef, 1 + hp.clip_coef)).mean()
                    v_loss = 0.5 * (agent.value(b_obs[i]) - b_ret[i]).pow(2).mean()
                    entropy = dist.entropy().sum(-1).mean()
                    loss = pg_loss - hp.ent_coef * entropy + hp.vf_coef * v_loss
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), hp.max_grad_norm)
                    optimizer.step()
                    with torch.no_grad():
                        approx_kl = float(((ratio - 1) - (logp - b_logp[i])).mean())
                    if hp.target_kl is not None and approx_kl > hp.target_kl:
                        kl_stop = True
                        break
                if kl_stop:
                    break
            losses = {"policy_loss": float(pg_loss), "value_loss": float(v_loss),
                      "entropy": float(entropy), "approx_kl": approx_kl}
            progress(global_step)
            if global_step >= next_ckpt or it == iterations - 1:
                export = self.export(agent, obs_rms)
                checkpoints.append((global_step, export))
                if self.on_checkpoint is not None:
                    self.on_checkpoint(global_step, export)
                next_ckpt += ckpt_every

        seconds = time.perf_counter() - start
        stats = reward.stats.summary() if reward is not None else {}
        sim.close()
        return TrainOutput(policy=self.export(agent, obs_rms), stats=stats, env_steps=global_step,
                           seconds=seconds,
                           extra={"checkpoints": checkpoints, "losses": losses, "num_envs": n,
                                  "env_steps_per_second": global_step / max(seconds, 1e-9)})
