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
  clipped to [-1, 1] as the env expects; the Gaussian's log-std is a state-independent parameter;
* on the CPU one helper thread uses the second core: it steps the physics while this thread books
  the previous step's reward, and backpropagates the critic's loss while this thread does the
  actor's. Neither changes a number: the same seed gives the same weights with or without it.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rewardgen.contract.policy import PolicyExport
from rewardgen.tasks.spec import Task
from rewardgen.trainers.base import (BatchReward, ProgressFn, ResumeStateError, TrainConfig, Trainer, TrainOutput,
                                     pack_resume_state, unpack_resume_state)
from rewardgen.sim import make_sim



@dataclass
class PPOHyperparams:
    num_envs: int | None = 128  # worlds; None: TrainConfig.num_envs
    rollout_steps: int = 16  # steps per world per iteration (batch = num_envs * rollout_steps)
    # 2 epochs x 4 minibatches of 512 at a constant 2e-3: on halfcheetah-run at 300k steps, median fitness
    # 4.0 over 10 seeds against 1.6 for 3 x 4 at 4e-4 (and SB3 PPO's 1.9), in two thirds of the update
    # time; also better at 1M steps and on ant-run and halfcheetah-run-backward (docs/benchmarks.md)
    epochs: int = 2
    minibatches: int = 4
    learning_rate: float = 2e-3
    anneal_lr: bool = False  # annealing to 0 over short budgets cost a third of the fitness
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_vloss: bool = False  # clip the value update like the policy's (CleanRL's option)
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    hidden: tuple[int, ...] = (64, 64)
    init_log_std: float = -0.5  # exploration std 0.6 of the action range; 1.0 learned far worse
    clip_obs: float = 10.0
    clip_reward: float = 10.0
    normalize_reward: bool = True
    # 1 thread: the update's matrices are tiny and the physics has its own native pool; measured
    # faster than 2 on 2 cores (docs/benchmarks.md). None leaves torch's setting alone.
    torch_threads: int | None = 1
    sim_threads: int | None = None  # native physics threads (None: all cores)
    sim: str = "cpu"  # "cpu" (BatchSim on mujoco.rollout) or "warp" (MuJoCo Warp, rewardgen[gpu])
    sim_device: str | None = None  # Warp device; None: TrainConfig.device
    # CPU: a helper thread runs step t+1's physics while this one books step t's reward (candidate
    # code, episode books, normalisation), and the critic's backward pass while this one does the
    # actor's. Same results to the bit, faster on 2 cores (docs/benchmarks.md).
    use_helper_thread: bool = True


def describe_ppo(hp: PPOHyperparams) -> list[str]:
    """What training does with a reward, in sentences (for the proposer), from these settings."""
    n, T = int(hp.num_envs or 8), hp.rollout_steps
    hidden = "x".join(str(h) for h in hp.hidden)
    lines = [f"Training is rewardgen's PPO: each update collects {T} steps of all {n} worlds ({n * T:,} env-steps), "
             f"then runs {hp.epochs} epochs of {hp.minibatches} minibatches at learning rate {hp.learning_rate:g}"
             f"{' (annealed to 0)' if hp.anneal_lr else ''}; discount gamma {hp.gamma:g}, GAE lambda "
             f"{hp.gae_lambda:g}, clip {hp.clip_coef:g}. Policy and critic are separate {hidden} tanh MLPs; exploration "
             f"is Gaussian noise with a learned std starting at {math.exp(hp.init_log_std):.2f} of the action range."]
    if hp.normalize_reward:
        lines.append(f"Before PPO uses your reward it is divided by a running estimate of the standard deviation of "
                     f"the discounted return and clipped to +-{hp.clip_reward:g}: the reward's overall scale matters "
                     "little, the relative size of its terms does.")
    lines.append("A world that reaches the time limit is not treated as failed (its value is bootstrapped); a world "
                 "that terminates gets no further reward.")
    return lines


class RunningMeanStd:
    """Parallel-algorithm running mean/variance (float64, on the training device), as SB3's
    VecNormalize keeps it."""

    def __init__(self, shape: tuple[int, ...] = (), device: torch.device | str = "cpu"):
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = 1e-4

    def update(self, x: torch.Tensor) -> None:
        x = x.to(torch.float64)
        b_var, b_mean = torch.var_mean(x, dim=0, correction=0)
        b_count = x.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * (b_count / total)
        m2 = self.var * self.count + b_var * b_count + delta.square() * (self.count * b_count / total)
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
    The trainer never writes files: the policy and the resume state come back in ``TrainOutput``.
    """

    name = "ppo"
    supports_resume = True  # TrainConfig.resume: see resume_state/restore_state below

    def __init__(self, hp: PPOHyperparams | None = None, env_reward: bool = False):
        self.hp = hp or PPOHyperparams()
        self.env_reward = env_reward

    # -- export ----------------------------------------------------------------------------------
    def export(self, agent: ActorCritic, obs_rms: RunningMeanStd) -> PolicyExport:
        arrays = {"obs_mean": obs_rms.mean.cpu().numpy().astype(np.float32),
                  "obs_var": obs_rms.var.cpu().numpy().astype(np.float32)}
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
        # BatchSim hands back numpy arrays (viewed as CPU tensors without copying); WarpSim hands back
        # tensors on its device. Either way the whole rollout below stays on ``device``.
        sim = make_sim(task, n, seed=config.seed, sim=hp.sim, device=hp.sim_device or config.device,
                       nthread=hp.sim_threads, output="torch")
        obs_dim, act_dim = sim.obs_dim, sim.act_dim
        # one helper thread (CPU only; on a GPU the kernels are asynchronous already): the physics of
        # step t+1 while this thread books step t's reward, the critic's backward pass while this one
        # does the actor's. Neither changes a single number (tests/test_ppo.py).
        on_cpu = hp.sim == "cpu" and device.type == "cpu"
        helper = ThreadPoolExecutor(1, thread_name_prefix="rewardgen-ppo") if on_cpu and hp.use_helper_thread else None

        def on_device(x) -> torch.Tensor:
            return torch.as_tensor(x, device=device)

        agent = ActorCritic(obs_dim, act_dim, hp.hidden, hp.init_log_std).to(device)
        # fused Adam: one kernel for all parameters instead of a dozen small ops per parameter
        optimizer = torch.optim.Adam(agent.parameters(), lr=hp.learning_rate, eps=1e-5, fused=True)

        obs_rms = RunningMeanStd((obs_dim,), device)
        ret_rms = RunningMeanStd((), device)
        resumed_from = 0  # env-steps of earlier slices (global_step counts this slice's)
        worlds = None  # the simulated worlds where the last slice left them
        if config.resume is not None:
            resumed_from, worlds = restore_state(config.resume, agent, optimizer, obs_rms, ret_rms, gen)
        discounted = torch.zeros(n, dtype=torch.float64, device=device)
        eps = 1e-8

        def normalize(o: torch.Tensor, mean: torch.Tensor | None = None, var: torch.Tensor | None = None) -> torch.Tensor:
            mean = obs_rms.mean if mean is None else mean
            var = obs_rms.var if var is None else var
            x = (o - mean) / torch.sqrt(var + eps)
            return x.clamp(-hp.clip_obs, hp.clip_obs).to(torch.float32)

        # rollout storage, on the device
        def buffer(*shape: int) -> torch.Tensor:
            return torch.zeros((T, n, *shape), dtype=torch.float32, device=device)

        obs_buf = buffer(obs_dim)  # normalised, as the policy saw them
        act_buf = buffer(act_dim)  # sampled (unclipped) actions
        rew_buf, done_buf = buffer(), buffer()
        final_buf, trunc_buf = buffer(obs_dim), buffer()  # observations that ended in a time limit

        raw_obs = on_device(sim.reset())
        if worlds is not None and hasattr(sim, "restore") and worlds[0].get("n") == n:
            # continue every world mid-episode, as if training had never stopped (a slice that
            # restarted its worlds would only ever see the first n_steps/n steps of an episode)
            try:
                raw_obs = on_device(sim.restore(*worlds))
            except ValueError as exc:
                raise ResumeStateError(str(exc)) from None
            if worlds[1]["discounted"].shape != (n,):
                raise ResumeStateError("resume state mis-sizes the worlds' discounted returns")
            discounted = torch.as_tensor(worlds[1]["discounted"], dtype=torch.float64, device=device)
            if reward is not None:  # the open episodes' books continue too (no artefact episodes)
                reward.restore_books({k.split("/", 1)[1]: v for k, v in worlds[1].items() if k.startswith("books/")},
                                     device)
        else:
            obs_rms.update(raw_obs)
        batch = n * T
        iterations = max(1, -(-int(config.steps) // batch))
        global_step = 0
        losses: dict[str, float] = {}
        clock = time.perf_counter
        # where the time goes: sim_s is this thread's wait for the step, policy_s the actor's inference
        # and the observation statistics per step plus the batched passes after a rollout
        timing = {"sim_s": 0.0, "reward_s": 0.0, "policy_s": 0.0, "collect_s": 0.0, "update_s": 0.0}
        setup_s = clock() - start
        half_log_2pi = 0.5 * math.log(2 * math.pi)

        def book(t: int, res, state, step: int, mean: torch.Tensor, var: torch.Tensor) -> None:
            """Step ``t``'s reward, episode books, reward normalisation and bootstrap inputs. Nothing
            here decides an action, so with the helper thread it runs while the next step's physics does."""
            nonlocal discounted
            t0 = clock()
            terminated, truncated = on_device(res.terminated), on_device(res.truncated)
            done = terminated | truncated
            if reward is not None and state is None:  # (with the helper thread: made when step t ended)
                state = sim.state(device)
            if self.env_reward:
                r = on_device(res.env_reward).to(torch.float64)
                if reward is not None:
                    reward(state, step)
            else:
                r = reward(state, step).to(torch.float64)
            if reward is not None:
                reward.end_episodes(done, step)
            if hp.normalize_reward:
                discounted = discounted * hp.gamma + r
                ret_rms.update(discounted)
                r = (r / torch.sqrt(ret_rms.var + eps)).clamp(-hp.clip_reward, hp.clip_reward)
                discounted.masked_fill_(done, 0.0)
            rew_buf[t] = r
            done_buf[t] = done
            # bootstrap later from the observation a time limit cut (the episode was not over)
            trunc_buf[t] = truncated
            final_buf[t] = normalize(on_device(res.final_obs), mean, var)
            timing["reward_s"] += clock() - t0

        def value_passes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            """After a rollout: values of its observations, of the next ones, of those a time limit cut
            (None on the CPU when no world hit the time limit: most rollouts; asking would sync a GPU)."""
            with torch.inference_mode():  # (thread-local: the helper thread enters it itself)
                cut = device.type != "cpu" or bool(trunc_buf.any())
                return (agent.value(obs_buf.reshape(batch, obs_dim)), agent.value(normalize(raw_obs)),
                        agent.value(final_buf.reshape(batch, obs_dim)).reshape(T, n) if cut else None)

        def value_loss(obs_i: torch.Tensor, ret_i: torch.Tensor, old_v: torch.Tensor) -> torch.Tensor:
            """The critic's share of a minibatch's PPO loss, backpropagated (weighted by vf_coef)."""
            v = agent.value(obs_i)
            if hp.clip_vloss:
                v_clipped = old_v + (v - old_v).clamp(-hp.clip_coef, hp.clip_coef)
                loss = 0.5 * torch.max((v - ret_i).pow(2), (v_clipped - ret_i).pow(2)).mean()
            else:
                loss = 0.5 * (v - ret_i).pow(2).mean()
            (hp.vf_coef * loss).backward()
            return loss

        def log_prob(mean: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
            z = (act - mean) * torch.exp(-agent.log_std)
            return (-0.5 * z * z - agent.log_std - half_log_2pi).sum(-1)

        def entropy_of(log_std: torch.Tensor) -> torch.Tensor:
            return (log_std + 0.5 + half_log_2pi).sum()

        for it in range(iterations):
            if hp.anneal_lr:
                optimizer.param_groups[0]["lr"] = hp.learning_rate * (1.0 - it / iterations)
            # ---- collect a rollout: per step only the actor's mean, the physics and the reward ----
            t_collect = clock()
            with torch.inference_mode():
                noise = torch.randn((T, n, act_dim), generator=gen, device=device) * agent.log_std.exp()
                pending = None  # a step whose reward is still to be booked
                for t in range(T):
                    t0 = clock()
                    x = normalize(raw_obs)
                    obs_buf[t] = x
                    action = agent.actor(x) + noise[t]
                    act_buf[t] = action
                    timing["policy_s"] += clock() - t0
                    stepping = helper.submit(sim.step, action.clamp(-1.0, 1.0)) if helper is not None else None
                    if pending is not None:  # the previous step's, while this step's physics runs
                        book(*pending)
                    t0 = clock()
                    res = stepping.result() if stepping is not None else sim.step(action.clamp(-1.0, 1.0))
                    timing["sim_s"] += clock() - t0
                    global_step += n
                    # the State is a copy, and obs_rms.update replaces mean/var: these references keep
                    # this step's values for a booking after the next step
                    state = sim.state(device) if helper is not None and reward is not None else None
                    if state is not None:  # a jailed reward starts on it now, beside this thread's next action
                        reward.prefetch(state)
                    pending = (t, res, state, global_step, obs_rms.mean, obs_rms.var)
                    if helper is None:
                        book(*pending)
                        pending = None
                    t0 = clock()
                    raw_obs = on_device(res.obs)
                    obs_rms.update(raw_obs)
                    timing["policy_s"] += clock() - t0
                if pending is not None:
                    book(*pending)
                t_passes = clock()

                # ---- values, log-probs and truncation bootstraps in one batched pass each ------------
                b_obs = obs_buf.reshape(batch, obs_dim)
                b_act = act_buf.reshape(batch, act_dim)
                critic_passes = helper.submit(value_passes) if helper is not None else None
                b_logp = log_prob(agent.actor(b_obs), b_act)
                b_val, next_value, bootstrap = critic_passes.result() if critic_passes else value_passes()
                values = b_val.reshape(T, n)
                rewards = rew_buf + hp.gamma * bootstrap * trunc_buf if bootstrap is not None else rew_buf

                # ---- GAE ----------------------------------------------------------------------------
                adv = torch.zeros((T, n), dtype=torch.float32, device=device)
                last = torch.zeros(n, dtype=torch.float32, device=device)
                for t in reversed(range(T)):
                    nv = next_value if t == T - 1 else values[t + 1]
                    nonterminal = 1.0 - done_buf[t]
                    delta = rewards[t] + hp.gamma * nv * nonterminal - values[t]
                    last = delta + hp.gamma * hp.gae_lambda * nonterminal * last
                    adv[t] = last
                timing["policy_s"] += clock() - t_passes
            # leave inference mode: these take part in autograd below
            b_obs, b_act, b_val, b_logp = b_obs.clone(), b_act.clone(), b_val.clone(), b_logp.clone()
            b_adv = adv.reshape(batch).clone()
            b_ret = b_adv + b_val
            if reward is not None:
                reward.flush()  # the rollout's episode books to the host, once; raises on NaN rewards

            # ---- optimise -------------------------------------------------------------------------
            t_update = clock()
            timing["collect_s"] += t_update - t_collect
            mb = batch // hp.minibatches
            for _ in range(hp.epochs):
                perm = torch.randperm(batch, generator=gen, device=device)
                # shuffled once per epoch; the minibatches are then contiguous slices of these
                e_obs, e_act, e_logp, e_adv, e_ret, e_val = (x[perm] for x in (b_obs, b_act, b_logp, b_adv, b_ret, b_val))
                # each minibatch's advantages normalised (and negated) at once, outside autograd (a batch
                # that minibatches do not divide leaves its last few samples out, as the slices below do)
                e_adv = e_adv[:hp.minibatches * mb].reshape(hp.minibatches, mb)
                e_adv = -((e_adv - e_adv.mean(dim=1, keepdim=True)) / (e_adv.std(dim=1, keepdim=True) + 1e-8))
                kl_stop = False
                for k in range(hp.minibatches):
                    i = slice(k * mb, (k + 1) * mb)
                    obs_i = e_obs[i]
                    optimizer.zero_grad(set_to_none=True)
                    # The critic's loss touches only the critic's weights and the actor's only the
                    # actor's, so backpropagating them separately gives the summed loss's gradients
                    # exactly; on the CPU the critic's half runs on the helper thread meanwhile.
                    critic_half = helper.submit(value_loss, obs_i, e_ret[i], e_val[i]) if helper is not None else None
                    logp = log_prob(agent.actor(obs_i), e_act[i])
                    log_ratio = logp - e_logp[i]
                    ratio = log_ratio.exp()
                    neg_a = e_adv[k]
                    pg_loss = torch.max(neg_a * ratio, neg_a * ratio.clamp(1 - hp.clip_coef, 1 + hp.clip_coef)).mean()
                    if hp.ent_coef:  # the Gaussian's entropy is state-independent: a function of log_std
                        (pg_loss - hp.ent_coef * entropy_of(agent.log_std)).backward()
                    else:
                        pg_loss.backward()
                    v_loss = critic_half.result() if critic_half is not None else value_loss(obs_i, e_ret[i], e_val[i])
                    nn.utils.clip_grad_norm_(agent.parameters(), hp.max_grad_norm)
                    optimizer.step()
                    if hp.target_kl is not None:
                        with torch.no_grad():
                            approx_kl = float(((ratio - 1) - log_ratio).mean())
                        if approx_kl > hp.target_kl:
                            kl_stop = True
                            break
                if kl_stop:
                    break
            with torch.no_grad():
                approx_kl = float(((ratio - 1) - log_ratio).mean())
            timing["update_s"] += clock() - t_update
            losses = {"policy_loss": float(pg_loss.detach()), "value_loss": float(v_loss.detach()),
                      "entropy": float(entropy_of(agent.log_std.detach())), "approx_kl": approx_kl}
            progress(global_step)

        seconds = time.perf_counter() - start
        stats = reward.summary() if reward is not None else {}
        worlds = None
        if hasattr(sim, "snapshot"):
            header, arrays = sim.snapshot()
            books = {f"books/{k}": v for k, v in reward.books().items()} if reward is not None else {}
            worlds = (header, arrays | {"discounted": discounted.cpu().numpy()} | books)
        sim.close()
        if helper is not None:
            helper.shutdown()
        return TrainOutput(policy=self.export(agent, obs_rms), stats=stats, env_steps=resumed_from + global_step,
                           seconds=seconds, slice_env_steps=global_step, resumed_from=resumed_from,
                           resume_state=resume_state(resumed_from + global_step, agent, optimizer, obs_rms, ret_rms,
                                                     gen, worlds),
                           losses=losses, num_envs=n,
                           timing={"setup_s": setup_s, **timing, **getattr(sim, "timing", {}), "total_s": seconds})


# -- resumable state (TrainConfig.resume): npz + JSON header, no pickles --------------------------
def resume_state(env_steps: int, agent: ActorCritic, optimizer: torch.optim.Optimizer, obs_rms: RunningMeanStd,
                 ret_rms: RunningMeanStd, gen: torch.Generator, worlds: tuple[dict, dict] | None = None) -> bytes:
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
                  ret_rms: RunningMeanStd, gen: torch.Generator) -> tuple[int, tuple[dict, dict] | None]:
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
