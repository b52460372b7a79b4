"""PPO's rollouts: step every world ``steps`` times with the current policy, book each step's reward,
and hand back the rollout with the critic's values and the actions' log-probabilities.

``RolloutCollector`` does it in order on this thread. ``PipelinedCollector`` gets the same numbers to
the bit with one helper thread (worth it on the CPU, where the second core would otherwise idle
through the reward's bookkeeping): the helper thread lives in that class and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from rewardgen.sim.protocol import BatchSimulator, ResumableSimulator
from rewardgen.trainers.agent import ActorCritic
from rewardgen.trainers.base import BatchReward, ResumeStateError
from rewardgen.trainers.normalize import Normalization

if TYPE_CHECKING:
    from rewardgen.contract.state import State
    from rewardgen.sim import StepResult

R = TypeVar("R")
Worlds = tuple[dict, dict[str, np.ndarray]]
"""a simulator's snapshot (header, arrays) with each world's discounted return and open episode books"""
clock = time.perf_counter


@dataclass
class Minibatch:
    """One minibatch of a shuffled ``Batch``; its advantages normalised and negated."""

    obs: torch.Tensor
    act: torch.Tensor
    log_prob: torch.Tensor
    neg_advantages: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor


@dataclass
class Batch:
    """A rollout flattened to T*N samples, outside inference mode: these take part in autograd."""

    obs: torch.Tensor
    act: torch.Tensor
    log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor

    def minibatches(self, epochs: int, count: int, gen: torch.Generator) -> Iterator[Minibatch]:
        """``epochs`` shuffles (drawn from ``gen`` as each epoch starts), each cut into ``count``
        contiguous minibatches. A batch that ``count`` does not divide leaves its last few shuffled
        samples out of that epoch."""
        size = self.obs.shape[0]
        mb = size // count
        for _ in range(epochs):
            perm = torch.randperm(size, generator=gen, device=gen.device)
            obs, act, logp, adv, ret, val = (x[perm] for x in (self.obs, self.act, self.log_prob, self.advantages,
                                                               self.returns, self.values))
            # every minibatch's advantages normalised (and negated) at once, outside autograd
            adv = adv[:count * mb].reshape(count, mb)
            adv = -((adv - adv.mean(dim=1, keepdim=True)) / (adv.std(dim=1, keepdim=True) + 1e-8))
            for k in range(count):
                i = slice(k * mb, (k + 1) * mb)
                yield Minibatch(obs[i], act[i], logp[i], adv[k], ret[i], val[i])


@dataclass
class Rollout:
    """T steps of N worlds, as collected (inference tensors, in the collector's reused buffers)."""

    obs: torch.Tensor
    """(T*N, obs_dim) normalised observations, as the policy saw them"""
    act: torch.Tensor
    """(T*N, act_dim) sampled actions, before clipping to [-1, 1]"""
    log_prob: torch.Tensor
    """(T*N,) their log-probabilities under the policy that sampled them"""
    values: torch.Tensor
    """(T, N) the critic's values of the observations"""
    next_value: torch.Tensor
    """(N,) the critic's value of the observation after the last step"""
    rewards: torch.Tensor
    """(T, N) rewards as PPO trains on them (normalised)"""
    dones: torch.Tensor
    """(T, N) 1.0 where step t ended the world's episode"""
    truncated: torch.Tensor
    """(T, N) 1.0 where step t ended it at the time limit"""
    truncated_values: torch.Tensor | None
    """(T, N) the critic's values of the observations a time limit cut; None when no world hit the
    time limit on the CPU (most rollouts; on a GPU asking would cost a sync, so they always come)"""

    def batch(self, advantages: torch.Tensor, returns: torch.Tensor) -> Batch:
        """The samples with their ``advantages`` and ``returns``, copied out of the buffers."""
        return Batch(self.obs.clone(), self.act.clone(), self.log_prob.clone(), advantages.reshape(-1).clone(),
                     returns.reshape(-1).clone(), self.values.reshape(-1).clone())


@dataclass
class _Step:
    """One env step waiting to be booked: the State its reward sees (None without a reward) and the
    observation statistics the policy acted on (``RunningMeanStd.update`` replaces, never overwrites)."""

    t: int
    result: StepResult
    state: State | None
    env_steps: int
    obs_mean: torch.Tensor
    obs_var: torch.Tensor


class RolloutCollector:
    """Collects rollouts in order on this thread: per step the actor's mean plus noise, the physics,
    the reward's booking; after the last step the critic's and the log-probabilities' batched passes.

    :param reward: the candidate's reward (booked every step; trained on unless ``env_reward``).
    :param steps: steps per world per rollout. :param timing: seconds spent, added to its
        ``sim_s`` (waiting for the physics), ``reward_s`` (booking) and ``policy_s`` (the actor per
        step, the observation statistics, the batched passes).
    """

    def __init__(self, sim: BatchSimulator, agent: ActorCritic, norm: Normalization, reward: BatchReward | None,
                 steps: int, env_reward: bool, device: torch.device, gen: torch.Generator, timing: dict[str, float]):
        if reward is None and not env_reward:
            raise ValueError("training on a candidate's reward needs one")
        self.sim, self.agent, self.norm, self.reward, self.env_reward = sim, agent, norm, reward, env_reward
        self.steps, self.n, self.device, self.gen, self.timing = steps, sim.n, device, gen, timing
        self.env_steps = 0
        """env-steps collected so far, all worlds together"""

        def buffer(*shape: int) -> torch.Tensor:
            return torch.zeros((steps, self.n, *shape), dtype=torch.float32, device=device)

        self.obs, self.act = buffer(sim.obs_dim), buffer(sim.act_dim)
        self.rewards, self.dones, self.truncated = buffer(), buffer(), buffer()
        self.final_obs = buffer(sim.obs_dim)  # every world's observation before a reset (normalised)
        self.raw_obs = torch.zeros((self.n, sim.obs_dim), device=device)

    def __enter__(self) -> RolloutCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sim.close()

    def beside(self, fn: Callable[..., R], *args: Any) -> Callable[[], R]:
        """Run ``fn(*args)`` while this thread goes on; call the answer for its result. Here: at once."""
        result = fn(*args)
        return lambda: result

    # -- the worlds ------------------------------------------------------------------------------
    def start(self, worlds: Worlds | None = None) -> None:
        """Reset the worlds, or continue those a resumed training saved (``snapshot``) mid-episode, as
        if training had never stopped (a slice that restarted its worlds would only ever see the first
        steps of an episode)."""
        raw = self._tensor(self.sim.reset())
        if worlds is None or not isinstance(self.sim, ResumableSimulator) or worlds[0].get("n") != self.n:
            self.raw_obs = raw
            self.norm.obs_rms.update(raw)
            return
        try:
            self.raw_obs = self._tensor(self.sim.restore(*worlds))
        except ValueError as exc:
            raise ResumeStateError(str(exc)) from None
        if worlds[1]["discounted"].shape != (self.n,):
            raise ResumeStateError("resume state mis-sizes the worlds' discounted returns")
        self.norm.discounted = torch.as_tensor(worlds[1]["discounted"], dtype=torch.float64, device=self.device)
        if self.reward is not None:  # the open episodes' books continue too (no artefact episodes)
            self.reward.restore_books({k.split("/", 1)[1]: v for k, v in worlds[1].items() if k.startswith("books/")},
                                      self.device)

    def snapshot(self) -> Worlds | None:
        """The worlds as they are, for ``start`` in a later slice (None: the simulator cannot save
        them); call after the reward's last flush."""
        if not isinstance(self.sim, ResumableSimulator):
            return None
        header, arrays = self.sim.snapshot()
        books = {f"books/{k}": v for k, v in self.reward.books().items()} if self.reward is not None else {}
        return header, arrays | {"discounted": self.norm.discounted.cpu().numpy()} | books

    # -- a rollout -------------------------------------------------------------------------------
    def collect(self) -> Rollout:
        """One rollout with the current policy; the reward's episode books go to the host once, at its
        end (which raises the ``ContractError`` of a NaN or infinite reward)."""
        with torch.inference_mode():
            noise = torch.randn((self.steps, self.n, self.sim.act_dim), generator=self.gen, device=self.device)
            self._step_worlds(noise * self.agent.log_std.exp())
            rollout = self._finish()
        if self.reward is not None:
            self.reward.flush()
        return rollout

    def _step_worlds(self, noise: torch.Tensor) -> None:
        for t in range(self.steps):
            action = self._act(t, noise[t])
            result = self._count(self.sim.step, action)
            self._book(self._outcome(t, result))
            self._observe(result)

    def _act(self, t: int, noise: torch.Tensor) -> torch.Tensor:
        """Step ``t``'s actions (stored unclipped), clipped to [-1, 1] for the simulator."""
        t0 = clock()
        x = self.norm.obs(self.raw_obs)
        self.obs[t] = x
        action = self.agent.actor(x) + noise
        self.act[t] = action
        self.timing["policy_s"] += clock() - t0
        return action.clamp(-1.0, 1.0)

    def _count(self, step: Callable[..., StepResult], *args: Any) -> StepResult:
        """``step(*args)`` (the step, or the wait for it), timed as the simulator's; counts its env-steps."""
        t0 = clock()
        result = step(*args)
        self.timing["sim_s"] += clock() - t0
        self.env_steps += self.n
        return result

    def _outcome(self, t: int, result: StepResult) -> _Step:
        state = self.sim.state(self.device) if self.reward is not None else None
        return _Step(t, result, state, self.env_steps, self.norm.obs_rms.mean, self.norm.obs_rms.var)

    def _book(self, step: _Step) -> None:
        """A step's reward, episode books, reward normalisation and truncation inputs. Nothing here
        decides an action, so it may run while the next step's physics does."""
        t0 = clock()
        res = step.result
        terminated, truncated = self._tensor(res.terminated), self._tensor(res.truncated)
        done = terminated | truncated
        candidate = None
        if self.reward is not None and step.state is not None:
            candidate = self.reward(step.state, step.env_steps)
            self.reward.end_episodes(done, step.env_steps)
        r = self._tensor(res.env_reward) if self.env_reward or candidate is None else candidate
        self.rewards[step.t] = self.norm.reward(r.to(torch.float64), done)
        self.dones[step.t] = done
        # bootstrap later from the observation a time limit cut (the episode was not over)
        self.truncated[step.t] = truncated
        self.final_obs[step.t] = self.norm.obs(self._tensor(res.final_obs), step.obs_mean, step.obs_var)
        self.timing["reward_s"] += clock() - t0

    def _observe(self, result: StepResult) -> None:
        t0 = clock()
        self.raw_obs = self._tensor(result.obs)
        self.norm.obs_rms.update(self.raw_obs)
        self.timing["policy_s"] += clock() - t0

    def _finish(self) -> Rollout:
        """Values, log-probabilities and truncation values in one batched pass each."""
        t0 = clock()
        obs, act = self.obs.reshape(self.steps * self.n, -1), self.act.reshape(self.steps * self.n, -1)
        critic = self.beside(self._values, obs)
        log_prob = self.agent.log_prob(obs, act)
        values, next_value, truncated_values = critic()
        self.timing["policy_s"] += clock() - t0
        return Rollout(obs, act, log_prob, values.reshape(self.steps, self.n), next_value, self.rewards, self.dones,
                       self.truncated, truncated_values)

    def _values(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        with torch.inference_mode():  # thread-local: on the helper thread it must be entered there
            values, next_value = self.agent.value(obs), self.agent.value(self.norm.obs(self.raw_obs))
            if self.device.type == "cpu" and not bool(self.truncated.any()):
                return values, next_value, None
            return values, next_value, self.agent.value(self.final_obs.reshape(obs.shape[0], -1)).reshape(self.steps, self.n)

    def _tensor(self, x: Any) -> torch.Tensor:
        return torch.as_tensor(x, device=self.device)


class PipelinedCollector(RolloutCollector):
    """The same rollouts to the bit, with one helper thread: it runs step t's physics while this
    thread books step t-1's reward, and the critic's passes (``beside``) while this one does the
    actor's, after a rollout and in the update.

    Nothing moves a number: the State a step's reward sees is made as soon as the step ends (a copy,
    later steps cannot change it), the observation statistics it is normalised with are kept from that
    moment, and the actor's and critic's computations share no tensor that either writes.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._helper = ThreadPoolExecutor(1, thread_name_prefix="rewardgen-ppo")

    def close(self) -> None:
        super().close()
        self._helper.shutdown()

    def beside(self, fn: Callable[..., R], *args: Any) -> Callable[[], R]:
        """Run ``fn(*args)`` on the helper thread; call the answer to wait for its result."""
        return self._helper.submit(fn, *args).result

    def _step_worlds(self, noise: torch.Tensor) -> None:
        pending: _Step | None = None  # the step whose reward is still to be booked
        for t in range(self.steps):
            action = self._act(t, noise[t])
            stepping = self._helper.submit(self.sim.step, action)
            if pending is not None:
                self._book(pending)  # step t-1's, while step t's physics runs
            result = self._count(stepping.result)
            pending = self._outcome(t, result)
            if self.reward is not None and pending.state is not None:
                self.reward.prefetch(pending.state)  # a jailed reward starts on it now, beside the next action
            self._observe(result)
        if pending is not None:
            self._book(pending)
